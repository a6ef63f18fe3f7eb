"""Exact population quantities of a bilinear scorer ``s_W(x, c) = x^T W c`` on unlabelled test pools.

The positive is integrated out with the true choice probabilities ``p = softmax(x^T W* c)``, so no
label noise enters the estimates; only the finite set of test pools does (shared by every run:
common random numbers). Every function takes a stack of R scorers ``weights`` (R, d, d) and returns
one value per scorer, (R,) float64.

* Pairwise misranking risk: the probability that a negative drawn uniformly from the pool outscores
  the positive, ``E[(1/P) sum_{k != J} (1{s_k > s_J} + 1{s_k = s_J} / 2)]`` (a tie broken at random).
  Ordering by ``x^T W* c`` minimises it, and its excess is ``(1/P) sum over misordered pairs {j, k}
  of |p_j - p_k|``, a tied pair counting half (>= 0 pool by pool; W = 0 ties everything: excess > 0).
* Contrastive log-loss: ``E[-log softmax(s_W)_J]``, minimised by W* (well specified); its excess is
  ``KL(p || softmax(s_W))``.
* Alignment margin: the expected logit margin ``s_W(x, c_J) - s_W(x, c_k)`` between the positive
  and an ambiguous negative k, given that the positive is in the boundary group. (Logits, not
  cosines: W* is a multiple of the identity at the default weights, so a cosine margin would be
  scale-free and already optimal for any W proportional to I.)
"""

from __future__ import annotations

import torch

from .model import TestPools

__all__ = ["alignment_margin", "excess_log_loss", "excess_pairwise_risk", "log_loss_risk", "pairwise_risk", "scores"]

# Scorers evaluated together; bounds the (chunk, T, P+1, P+1) pairwise tensor to a few 100 MB at T = 20 000.
_CHUNK = 8


def _check_weights(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    d = test.anchor.shape[1]
    if not isinstance(weights, torch.Tensor) or weights.dim() != 3 or weights.shape[1:] != (d, d):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must be a (R, {d}, {d}) tensor, got {shape}")
    if not torch.isfinite(weights).all():
        raise ValueError("weights contains NaN or inf")
    return weights.to(torch.float64)


def scores(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """x^T W c for every scorer, pool and candidate: (R, T, P+1)."""
    weights = _check_weights(weights, test)
    return torch.einsum("td,rde,tme->rtm", test.anchor, weights, test.candidates)


def _chunked(weights: torch.Tensor, test: TestPools, per_chunk) -> torch.Tensor:
    weights = _check_weights(weights, test)
    return torch.cat([per_chunk(scores(weights[i:i + _CHUNK], test)) for i in range(0, weights.shape[0], _CHUNK)])


def pairwise_risk(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """Probability that a uniformly drawn negative outscores the positive, a tie counting 1/2 (the
    error rate of breaking it at random), (R,)."""
    def per_chunk(s):
        # [j, k]: k outscores j (1) or ties with it (1/2); the diagonal's tie is removed below.
        beaten = (s[..., None, :] > s[..., :, None]).to(torch.float64) + 0.5 * (s[..., None, :] == s[..., :, None])
        return (test.probabilities[None] * (beaten.sum(-1) - 0.5)).sum(-1).mean(-1) / (s.shape[-1] - 1)
    return _chunked(weights, test, per_chunk)


def excess_pairwise_risk(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """Pairwise risk minus its minimum (attained by W*), computed pool by pool, (R,)."""
    true = torch.log(test.probabilities)  # a monotone transform of x^T W* c orders pairs the same way
    true_order = true[..., :, None] - true[..., None, :]
    gap = (test.probabilities[..., :, None] - test.probabilities[..., None, :]).abs()

    def per_chunk(s):
        difference = (s[..., :, None] - s[..., None, :]) * true_order
        # A tie of a truly ordered pair is misordered half the time when broken at random.
        misordered = (difference < 0).to(torch.float64) + 0.5 * (difference == 0)
        # Each unordered pair appears twice in the (P+1) x (P+1) grid, hence the 1/2.
        return 0.5 * (gap[None] * misordered).sum((-1, -2)).mean(-1) / (s.shape[-1] - 1)
    return _chunked(weights, test, per_chunk)


def log_loss_risk(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """Contrastive log-loss over the whole pool, (R,)."""
    return _chunked(weights, test, lambda s: -(test.probabilities[None] * torch.log_softmax(s, -1)).sum(-1).mean(-1))


def excess_log_loss(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """KL(p || softmax(s_W)) averaged over pools: the log-loss excess over W*, (R,)."""
    log_p = torch.log(test.probabilities)
    return _chunked(weights, test, lambda s: (test.probabilities[None] * (log_p[None] - torch.log_softmax(s, -1))).sum(-1).mean(-1))


def alignment_margin(weights: torch.Tensor, test: TestPools) -> torch.Tensor:
    """Expected logit margin ``s_W(x, c_J) - s_W(x, c_k)`` between the positive J and an ambiguous
    negative k (uniform over the other group members), given that J is in the group, (R,)."""
    weights = _check_weights(weights, test)
    ambiguous_count = int(test.in_group[0].sum()) - 1
    if ambiguous_count < 1:
        raise ValueError("the margin needs at least one ambiguous negative (ambiguous_negatives >= 1)")
    logits = scores(weights, test)
    group_p = test.probabilities * test.in_group
    group_sum = (logits * test.in_group).sum(-1, keepdim=True)
    per_pool = (group_p * (logits - (group_sum - logits) / ambiguous_count)).sum(-1)
    return per_pool.mean(-1) / group_p.sum(-1).mean()
