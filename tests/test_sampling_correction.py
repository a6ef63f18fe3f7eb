"""The sampling correction: exact set probabilities of Gumbel-top-k and McFadden's unbiased offsets.

The central test enumerates every (positive, drawn set) pair of a small pool, so the expected
gradients are exact sums, not Monte Carlo estimates.
"""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bacl.sampler import BoundarySampler
from bacl.sampling_correction import MAX_SET_SIZE, mcfadden_offsets, sampling_correction, set_log_probability
# The brute force over orders (theory's symbolic derivation uses it too): exact for floats as well.
from theory.sims.symbolic import plackett_luce as plackett_luce_set_probability


def rest_mass(log_weights: torch.Tensor, excluded) -> torch.Tensor:
    keep = [i for i in range(log_weights.shape[-1]) if i not in set(excluded)]
    return torch.logsumexp(log_weights[..., keep], -1) if keep else torch.tensor(float("-inf"), dtype=log_weights.dtype)


log_weight_lists = st.lists(st.floats(-4, 4), min_size=6, max_size=6)


@given(log_weight_lists, st.integers(1, 4))
def test_set_probability_is_the_plackett_luce_sum_and_sums_to_one(values, size):
    log_weights = torch.tensor(values, dtype=torch.float64)
    total = 0.0
    for members in itertools.combinations(range(6), size):
        rest = rest_mass(log_weights, members)
        exact = set_log_probability(log_weights[list(members)], rest).exp().item()
        expected = plackett_luce_set_probability(log_weights.exp().tolist(), members, rest.exp().item())
        assert math.isclose(exact, expected, rel_tol=1e-10)
        total += exact
    assert math.isclose(total, 1.0, rel_tol=1e-10)


def test_set_probability_stays_accurate_where_an_alternating_sum_would_cancel():
    # Four light items against a heavy rest: P ~ 4! prod(w) / W_rest^4 ~ 1e-24, far below float64's
    # cancellation floor for an inclusion-exclusion sum of O(1) terms.
    log_weights = torch.zeros(4, dtype=torch.float64)
    rest = torch.tensor(math.log(1e6), dtype=torch.float64)
    expected = plackett_luce_set_probability([1.0] * 4, (0, 1, 2, 3), 1e6)
    assert math.isclose(set_log_probability(log_weights, rest).exp().item(), expected, rel_tol=1e-9)


@given(log_weight_lists, st.integers(0, 3))
def test_an_invalid_item_is_absent_from_the_set(values, dropped):
    log_weights = torch.tensor(values[:4], dtype=torch.float64)
    rest = torch.tensor(values[4], dtype=torch.float64)
    valid = torch.ones(4, dtype=torch.bool)
    valid[dropped] = False
    kept = [i for i in range(4) if i != dropped]
    with_invalid = set_log_probability(log_weights.clone().index_fill(0, torch.tensor([dropped]), float("-inf")), rest, valid)
    torch.testing.assert_close(with_invalid, set_log_probability(log_weights[kept], rest))


def test_set_probability_matches_the_frequencies_of_boundary_sampler_draws():
    # One pool repeated over many rows: the draw frequencies estimate the set probabilities.
    generator = torch.Generator().manual_seed(0)
    rows, pool, k = 40_000, 5, 2
    anchor = torch.randn(1, 6, generator=generator).expand(rows, -1)
    positive = torch.randn(1, 6, generator=generator).expand(rows, -1)
    candidates = torch.randn(1, pool, 6, generator=generator).expand(rows, -1, -1)
    draw = BoundarySampler(num_negatives=k)(anchor, positive, candidates, 0.9, generator=generator)
    log_probability = draw.probabilities[0].double().log()
    counts = torch.zeros(pool, pool)
    pairs = draw.index.sort(1).values
    counts.index_put_((pairs[:, 0], pairs[:, 1]), torch.ones(rows), accumulate=True)
    for members in itertools.combinations(range(pool), k):
        exact = set_log_probability(log_probability[list(members)], rest_mass(log_probability, members)).exp().item()
        frequency = counts[members].item() / rows
        assert abs(frequency - exact) < 5 * math.sqrt(exact * (1 - exact) / rows) + 1e-4


def expected_gradients(scores, sampler_logits, k, corrected):
    """Exact E[d loss / d scores] over the positive J ~ softmax(scores) and the draw given J.

    scores: (N,) logits of the N candidates of one pool; sampler_logits: (N, N), row j the sampler's
    logits over the pool when candidate j is the positive (its own entry unused). The loss is
    -log softmax over T = {J} + drawn of (scores + offsets), offsets McFadden's or 0.
    """
    n = scores.shape[0]
    labels = torch.softmax(scores, 0)
    gradient = torch.zeros(n, dtype=torch.float64)
    for positive in range(n):
        pool = [c for c in range(n) if c != positive]
        for drawn in itertools.combinations(pool, k):
            members = [positive, *drawn]
            rest = torch.stack([rest_mass(sampler_logits[m], members) for m in members])
            draw_probability = set_log_probability(sampler_logits[positive, list(drawn)], rest[0]).exp()
            offsets = mcfadden_offsets(sampler_logits[members][:, members], rest) if corrected else 0.0
            q = torch.softmax(scores[members] + offsets, 0)
            step = torch.zeros(n, dtype=torch.float64).index_add(0, torch.tensor(members), q)
            step[positive] -= 1.0
            gradient += labels[positive] * draw_probability * step
    return gradient


