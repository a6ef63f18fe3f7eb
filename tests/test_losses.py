"""BACLLoss: parity with open_clip's ClipLoss, the BNS denominator, retrieved pools, the sampling
correction, gradients and batch order of the whole loss, bad input and settings."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from loss_fixtures import features, small_transformer, token_ids, tokens
from open_clip.loss import ClipLoss

from bacl.losses import BACLLoss
from bacl.sampler import BoundarySampler


@given(seed=st.integers(0, 10_000), batch=st.integers(1, 12), scale=st.floats(0.1, 200.0),
       bias=st.one_of(st.none(), st.floats(-10, 10)))
def test_parity_with_clip_loss_when_bns_and_cla_are_off(seed, batch, scale, bias):
    image, text = features(seed, batch)
    logit_scale = torch.tensor(scale)
    logit_bias = None if bias is None else torch.tensor(bias)
    ours = BACLLoss(use_bns=False, use_cla=False)(image, text, logit_scale, logit_bias, output_dict=True)
    theirs = ClipLoss()(image, text, logit_scale, logit_bias, output_dict=True)
    assert set(ours) == set(theirs) == {"contrastive_loss"}
    torch.testing.assert_close(ours["contrastive_loss"], theirs["contrastive_loss"], rtol=0, atol=0)


def test_parity_of_gradients_with_clip_loss():
    image, text = features(1, 6)
    grads = []
    for loss_fn in (BACLLoss(use_bns=False, use_cla=False), ClipLoss()):
        leaf_image, leaf_text = image.clone().requires_grad_(), text.clone().requires_grad_()
        loss_fn(leaf_image, leaf_text, torch.tensor(14.3)).backward()
        grads.append((leaf_image.grad, leaf_text.grad))
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


@given(seed=st.integers(0, 10_000), batch=st.integers(2, 10), scale=st.floats(1.0, 1e4),
       progress=st.floats(0, 1), use_bns=st.booleans())
def test_finite_for_extreme_logits(seed, batch, scale, progress, use_bns):
    image, text = features(seed, batch)
    image[0] = text[0]  # a perfect pair next to random ones
    sampler = BoundarySampler(num_negatives=1) if use_bns else None
    loss = BACLLoss(use_bns=use_bns, use_cla=False, sampler=sampler)(
        image, text, torch.tensor(scale), progress=progress, generator=torch.Generator().manual_seed(seed))
    assert torch.isfinite(loss)


@given(seed=st.integers(0, 10_000), batch=st.integers(2, 8), progress=st.floats(0, 1))
def test_permuting_the_batch_leaves_the_loss_unchanged(seed, batch, progress):
    image, text = features(seed, batch)
    image_tokens, text_tokens = tokens(seed, batch), tokens(seed + 1, batch)
    permutation = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    # K = B - 1 draws every in-batch negative, so the draw itself does not depend on the order.
    loss_fn = BACLLoss(sampler=BoundarySampler(num_negatives=batch - 1), cross_modal=small_transformer())
    ids = token_ids(seed, batch)
    kwargs = lambda p: dict(progress=progress, image_tokens=image_tokens[p], text_tokens=text_tokens[p],  # noqa: E731
                            text_token_ids=ids[p], output_dict=True)
    identity = torch.arange(batch)
    before = loss_fn(image, text, torch.tensor(10.0), **kwargs(identity))
    after = loss_fn(image[permutation], text[permutation], torch.tensor(10.0), **kwargs(permutation))
    for key in ("contrastive_loss", "local_loss", "match_loss"):
        torch.testing.assert_close(before[key], after[key], rtol=1e-5, atol=1e-6)


def test_drawn_negatives_join_the_denominator():
    image, text = features(2, 6)
    scale = torch.tensor(10.0)
    sampler = BoundarySampler(num_negatives=2)
    loss_fn = BACLLoss(use_cla=False, sampler=sampler, negative_weight=0.5)
    generator_state = torch.Generator().manual_seed(7)
    ours = loss_fn(image, text, scale, progress=0.8, generator=generator_state, output_dict=True)
    # replay the same two draws (image->text, then text->image) and build the loss by hand
    replay = torch.Generator().manual_seed(7)
    own = ~torch.eye(6, dtype=torch.bool)
    manual = 0.0
    for anchor, positive in ((image, text), (text, image)):
        draw = sampler(anchor, positive, positive, 0.8, candidate_mask=own, generator=replay)
        logits = scale * anchor @ positive.T
        extra = scale * (anchor[:, None, :] * positive[draw.index]).sum(-1) + torch.log(torch.tensor(0.5))
        manual = manual + F.cross_entropy(torch.cat([logits, extra], 1), torch.arange(6)) / 2
    torch.testing.assert_close(ours["contrastive_loss"], manual)
    plain = BACLLoss(use_bns=False, use_cla=False)(image, text, scale)
    assert ours["contrastive_loss"] > plain  # extra denominator terms can only raise the loss


def test_retrieved_candidate_pools_are_used():
    image, text = features(3, 4)
    gen = torch.Generator().manual_seed(0)
    candidate_text = F.normalize(torch.randn(4, 5, 8, generator=gen), dim=-1)
    candidate_image = F.normalize(torch.randn(4, 5, 8, generator=gen), dim=-1)
    loss_fn = BACLLoss(sampler=BoundarySampler(num_negatives=3), cross_modal=small_transformer())
    out = loss_fn(image, text, torch.tensor(10.0), progress=0.5,
                  candidate_text_features=candidate_text, candidate_image_features=candidate_image,
                  image_tokens=tokens(0, 4), text_tokens=tokens(1, 4), text_token_ids=token_ids(0, 4),
                  candidate_text_tokens=torch.randn(4, 5, 5, 6, generator=gen),
                  candidate_text_token_ids=token_ids(1, 20).view(4, 5, 5), output_dict=True)
    assert set(out) == {"contrastive_loss", "policy_loss", "local_loss", "match_loss"}
    assert all(torch.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match="candidate_text_tokens"):
        loss_fn(image, text, torch.tensor(10.0), progress=0.5, candidate_text_features=candidate_text,
                image_tokens=tokens(0, 4), text_tokens=tokens(1, 4))


def test_every_trainable_part_gets_a_gradient_and_the_policy_only_from_its_objective():
    image, text = features(4, 8)
    image.requires_grad_(True)
    loss_fn = BACLLoss(sampler=BoundarySampler(num_negatives=2), cross_modal=small_transformer())
    out = loss_fn(image, text, torch.tensor(10.0), progress=0.9, image_tokens=tokens(0, 8),
                  text_tokens=tokens(1, 8), text_token_ids=token_ids(0, 8), generator=torch.Generator().manual_seed(0),
                  output_dict=True)
    policy = list(loss_fn.sampler.policy.parameters())
    contrastive_grads = torch.autograd.grad(out["contrastive_loss"], policy, allow_unused=True)
    assert all(g is None for g in contrastive_grads)
    sum(out.values()).backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    for name, parameter in loss_fn.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert out["local_loss"] > 0 and out["match_loss"] > 0


@pytest.mark.parametrize(
    "make_call, name",
    [
        (lambda loss, i, t: loss(i[:, :4], t, 10.0, progress=0.5), "text_features"),
        (lambda loss, i, t: loss(i * float("nan"), t, 10.0, progress=0.5), "image_features"),
        (lambda loss, i, t: loss(i, t, 10.0), "progress"),
        (lambda loss, i, t: loss(i, t, 10.0, progress=2.0), "progress"),
        (lambda loss, i, t: loss(i, t, 10.0, progress=0.5, image_tokens=tokens(0, 4)), "text_tokens"),
        (lambda loss, i, t: loss(i, t, 10.0, progress=0.5, image_tokens=tokens(0, 4).long(), text_tokens=tokens(1, 4)),
         "image_tokens must be a floating-point tensor"),
        (lambda loss, i, t: loss(i, t, 10.0, progress=0.5, image_tokens=tokens(0, 4), text_tokens=[[0.0]]),
         "text_tokens must be a torch.Tensor"),
        (lambda loss, i, t: loss(i, t, 10.0, progress=0.5, image_tokens=tokens(0, 4), text_tokens=tokens(1, 4),
                                 text_token_mask=torch.ones(4, 3, dtype=torch.bool)), "text_token_mask"),
    ],
)
def test_bad_input_names_the_argument(make_call, name):
    loss = BACLLoss(sampler=BoundarySampler(num_negatives=2), cross_modal=small_transformer())
    with pytest.raises(ValueError, match=name):
        make_call(loss, *features(0, 4))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(use_cla=True, cross_modal=None), "cross_modal"),
        (dict(use_cla=False, lambda_local=-1.0), "lambda_local"),
        (dict(use_cla=False, omega_size=0), "omega_size"),
        (dict(use_cla=False, negative_weight=0.0), "negative_weight"),
        (dict(use_cla=False, world_size=2, local_loss=False), "local_loss"),
        (dict(use_cla=False, match_objective="pairwise"), "match_objective"),
        (dict(use_cla=False, match_pool="batch"), "match_pool"),
        (dict(use_cla=False, cla_form="sharp"), "cla_form"),
        (dict(use_cla=False, cla_temperature=0.0), "cla_temperature"),
        (dict(use_cla=False, match_negatives=0), "match_negatives"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BACLLoss(**kwargs)


def test_sampling_correction_puts_the_drawn_set_in_its_own_softmax_with_the_draws_correction():
    """With the correction the in-batch term is CLIP's InfoNCE exactly, and ``drawn_set_loss`` is the
    cross-entropy of the positive against its K drawn negatives, each shifted by the correction that
    bacl.sampling_correction computes from the draw's own logits; it needs BNS and weight 1."""
    from bacl.sampling_correction import sampling_correction

    gen = torch.Generator().manual_seed(2)
    image = F.normalize(torch.randn(8, 6, generator=gen), dim=-1)
    text = F.normalize(image + 0.5 * torch.randn(8, 6, generator=gen), dim=-1)
    drawn = []
    sampler = BoundarySampler(num_negatives=3)
    original = sampler.draw
    sampler.draw = lambda *args, **kwargs: drawn.append(original(*args, **kwargs)) or drawn[-1]
    loss_fn = BACLLoss(sampler=sampler, use_cla=False, sampling_correction=True)
    out = loss_fn(image, text, 10.0, progress=0.6, generator=torch.Generator().manual_seed(0), output_dict=True)
    torch.testing.assert_close(out["contrastive_loss"], ClipLoss()(image, text, 10.0))
    expected = []
    for draw, anchor, positive in ((drawn[0], image, text), (drawn[1], text, image)):
        logits = 10.0 * torch.einsum("bd,bkd->bk", anchor, positive[draw.index])  # in-batch pool: batch columns
        logits = logits + sampling_correction(draw.logits, draw.index, draw.valid, draw.positive_logit)
        logits = logits.masked_fill(~draw.valid, float("-inf"))
        full = torch.cat([10.0 * (anchor * positive).sum(1, keepdim=True), logits], 1)
        expected.append(F.cross_entropy(full, torch.zeros(8, dtype=torch.long)))
    torch.testing.assert_close(out["drawn_set_loss"], sum(expected) / 2)
    assert sampling_correction(drawn[0].logits, drawn[0].index, drawn[0].valid, drawn[0].positive_logit).abs().sum() > 0
    with pytest.raises(ValueError, match="sampling_correction"):
        BACLLoss(use_bns=False, use_cla=False, sampling_correction=True)
    with pytest.raises(ValueError, match="sampling_correction"):
        BACLLoss(use_cla=False, sampling_correction=True, negative_weight=2.0)


