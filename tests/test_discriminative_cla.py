"""The discriminative CLA reading: its slots, its minimum, and what sharpening does to each form."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.attention import contrastive_local_attention_loss
from bacl.discriminative_cla import aligned_row_divergence, discriminative_local_attention_loss
from bacl.token_alignment import align_tokens

CONTEXT = 8


def maps(seed: int, batch: int, length: int, context: int = CONTEXT) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, context, generator=gen).softmax(-1)


def ids_and_mask(rows: list[list[int]], length: int):
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, :len(row)] = torch.tensor(row)
    return ids, ids != 0


@given(pairs=st.lists(st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=6),
                                st.lists(st.integers(1, 4), min_size=1, max_size=6)), min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_only_aligned_slots_count_and_differing_ones_are_the_positives(pairs, seed):
    """Omega's text slots are the aligned ones: the gradient never reaches a negative row that is
    not aligned (an inserted token, padding); it pushes a differing row away from its partner and
    pulls an equal row towards it (the loss falls as TV rises on D and as it falls on S)."""
    length = 6
    positive_ids, positive_mask = ids_and_mask([a for a, _ in pairs], length)
    negative_ids, negative_mask = ids_and_mask([b for _, b in pairs], length)
    alignment = align_tokens(positive_ids, positive_mask, negative_ids, negative_mask)
    attn_pos = maps(seed, len(pairs), length) * positive_mask[..., None]
    attn_neg = (maps(seed + 1, len(pairs), length) * negative_mask[..., None]).requires_grad_(True)
    out = discriminative_local_attention_loss(attn_pos, attn_neg, alignment, output_dict=True)
    divergence = out["divergence"]
    grad_divergence, = torch.autograd.grad(out["local_loss"], divergence, retain_graph=True)
    counted = out["counted"][:, None]
    assert (grad_divergence[alignment.differs & counted] <= 0).all()
    assert (grad_divergence[alignment.same & counted] >= 0).all()
    assert (grad_divergence[~((alignment.differs | alignment.same) & counted)] == 0).all()
    grad_negative, = torch.autograd.grad(out["local_loss"], attn_neg)
    unaligned = alignment.partner < 0
    assert (grad_negative[unaligned] == 0).all() and torch.isfinite(grad_negative).all()


def disjoint_configuration(sharp: bool):
    """One pair, 4 slots: slot 1 differs, slots 0, 2, 3 are equal. Positive rows attend to context
    tokens 0-3, the differing negative row to tokens 4-7 (TV = 1), equal rows as the positive (TV = 0);
    ``sharp``: one token each instead of four."""
    positive_ids = torch.tensor([[1, 2, 3, 4]])
    negative_ids = torch.tensor([[1, 9, 3, 4]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    alignment = align_tokens(positive_ids, mask, negative_ids, mask)
    width = 1 if sharp else 4
    attn_pos = torch.zeros(1, 4, CONTEXT)
    attn_pos[..., :width] = 1 / width
    attn_neg = attn_pos.clone()
    attn_neg[0, 1] = 0.0
    attn_neg[0, 1, 4:4 + width] = 1 / width
    return attn_pos, attn_neg, alignment, mask


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_minimum_is_reached_by_disjoint_supports_of_any_sharpness(temperature):
    """The floor log(1 + |S|/|D| e^{-1/tau}) is reached by spread rows as well as by one-hot ones:
    sharpening is not rewarded. The literal form, on the same maps, is lower for the sharp ones."""
    floor = math.log(1 + 3 * math.exp(-1 / temperature))
    losses = {}
    for sharp in (False, True):
        attn_pos, attn_neg, alignment, mask = disjoint_configuration(sharp)
        losses[sharp] = discriminative_local_attention_loss(attn_pos, attn_neg, alignment, temperature).item()
        assert losses[sharp] == pytest.approx(floor, rel=1e-6, abs=1e-6)  # float32 logsumexp of ~1/tau
    literal = {sharp: contrastive_local_attention_loss(*disjoint_configuration(sharp)[:2], omega_size=4).item()
               for sharp in (False, True)}
    assert literal[True] < literal[False]
    # any other TV on D or S is above the floor
    attn_pos, attn_neg, alignment, _ = disjoint_configuration(False)
    blurred = 0.5 * attn_neg + 0.5 * attn_pos
    assert discriminative_local_attention_loss(attn_pos, blurred, alignment, temperature) > floor + 1e-6


def test_pairs_without_a_differing_or_an_equal_slot_add_nothing():
    attn_pos, attn_neg = maps(0, 3, 4), maps(1, 3, 4).requires_grad_(True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    positive_ids = torch.tensor([[1, 2, 3, 4]] * 3)
    negative_ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [1, 6, 3, 4]])  # no D, no S, both
    alignment = align_tokens(positive_ids, mask, negative_ids, mask)
    out = discriminative_local_attention_loss(attn_pos, attn_neg, alignment, output_dict=True)
    assert out["counted"].tolist() == [False, False, True]
    alone = discriminative_local_attention_loss(attn_pos[2:], attn_neg[2:], align_tokens(
        positive_ids[2:], mask[2:], negative_ids[2:], mask[2:]))
    torch.testing.assert_close(out["local_loss"], alone)
    nothing = discriminative_local_attention_loss(attn_pos[:2], attn_neg[:2], align_tokens(
        positive_ids[:2], mask[:2], negative_ids[:2], mask[:2]))
    nothing.backward()
    assert nothing.item() == 0.0 and torch.isfinite(attn_neg.grad).all()


def test_divergence_compares_each_row_with_its_aligned_partner():
    attn_pos, attn_neg = maps(0, 1, 3), maps(1, 1, 4)
    partner = torch.tensor([[0, -1, 1, 2]])  # the negative inserted a token at slot 1
    divergence = aligned_row_divergence(attn_pos, attn_neg, partner)
    expected = [0.5 * (attn_pos[0, p] - attn_neg[0, i]).abs().sum().item() if p >= 0 else 0.0
                for i, p in enumerate(partner[0].tolist())]
    assert divergence[0].tolist() == pytest.approx(expected)


def test_bad_input_names_the_argument():
    attn_pos, attn_neg, alignment, _ = disjoint_configuration(False)
    with pytest.raises(ValueError, match="temperature"):
        discriminative_local_attention_loss(attn_pos, attn_neg, alignment, temperature=0.0)
    with pytest.raises(ValueError, match="alignment"):
        discriminative_local_attention_loss(attn_pos, attn_neg[:, :3], alignment)
    with pytest.raises(ValueError, match="attn_neg"):
        discriminative_local_attention_loss(attn_pos, attn_neg * 5, alignment)
    with pytest.raises(ValueError, match="partner points past"):
        discriminative_local_attention_loss(attn_pos[:, :1], attn_neg, alignment)
