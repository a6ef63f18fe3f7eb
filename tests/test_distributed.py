"""Two gloo ranks with B pairs each give the loss and gradients of one process with 2B pairs."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from bacl.losses import BACLLoss
from bacl.sampler import BoundarySampler

BATCH, DIM, WORLD = 4, 8, 2


def global_batch():
    gen = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(WORLD * BATCH, DIM, generator=gen), dim=-1)
    text = F.normalize(image + torch.randn(WORLD * BATCH, DIM, generator=gen), dim=-1)
    return image, text


def make_loss(use_bns, rank=0, world_size=1):
    # K = 2B - 1 draws every other pair in the global batch: the draw is then order-free and
    # the same in both set-ups, so the comparison is exact up to float rounding.
    sampler = BoundarySampler(num_negatives=WORLD * BATCH - 1) if use_bns else None
    return BACLLoss(use_bns=use_bns, use_cla=False, sampler=sampler, local_loss=True, gather_with_grad=True,
                    rank=rank, world_size=world_size)


def single_process(use_bns):
    image, text = (x.clone().requires_grad_() for x in global_batch())
    loss = make_loss(use_bns)(image, text, torch.tensor(10.0), progress=0.6, output_dict=True)["contrastive_loss"]
    loss.backward()
    return loss.detach(), image.grad, text.grad


def worker(rank, init_file, use_bns, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        image, text = global_batch()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        image, text = image[rows].clone().requires_grad_(), text[rows].clone().requires_grad_()
        loss_fn = make_loss(use_bns, rank, WORLD)
        loss = loss_fn(image, text, torch.tensor(10.0), progress=0.6, output_dict=True)["contrastive_loss"]
        loss.backward()
        torch.save({"loss": loss.detach(), "image_grad": image.grad, "text_grad": text.grad},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("use_bns", [False, True])
def test_two_ranks_equal_one_process(use_bns):
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(os.path.join(tmp, "store"), use_bns, tmp), nprocs=WORLD, join=True)
        ranks = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(WORLD)]
    loss, image_grad, text_grad = single_process(use_bns)
    # each rank averages its own rows; the global mean is the mean of the ranks' losses
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, loss)
    # the all-gather sends every rank's gradient home; averaging over ranks (as DDP does) matches
    torch.testing.assert_close(torch.cat([r["image_grad"] for r in ranks]) / WORLD, image_grad)
    torch.testing.assert_close(torch.cat([r["text_grad"] for r in ranks]) / WORLD, text_grad)
