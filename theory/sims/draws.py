"""How each arm of the simulations picks the negatives of an anchor's softmax, and their log-offsets.

Every arm gives, per anchor, ``index`` (n, K) positions in its pool of P negatives and ``offset``
(n, K) added to those negatives' logits (the loss is bacl's contrastive loss of the positive against
them). The arms:

* ``uniform``: K of the P negatives uniformly without replacement, offset 0. Uniform conditioning
  (McFadden 1978): the chance of a candidate set does not depend on which member is the positive,
  so no offset is needed for consistency.
* ``full``: all P negatives, offset 0: the full-pool softmax, nothing sampled.
* ``bacl``: ``bacl.sampler.BoundarySampler`` (its policy MLP and the curriculum, boundary score
  cosine / 0.07), offset ``log(weights)`` = 0 for a valid draw, exactly as ``BACLLoss`` adds it.
* ``bacl_corrected``: the same draw, plus ``bacl.sampling_correction.sampling_correction``:
  exact for the curriculum term, an approximation for the policy (see that module).
* ``curriculum``: BNS's curriculum term alone (no policy): Gumbel-top-k from
  ``softmax(-alpha(eta) BS / 0.07)``, BS in cosine units as in the library; cheap enough for n = 1e5.
* ``curriculum_corrected``: the same plus the correction, which is exact for this sampler.
* ``curriculum_logit_units``: the curriculum term with BS in the learner's own logit units,
  ``-alpha(eta) (s_k - s_+)``: the same rule, another unit for the boundary score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bacl.sampler import BoundarySampler, boundary_score
from bacl.sampling_correction import sampling_correction

__all__ = [
    "ARMS", "CORRECTED_ARMS", "Draw", "SAMPLER_ARMS", "draw_negatives", "gumbel_top_k",
    "uniform_subset",
]

ARMS = ("uniform", "full", "bacl", "bacl_corrected", "curriculum", "curriculum_corrected", "curriculum_logit_units")
SAMPLER_ARMS = ("bacl", "bacl_corrected")  # arms that own a BoundarySampler with a trained policy
CORRECTED_ARMS = ("bacl_corrected", "curriculum_corrected")


@dataclass
class Draw:
    """index: (n, K) pool positions; offset: (n, K) log-offsets of those negatives' logits;
    policy_loss: the BoundarySampler's objective (None for arms without a policy)."""

    index: torch.Tensor
    offset: torch.Tensor
    policy_loss: torch.Tensor | None


def uniform_subset(count: int, pool: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(count, k) k distinct positions of ``pool`` in uniformly random order: the i-th is uniform over
    the pool - i positions not yet taken, mapped past the taken ones in increasing order (a tenth of
    the cost of the top-k of iid uniforms, the same distribution)."""
    picks = []
    for i in range(k):
        position = (torch.rand(count, generator=generator) * (pool - i)).long().clamp(max=pool - i - 1)
        for taken in (torch.stack(picks, 1).sort(1).values.unbind(1) if picks else ()):
            position = position + (position >= taken).long()
        picks.append(position)
    return torch.stack(picks, 1)


def gumbel_top_k(logits: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, k) a draw without replacement from softmax(logits) (n, P), by the sampler's Gumbel-top-k."""
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
    return (logits - torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))).topk(k, dim=-1).indices


def draw_negatives(arm: str, sampler: BoundarySampler, anchor: torch.Tensor, positive: torch.Tensor,
                   negatives: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor], progress: float, k: int,
                   generator: torch.Generator) -> Draw:
    """One epoch's negatives for every anchor of a run.

    Args:
        arm: one of ARMS; sampler: the run's BoundarySampler (its schedule and boundary temperature
            serve the curriculum arms too).
        anchor: (n, d) the anchors' embeddings under the current scorer, ``z = W^T x`` (detached);
        positive: (n, d); negatives: (n, P, d) the pool.
        scores: the learner's (n, 1) positive and (n, P) negative logits (detached), for the logit units.
        progress: eta in [0, 1]; k: K; generator: the run's random stream.
    """
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    count, pool = negatives.shape[:2]
    zero = torch.zeros(count, k)
    if arm == "full":
        return Draw(torch.arange(pool).expand(count, pool), torch.zeros(count, pool), None)
    if arm == "uniform":
        return Draw(uniform_subset(count, pool, k, generator), zero, None)
    if arm in SAMPLER_ARMS:
        draw = sampler(anchor, positive, negatives, progress, generator=generator)
        offset = torch.log(draw.weights.detach())
        if arm in CORRECTED_ARMS:
            offset = offset + sampling_correction(draw.logits, draw.index, draw.valid, draw.positive_logit).float()
        return Draw(draw.index, offset, draw.policy_loss)
    alpha = sampler.schedule(progress)
    if arm == "curriculum_logit_units":
        score = scores[1] - scores[0]
    else:
        score = boundary_score(anchor, positive, negatives) / sampler.boundary_temperature
    logits = -alpha * score
    index = gumbel_top_k(logits, k, generator)
    if arm in CORRECTED_ARMS:  # the positive's curriculum logit is 0: its BS is 0 by definition
        zero = sampling_correction(logits, index, torch.ones_like(index, dtype=torch.bool), torch.zeros(count)).float()
    return Draw(index, zero, None)
