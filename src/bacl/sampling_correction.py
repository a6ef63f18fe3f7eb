"""Sampling correction for negatives drawn by Gumbel-top-k: McFadden's conditional logit on the drawn set.

The bias it removes. BNS gives an anchor a softmax over its positive ``j`` and ``K`` negatives ``S``
drawn from its pool ``C`` by Gumbel-top-k, i.e. successive sampling without replacement from
``softmax(l)`` (Plackett-Luce). The draw depends on which candidate is the positive: the positive is
not in its own pool, and the sampler's logits ``l`` are computed from it. Let the positive be a Luce
choice from the pool, ``P(J = m) = p_m = softmax(s*)_m``, and let ``pi_m(S)`` be the probability of
drawing the set ``S`` when ``m`` is the positive. For the drawn set ``T = S + {j}`` Bayes' rule gives

    P(J = m | T) = p_m pi_m(T - m) / sum_{m' in T} p_m' pi_m'(T - m') = softmax_{m in T}(s*_m + o_m),
    o_m = log pi_m(T - m)                                          (McFadden 1978, "sampling of alternatives")

so the loss ``-log softmax_T(s + o)_j`` is the exact conditional log-likelihood of the label given
the drawn set. The plain loss ``-log softmax_T(s)_j`` (offsets 0) is that likelihood only when the
``o_m`` are equal across ``T`` ("uniform conditioning", true for uniform sampling); otherwise its
population minimiser absorbs the offsets (``s ~ s* + o``): a biased limit, whatever n.

What is exact and what is not.

1. :func:`set_log_probability` is exact: the probability that Gumbel-top-k puts exactly a given set
   first, by a recursion over the set's subsets whose terms are all positive (no cancellation;
   ``K 2^K`` operations per row, so K is capped at ``MAX_SET_SIZE``).
2. :func:`mcfadden_offsets` is exact given the sampler's log-weights under each hypothetical
   positive (the general, positive-dependent case).
3. With those offsets, at the scorer that generated the labels (``s = s*``) the expected gradient of
   the corrected loss equals the full-softmax loss's: both are zero. The estimating equation is
   unbiased, so the corrected estimator is consistent for the full-softmax optimum for any sampler,
   however it depends on the positive, the curriculum position or a policy, provided the offsets
   use the distribution the draw actually came from. Away from ``s*`` the two expected gradients
   differ (a softmax over K + 1 candidates is not one over the pool); they share their zero. The
   model must be well specified for "the full-softmax optimum" to be the truth.
4. :func:`sampling_correction` assumes positive-independent log-weights: each candidate's sampler
   logit does not depend on which candidate is the positive, except through a shift common to the
   whole pool and the positive's removal from its own pool. BNS's curriculum term
   ``-alpha BS / T`` satisfies it (the positive enters BS as a per-row shift), so for the curriculum
   alone the correction is exact. BNS's policy priority does not (its MLP sees positive-relative
   features), so with a policy the correction neglects how the other members' priorities would
   change under a hypothetical positive: an approximation, exact when the priorities do not depend
   on the positive.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["MAX_SET_SIZE", "mcfadden_offsets", "sampling_correction", "set_log_probability"]

# The recursion visits 2^K subsets per row: 12 -> 4096 states, already more work than the loss it
# corrects; BNS draws K = 4.
MAX_SET_SIZE = 12


def _check_set(log_weights: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if not isinstance(log_weights, torch.Tensor) or not log_weights.is_floating_point() or log_weights.dim() < 1:
        raise ValueError(f"log_weights must be a floating tensor (..., K), got {log_weights!r}")
    size = log_weights.shape[-1]
    if not 1 <= size <= MAX_SET_SIZE:
        raise ValueError(f"log_weights must hold 1 to MAX_SET_SIZE={MAX_SET_SIZE} items in its last dim, got {size}")
    if valid is None:
        valid = torch.ones(log_weights.shape, dtype=torch.bool, device=log_weights.device)
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != log_weights.shape:
        raise ValueError(f"valid must be a bool tensor of shape {tuple(log_weights.shape)}, got {valid!r}")
    if torch.isnan(log_weights).any() or (valid & ~torch.isfinite(log_weights)).any():
        raise ValueError("log_weights must be finite on valid items (a zero-weight item cannot have been drawn)")
    return valid


@functools.lru_cache(maxsize=None)
def _levels(size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per subset size L: the subsets (C,), their members (C, L) and each subset minus each member (C, L)."""
    levels = []
    for level in range(1, size + 1):
        subsets = [s for s in range(1, 1 << size) if bin(s).count("1") == level]
        members = [[b for b in range(size) if s >> b & 1] for s in subsets]
        removed = [[s ^ (1 << b) for b in m] for s, m in zip(subsets, members)]
        levels.append((torch.tensor(subsets), torch.tensor(members), torch.tensor(removed)))
    return levels


