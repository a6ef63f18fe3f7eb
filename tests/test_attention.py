"""CLA's contrastive local attention loss on a pair of attention maps (its definition, Omega, masks,
gradients), the attention divergence, the most divergent token, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from attention_fixtures import nan_at_first, random_mask, sizes
from hypothesis import given
from hypothesis import strategies as st

from bacl.attention import attention_divergence, contrastive_local_attention_loss, most_divergent_token


def attention_pair(seed, batch, text_length, context_length):
    """Two random (B, Lt, Lc) softmax maps and a random pair mask with a valid entry per sample."""
    gen = torch.Generator().manual_seed(seed)
    positive = torch.randn(batch, text_length, context_length, generator=gen).mul(2).softmax(-1)
    negative = torch.randn(batch, text_length, context_length, generator=gen).mul(2).softmax(-1)
    mask = random_mask(gen, batch, text_length * context_length).view(batch, text_length, context_length)
    return positive, negative, mask


def reference_loss(positive, negative, mask, beta, omega_size, eps=1e-6):
    """The CLA loss written out per sample with Python sorting (ties to the lower flat index)."""
    # Ranked by dA in the inputs' float32, as the loss ranks it: rows of two keys tie exactly in
    # exact arithmetic (|p0 - n0| = |p1 - n1|), and only float32 decides which one comes first.
    def rows(x):
        return x.reshape(len(x), -1).tolist()

    losses = []
    for p, n, d, m in zip(rows(positive), rows(negative), rows((positive - negative).abs()), rows(mask), strict=True):
        valid = [index for index in range(len(p)) if m[index]]
        omega = sorted(valid, key=lambda index: (-d[index], index))[:omega_size]
        terms = [-math.log(max(n[i] * (1 + beta * abs(p[i] - n[i])), eps)) for i in omega]
        losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses)


# --- the contrastive local attention loss ---------------------------------------------------------


@given(**sizes, beta=st.floats(0, 5), omega_size=st.integers(1, 40))
def test_loss_matches_its_definition_and_is_finite(seed, batch, text_length, context_length, beta, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    out = contrastive_local_attention_loss(positive, negative, beta=beta, omega_size=omega_size, mask=mask,
                                           output_dict=True)
    assert torch.isfinite(out["local_loss"])
    assert out["local_loss"].item() == pytest.approx(reference_loss(positive, negative, mask, beta, omega_size),
                                                     rel=1e-5, abs=1e-5)
    torch.testing.assert_close(out["divergence"], attention_divergence(positive, negative, mask))
    assert out["omega_index"].shape == (batch, omega_size)


@given(**sizes, omega_size=st.integers(1, 40))
def test_masked_entries_are_never_in_omega(seed, batch, text_length, context_length, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    # Make every masked pair maximally divergent: a loss that ignored the mask would pick them.
    positive, negative = positive.masked_fill(~mask, 1.0), negative.masked_fill(~mask, 0.0)
    out = contrastive_local_attention_loss(positive, negative, omega_size=omega_size, mask=mask, output_dict=True)
    omega = out["omega_index"]
    used = omega >= 0
    flat_mask = mask.reshape(batch, -1)
    assert flat_mask.gather(1, omega.clamp_min(0))[used].all()
    # Omega takes min(omega_size, valid pairs) entries, without repeats
    torch.testing.assert_close(used.sum(1), flat_mask.sum(1).clamp_max(omega_size))
    assert all(len(set(row[row >= 0].tolist())) == int(row.ge(0).sum()) for row in omega)
    # the masked values play no part
    other = contrastive_local_attention_loss(positive.masked_fill(~mask, 0.5), negative.masked_fill(~mask, 0.3),
                                             omega_size=omega_size, mask=mask)
    torch.testing.assert_close(other, out["local_loss"])


@given(seed=st.integers(0, 10_000), beta=st.floats(0, 5), omega_size=st.integers(1, 12))
def test_no_divergence_means_no_amplification(seed, beta, omega_size):
    _, negative, _ = attention_pair(seed, 3, 4, 5)
    out = contrastive_local_attention_loss(negative, negative, beta=beta, omega_size=omega_size, output_dict=True)
    assert (out["divergence"] == 0).all()
    # all pairs tie, so Omega is the first omega_size flat indices, and A_b = A-
    assert torch.equal(out["omega_index"], torch.arange(omega_size).expand(3, -1))
    expected = -negative.reshape(3, -1)[:, :omega_size].log().mean()
    torch.testing.assert_close(out["local_loss"], expected)


def test_finite_for_exact_zeros_and_ones():
    positive = F.one_hot(torch.tensor([[0, 1, 2], [3, 3, 0]]), 4).float()
    negative = F.one_hot(torch.tensor([[1, 1, 3], [0, 2, 0]]), 4).float()
    for beta in (0.0, 1.0, 10.0):
        for omega_size in (1, 5, 12):
            leaves = positive.clone().requires_grad_(), negative.clone().requires_grad_()
            loss = contrastive_local_attention_loss(*leaves, beta=beta, omega_size=omega_size)
            loss.backward()
            assert torch.isfinite(loss) and all(torch.isfinite(leaf.grad).all() for leaf in leaves)
    # no divergence: Omega is each sample's first 8 pairs (rows 0 and 1), 6 of them at A- = 0, hence -log(eps)
    assert contrastive_local_attention_loss(negative, negative) == pytest.approx(-math.log(1e-6) * 6 / 8, rel=1e-6)


# beta is 0 or not so small that its gradient contribution underflows float32
@given(seed=st.integers(0, 10_000), beta=st.one_of(st.just(0.0), st.floats(1e-3, 1)), omega_size=st.integers(1, 12))
def test_loss_falls_as_negative_attention_grows_on_omega(seed, beta, omega_size):
    """For beta <= 1, A- * (1 + beta * |A+ - A-|) increases with A-: the gradient is < 0 on Omega, 0 elsewhere.
    A+ gets a gradient through dA, on Omega only, when beta > 0."""
    positive, negative, mask = attention_pair(seed, 2, 4, 5)
    positive, negative = positive.requires_grad_(), negative.requires_grad_()
    out = contrastive_local_attention_loss(positive, negative, beta=beta, omega_size=omega_size, mask=mask,
                                           output_dict=True)
    out["local_loss"].backward()
    gradient = negative.grad.reshape(2, -1)
    in_omega = torch.zeros_like(gradient, dtype=torch.bool)
    for row, indices in enumerate(out["omega_index"]):
        in_omega[row, indices[indices >= 0]] = True
    assert (gradient[in_omega] < 0).all() and (gradient[~in_omega] == 0).all()
    positive_gradient = positive.grad.reshape(2, -1)
    assert (positive_gradient[~in_omega] == 0).all()
    assert (positive_gradient[in_omega].abs().sum() > 0) == (beta > 0)


def test_loss_falls_when_negative_attention_grows_at_the_divergent_pair():
    positive = torch.tensor([[[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]])
    negative = torch.tensor([[[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]])
    before = contrastive_local_attention_loss(positive, negative, omega_size=2, output_dict=True)
    assert sorted(before["omega_index"][0].tolist()) == [0, 1]
    grown = negative.clone()
    grown[0, 0, 1] = 0.8  # A- grows where it already exceeds A+: the pair stays in Omega
    assert contrastive_local_attention_loss(positive, grown, omega_size=2) < before["local_loss"]


@given(**sizes, omega_size=st.integers(1, 12))
def test_permuting_the_batch_leaves_the_loss_unchanged(seed, batch, text_length, context_length, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    permutation = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        contrastive_local_attention_loss(positive[permutation], negative[permutation], omega_size=omega_size,
                                         mask=mask[permutation]),
        contrastive_local_attention_loss(positive, negative, omega_size=omega_size, mask=mask))


def test_half_precision_maps_are_scored_in_float32():
    positive, negative, mask = attention_pair(2, 3, 4, 5)
    positive, negative = positive.bfloat16(), negative.bfloat16()
    loss = contrastive_local_attention_loss(positive, negative, mask=mask)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, contrastive_local_attention_loss(positive.float(), negative.float(), mask=mask))


# --- the most divergent token -----------------------------------------------------------------------


def test_most_divergent_token_finds_the_swapped_word():
    # "a red cube left of a blue ball" vs its negative with "red" -> "green" (token 1): only
    # token 1's attention moves (from the red patch 0 to patch 2); token 4 is padding that moved more.
    positive = torch.full((2, 5, 3), 1 / 3)
    positive[:, 1] = torch.tensor([0.8, 0.1, 0.1])
    negative = positive.clone()
    negative[:, 1] = torch.tensor([0.1, 0.1, 0.8])
    negative[1, 4] = torch.tensor([0.0, 0.0, 1.0])
    positive[1, 4] = torch.tensor([1.0, 0.0, 0.0])
    text_mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    assert most_divergent_token(positive, negative, text_mask).tolist() == [1, 1]
    assert most_divergent_token(positive, negative).tolist() == [1, 4]


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, kwargs, name",
    [
        (lambda p, n, m: (p, n[:, :2], m), {}, "attn_neg"),
        (lambda p, n, m: (p[0], n, m), {}, "attn_pos"),
        (lambda p, n, m: (p + 1, n, m), {}, "attn_pos"),
        (lambda p, n, m: (p, -n, m), {}, "attn_neg"),
        (lambda p, n, m: (nan_at_first(p), n, m), {}, "attn_pos"),
        (lambda p, n, m: (p, n, m.float()), {}, "mask"),
        (lambda p, n, m: (p, n, m & False), {}, "mask"),
        (lambda p, n, m: (p, n, m), dict(beta=-0.1), "beta"),
        (lambda p, n, m: (p, n, m), dict(beta=float("inf")), "beta"),
        (lambda p, n, m: (p, n, m), dict(omega_size=0), "omega_size"),
        (lambda p, n, m: (p, n, m), dict(omega_size=2.0), "omega_size"),
        (lambda p, n, m: (p, n, m), dict(eps=0.0), "eps"),
    ],
)
def test_bad_loss_inputs_name_the_argument(change, kwargs, name):
    positive, negative, mask = change(*attention_pair(0, 2, 3, 4))
    with pytest.raises(ValueError, match=name):
        contrastive_local_attention_loss(positive, negative, mask=mask, **kwargs)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p, n: attention_divergence(p, n, torch.ones(2, 3, 3, dtype=torch.bool)), "mask"),
        (lambda p, n: attention_divergence(p, n[:1]), "attn_neg"),
        (lambda p, n: most_divergent_token(p, n, torch.zeros(2, 3, dtype=torch.bool)), "text_mask"),
        (lambda p, n: most_divergent_token(p + 2, n), "attn_pos"),
    ],
)
def test_bad_divergence_inputs_name_the_argument(call, name):
    positive, negative, _ = attention_pair(0, 2, 3, 4)
    with pytest.raises(ValueError, match=name):
        call(positive, negative)
