"""BNS: boundary scores and the boundary-aware sampler."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from bacl.sampler import BoundarySampler, boundary_score
from bacl.schedule import CurriculumSchedule


def embeddings(seed, batch, pool, dim=8):
    gen = torch.Generator().manual_seed(seed)
    anchor = F.normalize(torch.randn(batch, dim, generator=gen), dim=-1)
    positive = F.normalize(anchor + 0.5 * torch.randn(batch, dim, generator=gen), dim=-1)
    candidates = F.normalize(torch.randn(batch, pool, dim, generator=gen), dim=-1)
    return anchor, positive, candidates


sizes = dict(seed=st.integers(0, 10_000), batch=st.integers(1, 6), pool=st.integers(4, 12))


@given(**sizes)
def test_boundary_score_definition(seed, batch, pool):
    anchor, positive, candidates = embeddings(seed, batch, pool)
    score = boundary_score(anchor, positive, candidates)
    expected = torch.einsum("bd,bpd->bp", anchor, candidates) - (anchor * positive).sum(-1, keepdim=True)
    torch.testing.assert_close(score, expected)
    # a shared pool gives the same as the same pool repeated for every anchor
    shared = candidates[0]
    torch.testing.assert_close(
        boundary_score(anchor, positive, shared), boundary_score(anchor, positive, shared.expand(batch, -1, -1))
    )
    # the positive itself scores exactly 0
    torch.testing.assert_close(boundary_score(anchor, positive, positive[:, None, :]), torch.zeros(batch, 1))


@given(**sizes, k=st.integers(1, 4), progress=st.floats(0, 1))
def test_positive_and_its_copies_are_never_drawn(seed, batch, pool, k, progress):
    anchor, positive, candidates = embeddings(seed, batch, pool)
    candidates = candidates.clone()
    candidates[:, 0] = positive * 3.0  # the positive itself, at another scale
    candidates[:, 1] = positive
    sampler = BoundarySampler(num_negatives=k)
    draw = sampler(anchor, positive, candidates, progress, generator=torch.Generator().manual_seed(seed))
    drawn_copy = (draw.index < 2) & draw.valid
    assert not drawn_copy.any()
    assert (draw.probabilities[:, :2] == 0).all()
    assert draw.valid.sum(1).le(pool - 2).all()


def test_in_batch_pool_excludes_the_anchors_own_positive():
    anchor, positive, _ = embeddings(0, 8, 4)
    own = torch.eye(8, dtype=torch.bool)
    draw = BoundarySampler(num_negatives=7)(anchor, positive, positive, 0.5, candidate_mask=~own)
    assert draw.valid.all()
    assert not (draw.index == torch.arange(8)[:, None]).any()
    assert torch.equal(draw.index.sort(1).values, (~own).nonzero()[:, 1].view(8, 7))


def test_fewer_admissible_than_k_marks_the_rest_invalid():
    anchor, positive, candidates = embeddings(1, 3, 6)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[:, :2] = True
    mask[2] = False  # an anchor with no admissible candidate at all
    draw = BoundarySampler(num_negatives=4)(anchor, positive, candidates, 0.3, candidate_mask=mask)
    assert draw.valid.sum(1).tolist() == [2, 2, 0]
    assert torch.equal(draw.weights, draw.valid.float())
    assert torch.isfinite(draw.policy_loss)
    draw.policy_loss.backward()


def high_bs_mass(sampler, anchor, positive, candidates, progress):
    probabilities = sampler(anchor, positive, candidates, progress).probabilities
    score = boundary_score(anchor, positive, candidates)
    return (probabilities * score).sum(-1)  # expected boundary score of a draw


@given(**sizes)
def test_curriculum_moves_mass_from_easy_to_hard(seed, batch, pool):
    torch.manual_seed(seed)
    anchor, positive, candidates = embeddings(seed, batch, pool)
    sampler = BoundarySampler(num_negatives=1)
    score = boundary_score(anchor, positive, candidates)
    early = high_bs_mass(sampler, anchor, positive, candidates, 0.0)  # alpha > 0
    neutral = high_bs_mass(sampler, anchor, positive, candidates, sampler.schedule.crossover)  # alpha = 0
    late = high_bs_mass(sampler, anchor, positive, candidates, 1.0)  # alpha < 0
    distinct = score.max(1).values - score.min(1).values > 1e-4
    assert (early[distinct] < neutral[distinct] + 1e-6).all()
    assert (neutral[distinct] < late[distinct] + 1e-6).all()
    assert (early[distinct] < late[distinct]).all()


@given(**sizes, progress=st.floats(0, 1))
def test_same_seed_same_draw(seed, batch, pool, progress):
    anchor, positive, candidates = embeddings(seed, batch, pool)
    sampler = BoundarySampler(num_negatives=2)
    first = sampler(anchor, positive, candidates, progress, generator=torch.Generator().manual_seed(seed))
    second = sampler(anchor, positive, candidates, progress, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(first.index, second.index)
    assert torch.equal(first.relaxed, second.relaxed)


def test_draw_frequencies_follow_the_sampling_distribution():
    anchor, positive, candidates = embeddings(3, 1, 5)
    sampler = BoundarySampler(num_negatives=1)
    generator = torch.Generator().manual_seed(0)
    reps = 4000
    draw = sampler(anchor.expand(reps, -1), positive.expand(reps, -1), candidates.expand(reps, -1, -1), 0.2,
                   generator=generator)
    frequency = torch.bincount(draw.index[:, 0], minlength=5).float() / reps
    torch.testing.assert_close(frequency, draw.probabilities[0], atol=0.03, rtol=0)


def test_gradients_reach_the_policy_only():
    anchor, positive, candidates = embeddings(4, 6, 10)
    anchor.requires_grad_(True)
    sampler = BoundarySampler(num_negatives=3)
    draw = sampler(anchor, positive, candidates, 0.7, generator=torch.Generator().manual_seed(0))
    draw.policy_loss.backward()
    grads = [p.grad for p in sampler.policy.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert anchor.grad is None  # the draw uses similarities only


@given(seed=st.integers(0, 10_000), batch=st.integers(1, 6), pool=st.integers(1, 12))
def test_policy_priorities_are_the_mlp_and_its_gradient_autograd_s(seed, batch, pool):
    """priorities() runs the policy MLP through a hand-written backward that recomputes the hidden
    activations: the same priorities bit for bit, the gradient of autograd through nn.Sequential."""
    torch.manual_seed(seed)
    sampler = BoundarySampler()
    features = torch.randn(batch, pool, 5, requires_grad=True)
    weights = torch.randn(batch, pool)
    reference = sampler.priority_scale * torch.tanh(sampler.policy(features).squeeze(-1))
    ours = sampler.priorities(features)
    assert torch.equal(ours, reference)
    parameters = [features, *sampler.policy.parameters()]
    expected = torch.autograd.grad((reference * weights).sum(), parameters)
    for got, want in zip(torch.autograd.grad((ours * weights).sum(), parameters), expected):
        torch.testing.assert_close(got, want)


def test_policy_learns_to_raise_the_reward():
    anchor, positive, candidates = embeddings(5, 32, 16)
    sampler = BoundarySampler(num_negatives=2, entropy_weight=0.0)
    optimizer = torch.optim.Adam(sampler.parameters(), lr=1e-2)
    score = boundary_score(anchor, positive, candidates)

    def expected_reward():
        with torch.no_grad():
            return (sampler(anchor, positive, candidates, 0.5).probabilities * score).sum(-1).mean()

    before = expected_reward()
    for step in range(60):
        draw = sampler(anchor, positive, candidates, 0.5, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        draw.policy_loss.backward()
        optimizer.step()
    assert expected_reward() > before + 0.01


@given(seed=st.integers(0, 1000))
def test_falling_gumbel_temperature_concentrates_the_relaxation_on_the_top_draw(seed):
    anchor, positive, candidates = embeddings(seed, 4, 8)
    peaks = []
    for temperature in (5.0, 0.5, 1e-5):
        sampler = BoundarySampler(num_negatives=1, gumbel_temperature=temperature)
        torch.manual_seed(0)  # same policy weights at every temperature
        sampler.policy.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
        draw = sampler(anchor, positive, candidates, 0.5, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(draw.relaxed.argmax(1), draw.index[:, 0])
        peaks.append(draw.relaxed.max(1).values)
    assert (peaks[0] <= peaks[1] + 1e-6).all() and (peaks[1] <= peaks[2] + 1e-6).all()
    assert (peaks[2] > 0.99).all()


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda a, p, c: (a[:, :4], p, c), "positive"),
        (lambda a, p, c: (a, p, c[..., :4]), "candidates"),
        (lambda a, p, c: (a.masked_fill(torch.zeros_like(a, dtype=torch.bool).index_fill(1, torch.tensor([0]), True), float("nan")), p, c), "anchor"),
        (lambda a, p, c: (a, p, c * float("inf")), "candidates"),
        (lambda a, p, c: (a[0], p, c), "anchor"),
        (lambda a, p, c: (a, p, c[:2]), "candidates"),
    ],
)
def test_bad_inputs_name_the_argument(change, name):
    anchor, positive, candidates = change(*embeddings(0, 4, 6))
    with pytest.raises(ValueError, match=name):
        BoundarySampler(num_negatives=2)(anchor, positive, candidates, 0.5)


def test_k_larger_than_pool():
    with pytest.raises(ValueError, match="K=7 is larger than the candidate pool \\(P=6\\)"):
        BoundarySampler(num_negatives=7)(*embeddings(0, 4, 6), 0.5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_negatives=0), "num_negatives"),
        (dict(gumbel_temperature=0.0), "gumbel_temperature"),
        (dict(boundary_temperature=-1.0), "boundary_temperature"),
        (dict(entropy_weight=float("nan")), "entropy_weight"),
        (dict(schedule="steep"), "steep"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BoundarySampler(**kwargs)


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan")])
def test_bad_progress(progress):
    with pytest.raises(ValueError, match="progress"):
        BoundarySampler()(*embeddings(0, 4, 6), progress)


def test_bad_candidate_mask():
    with pytest.raises(ValueError, match="candidate_mask"):
        BoundarySampler()(*embeddings(0, 4, 6), 0.5, candidate_mask=torch.ones(4, 5, dtype=torch.bool))


def test_schedule_object_is_used():
    schedule = CurriculumSchedule(1.0, -1.0, 3.0)
    assert BoundarySampler(schedule=schedule).schedule is schedule


@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_draw_carries_its_logits_and_the_positives_logit(seed, progress):
    """The sampling correction's inputs: the logits the draw sampled from (their softmax is the
    draw's distribution) and the positive's logit as a candidate, the priority the sampler gives the
    positive itself where the curriculum term vanishes (BS = 0)."""
    gen = torch.Generator().manual_seed(seed)
    anchor, positive = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    candidates = torch.randn(5, 6, 4, generator=gen)
    sampler = BoundarySampler(num_negatives=3, hidden_dim=8)
    draw = sampler(anchor, positive, candidates, progress, generator=gen)
    assert not draw.logits.requires_grad and not draw.positive_logit.requires_grad
    torch.testing.assert_close(torch.softmax(draw.logits, -1), draw.probabilities)
    recorded = []
    sampler.priorities = lambda features: recorded.append(BoundarySampler.priorities(sampler, features)) or recorded[-1]
    sampler(anchor, positive, positive[:, None].expand(-1, 6, -1), progress)
    torch.testing.assert_close(draw.positive_logit, recorded[0][:, 0])