def _logsumexp(values: torch.Tensor, dim: int) -> torch.Tensor:
    """logsumexp of finite values (torch's own also guards against infinities, at twice the cost)."""
    peak = values.amax(dim, keepdim=True)
    return (values - peak).exp().sum(dim).log() + peak.squeeze(dim)


def _subset_table(log_weights: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """(2^K, N) log h(B) for every subset B (bit b = item b) of K items with finite log-weights (K, N)."""
    table = log_weights.new_zeros(1 << log_weights.shape[0], log_weights.shape[1])  # h({}) = 1
    for subsets, members, removed in _levels(log_weights.shape[0]):
        weights = log_weights[members]  # (C, L, N)
        denominator = torch.logaddexp(rest, _logsumexp(weights, 1))
        table[subsets] = _logsumexp(weights + table[removed], 1) - denominator
    return table


def _valid_bits(valid: torch.Tensor) -> torch.Tensor:
    """(...) the valid items of (..., K) as a bit mask."""
    return (valid.long() << torch.arange(valid.shape[-1], device=valid.device)).sum(-1)


def set_log_probability(log_weights: torch.Tensor, rest_log_mass: torch.Tensor,
                        valid: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probability that Gumbel-top-k draws exactly a given set before anything else.

    Args:
        log_weights: (..., K) log-weights (unnormalised sampler logits) of the set's items.
        rest_log_mass: (...) log of the summed weight of every other item that could have been
            drawn (``-inf``: none), in the same units.
        valid: optional (..., K) bool; an invalid item is absent (the set is the valid items).
    Returns:
        (...) ``log P(set)`` in the dtype of ``log_weights`` (float64 for reference precision; every
        term is positive, so float32 loses only rounding), detached. With ``h(B)`` the probability that the items of ``B``
        are all drawn before the rest, ``h({}) = 1`` and
        ``h(B) = sum_{b in B} w_b / (W_rest + w_B) * h(B - b)`` (the first of ``B`` is ``b``), exact.
    """
    valid = _check_set(log_weights, valid)
    if not isinstance(rest_log_mass, torch.Tensor) or rest_log_mass.shape != log_weights.shape[:-1]:
        raise ValueError(f"rest_log_mass must be a tensor of shape {tuple(log_weights.shape[:-1])}, got {rest_log_mass!r}")
    if torch.isnan(rest_log_mass).any() or (rest_log_mass == float("inf")).any():
        raise ValueError("rest_log_mass must be finite or -inf")
    # Invalid items get a finite placeholder: only subsets of valid items are read out.
    weights = torch.where(valid, log_weights.detach(), 0.0).reshape(-1, log_weights.shape[-1]).T
    table = _subset_table(weights, rest_log_mass.detach().to(weights.dtype).reshape(-1))
    return table.gather(0, _valid_bits(valid).reshape(1, -1))[0].reshape(rest_log_mass.shape)


def mcfadden_offsets(member_log_weights: torch.Tensor, rest_log_mass: torch.Tensor,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """McFadden's offsets ``o_i = log pi_i(T - t_i)`` for every member ``t_i`` of a drawn set ``T``.

    Args:
        member_log_weights: (..., M, M), ``[..., i, l]`` the sampler's log-weight of member ``l``
            when member ``i`` is the positive (the diagonal is unused: the positive is not in its
            own pool). Expand a (..., M) tensor when the log-weights do not depend on the positive.
        rest_log_mass: (..., M), ``[..., i]`` the log of the summed weight of the pool outside ``T``
            when member ``i`` is the positive.
        valid: optional (..., M) bool; invalid members are absent from ``T`` (their offset is 0).
    Returns:
        (..., M) in the dtype of ``member_log_weights``, detached: add ``o_i`` to member ``i``'s logit (only differences matter).
    """
    if not isinstance(member_log_weights, torch.Tensor) or member_log_weights.dim() < 2 \
            or member_log_weights.shape[-1] != member_log_weights.shape[-2]:
        raise ValueError(f"member_log_weights must be a tensor (..., M, M), got {member_log_weights!r}")
    size = member_log_weights.shape[-1]
    if size < 2:
        raise ValueError(f"a drawn set holds the positive and at least one negative (M >= 2), got M = {size}")
    batch = member_log_weights.shape[:-2]
    if not isinstance(rest_log_mass, torch.Tensor) or rest_log_mass.shape != (*batch, size):
        raise ValueError(f"rest_log_mass must be a tensor of shape {(*batch, size)}, got {rest_log_mass!r}")
    if valid is None:
        valid = torch.ones(*batch, size, dtype=torch.bool, device=member_log_weights.device)
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != (*batch, size):
        raise ValueError(f"valid must be a bool tensor of shape {(*batch, size)}, got {valid!r}")
    others = torch.tensor([[m for m in range(size) if m != i] for i in range(size)], device=member_log_weights.device)
    others_weights = member_log_weights.gather(-1, others.expand(*batch, size, size - 1))  # (..., M, M-1)
    offsets = set_log_probability(others_weights, rest_log_mass, valid[..., others])
    return torch.where(valid, offsets, torch.zeros_like(offsets))


def sampling_correction(log_weights: torch.Tensor, index: torch.Tensor, valid: torch.Tensor,
                        positive_log_weight: torch.Tensor) -> torch.Tensor:
    """The log-correction to add to each drawn negative's logit (positive-independent log-weights).

    Args:
        log_weights: (B, P) the sampler's logits over each anchor's pool (``-inf`` where a candidate
            is inadmissible, e.g. the anchor's own positive in an in-batch pool); any per-row shift.
        index: (B, K) pool positions of the drawn negatives; valid: (B, K) bool, False where the pool
            had fewer than K admissible candidates.
        positive_log_weight: (B,) the logit the sampler would give the positive as a candidate of
            another member's pool, in the units of ``log_weights`` (for BNS: the policy's priority at
            BS = 0, where the curriculum term vanishes).
    Returns:
        (B, K) ``o_k - o_positive`` (dtype of ``log_weights``, detached); 0 where invalid, and for every draw of a row
        with an invalid draw (its whole admissible pool was drawn, so every member's set has
        probability 1). Exact under the assumption in the module docstring (item 4).
    """
    if not isinstance(log_weights, torch.Tensor) or log_weights.dim() != 2 or not log_weights.is_floating_point():
        raise ValueError(f"log_weights must be a floating tensor (B, P), got {log_weights!r}")
    batch = log_weights.shape[0]
    if not isinstance(index, torch.Tensor) or index.dim() != 2 or index.shape[0] != batch or index.dtype != torch.long:
        raise ValueError(f"index must be a long tensor (B={batch}, K), got {index!r}")
    if not isinstance(valid, torch.Tensor) or valid.shape != index.shape or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor of shape {tuple(index.shape)}, got {valid!r}")
    if not isinstance(positive_log_weight, torch.Tensor) or positive_log_weight.shape != (batch,) \
            or not torch.isfinite(positive_log_weight).all():
        raise ValueError(f"positive_log_weight must be a finite tensor of shape ({batch},), got {positive_log_weight!r}")
    log_weights = log_weights.detach()
    drawn = log_weights.gather(1, index)
    rest = torch.logsumexp(log_weights.scatter(1, index, float("-inf")), dim=1)
    members = torch.cat([positive_log_weight.detach().to(drawn.dtype)[:, None], drawn], dim=1)
    member_valid = _check_set(members, torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=valid.device), valid], 1))
    members = torch.where(member_valid, members, 0.0)  # a finite placeholder: invalid members are never read out
    # The log-weights do not depend on the positive, so one table over the members' subsets holds
    # every member's leave-one-out set (mcfadden_offsets would build one table per member).
    table = _subset_table(members.T, rest)
    full = _valid_bits(member_valid)
    leave_one_out = full[None, :] & ~(1 << torch.arange(members.shape[1], device=full.device))[:, None]  # (M, B)
    offsets = table.gather(0, leave_one_out).T
    correction = offsets[:, 1:] - offsets[:, :1]
    return torch.where(valid & valid.all(1, keepdim=True), correction, torch.zeros_like(correction))