small_pools = dict(n=st.integers(3, 5), seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0))


@settings(deadline=None, max_examples=30)
@given(**small_pools, k=st.integers(1, 3))
def test_corrected_expected_gradient_equals_the_full_softmax_gradient(n, seed, scale, k):
    k = min(k, n - 1)
    generator = torch.Generator().manual_seed(seed)
    scores = 2 * torch.randn(n, generator=generator, dtype=torch.float64)
    # A sampler whose logits depend on which candidate is the positive, as BNS's do.
    sampler_logits = scale * torch.randn(n, n, generator=generator, dtype=torch.float64)
    full = torch.softmax(scores, 0) - torch.softmax(scores, 0)  # E_J[softmax(s) - e_J] at J ~ softmax(s): 0
    torch.testing.assert_close(expected_gradients(scores, sampler_logits, k, corrected=True), full, atol=1e-12, rtol=0)


def test_without_the_correction_a_positive_dependent_draw_biases_the_gradient_and_a_uniform_one_does_not():
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(5, generator=generator, dtype=torch.float64)
    tilted = 2 * torch.randn(5, 5, generator=generator, dtype=torch.float64)
    assert expected_gradients(scores, tilted, 2, corrected=False).abs().max() > 1e-2
    uniform = torch.zeros(5, 5, dtype=torch.float64)  # uniform conditioning: every offset is equal
    torch.testing.assert_close(expected_gradients(scores, uniform, 2, corrected=False), torch.zeros(5, dtype=torch.float64),
                               atol=1e-12, rtol=0)


@settings(deadline=None, max_examples=30)
@given(**small_pools, k=st.integers(1, 3))
def test_sampling_correction_is_mcfadden_for_positive_independent_logits(n, seed, scale, k):
    # The convenience form (the sampler's logits over the pool of the actual positive, plus the
    # positive's own logit) gives the same offsets as the general form when the logits of every
    # candidate are the same whichever candidate is the positive.
    k = min(k, n - 1)
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, generator=generator, dtype=torch.float64)
    positive = 0
    pool = list(range(1, n))
    for drawn in itertools.combinations(range(len(pool)), k):
        members = [positive, *(pool[d] for d in drawn)]
        rest = rest_mass(logits, members).expand(k + 1)
        general = mcfadden_offsets(logits[members].expand(k + 1, k + 1), rest)
        correction = sampling_correction(logits[pool][None], torch.tensor([drawn]), torch.ones(1, k, dtype=torch.bool),
                                         logits[:1])
        torch.testing.assert_close(correction[0], general[1:] - general[0])


def test_sampling_correction_limits_uniform_draws_invalid_rows_and_the_logq_limit():
    generator = torch.Generator().manual_seed(2)
    index = torch.tensor([[0, 1], [1, 2]])
    valid = torch.tensor([[True, True], [True, False]])
    # Uniform sampling: uniform conditioning, no correction.
    flat = sampling_correction(torch.zeros(2, 6), index, torch.ones(2, 2, dtype=torch.bool), torch.zeros(2))
    torch.testing.assert_close(flat, torch.zeros(2, 2))
    # Row 1's pool had one admissible candidate for K = 2, so the draw took all of it: no correction.
    logits = torch.randn(2, 6, generator=generator).index_fill(1, torch.tensor([3, 4, 5]), float("-inf"))
    logits[1, [0, 2]] = float("-inf")
    correction = sampling_correction(logits, index, valid, torch.zeros(2))
    assert (correction[1] == 0).all() and (correction[0] != 0).all()
    # Against a heavy rest of the pool the draws are nearly independent: the correction tends to
    # the sampled softmax's "logQ" term, the positive's logit minus the negative's.
    pool = torch.cat([torch.tensor([[1.0, -0.5, 0.3]]), torch.full((1, 2000), 0.0)], 1).double()
    correction = sampling_correction(pool, torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool),
                                     torch.tensor([0.3], dtype=torch.float64))
    torch.testing.assert_close(correction, torch.tensor([[0.3 - 1.0, 0.3 + 0.5]], dtype=torch.float64), atol=5e-3, rtol=0)
    # float32 (what training passes) agrees with float64: every term of the recursion is positive.
    logits = 3 * torch.randn(50, 15, generator=generator, dtype=torch.float64)
    index = torch.rand(50, 15, generator=generator).topk(4, -1).indices
    every = torch.ones(50, 4, dtype=torch.bool)
    reference = sampling_correction(logits, index, every, logits[:, 0])
    torch.testing.assert_close(sampling_correction(logits.float(), index, every, logits[:, 0].float()).double(), reference,
                               atol=1e-4, rtol=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="log_weights"):
        set_log_probability(torch.zeros(MAX_SET_SIZE + 1), torch.tensor(0.0))
    with pytest.raises(ValueError, match="log_weights"):
        set_log_probability(torch.tensor([0.0, float("-inf")]), torch.tensor(0.0))
    with pytest.raises(ValueError, match="rest_log_mass"):
        set_log_probability(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="valid"):
        set_log_probability(torch.zeros(3), torch.tensor(0.0), torch.ones(3))
    with pytest.raises(ValueError, match="member_log_weights"):
        mcfadden_offsets(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="rest_log_mass"):
        mcfadden_offsets(torch.zeros(3, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="positive_log_weight"):
        sampling_correction(torch.zeros(2, 5), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool),
                            torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="index"):
        sampling_correction(torch.zeros(2, 5), torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), torch.zeros(2))
