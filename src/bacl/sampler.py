"""BNS: the boundary-aware negative sampler.

For an anchor ``i`` (say an image) with positive ``i+`` (its caption) and a candidate negative
``j`` the boundary score is

    BS_ij = sim(z_i, z_j) - sim(z_i, z_i+)

near 0 or positive for an ambiguous, "half-true" negative. A 2-layer MLP policy gives every
candidate a priority; the curriculum shifts it by ``-alpha(eta) * BS / boundary_temperature``
(easy first, hard late); Gumbel-top-k draws ``K`` negatives without replacement from the
resulting softmax, and a straight-through Gumbel-Softmax relaxation carries gradients to the
policy. The policy is trained on its own objective, the expected boundary score of its draw
(the reward) plus an entropy bonus, so the aligner's loss cannot teach it to pick easy negatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import CurriculumSchedule
from .validation import check_finite, check_matrix, check_positive_number

__all__ = ["boundary_score", "BoundarySampler", "BoundarySample", "POLICY_FEATURES", "PoolSimilarities",
           "check_candidate_mask", "check_candidates", "pool_similarities"]

# What the policy sees for each (anchor, candidate) pair: the quantities BNS is defined by, all
# invariant to the embedding basis, plus training progress so it can follow the curriculum.
POLICY_FEATURES = ("boundary_score", "anchor_candidate_sim", "anchor_positive_sim", "positive_candidate_sim", "progress")


def _similarities(anchor: torch.Tensor, candidates: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Cosine similarity of each anchor (B, D) with its candidates, (B, P, D) or a shared (P, D) pool
    (``normalized``: the candidates are already ``F.normalize``d)."""
    anchor = F.normalize(anchor, dim=-1)
    if not normalized:
        candidates = F.normalize(candidates, dim=-1)
    if candidates.dim() == 2:
        return anchor @ candidates.T
    return torch.einsum("bd,bpd->bp", anchor, candidates)


def check_candidates(anchor: torch.Tensor, candidates: torch.Tensor) -> None:
    """Raise unless ``candidates`` is a finite (B, P, D) or shared (P, D) pool for ``anchor`` (B, D), P >= 1."""
    if not isinstance(candidates, torch.Tensor) or candidates.dim() not in (2, 3) or candidates.shape[-1] != anchor.shape[-1]:
        shape = tuple(candidates.shape) if isinstance(candidates, torch.Tensor) else type(candidates).__name__
        raise ValueError(
            f"candidates must be (B, P, D) or a shared pool (P, D) with D={anchor.shape[-1]}, got shape {shape}"
        )
    if candidates.dim() == 3 and candidates.shape[0] != anchor.shape[0]:
        raise ValueError(f"candidates has batch size {candidates.shape[0]}, anchor has {anchor.shape[0]}")
    if candidates.shape[-2] == 0:
        raise ValueError("candidates is an empty pool (P = 0)")
    check_finite("candidates", candidates)


def check_candidate_mask(candidate_mask: torch.Tensor, batch: int, pool: int) -> None:
    """Raise unless ``candidate_mask`` is a (B, P) bool tensor."""
    if not isinstance(candidate_mask, torch.Tensor) or candidate_mask.shape != (batch, pool) \
            or candidate_mask.dtype != torch.bool:
        got = (f"{candidate_mask.dtype} {tuple(candidate_mask.shape)}" if isinstance(candidate_mask, torch.Tensor)
               else type(candidate_mask).__name__)
        raise ValueError(f"candidate_mask must be a bool tensor of shape {(batch, pool)}, got {got}")


def _check_inputs(anchor: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> None:
    check_matrix("anchor", anchor)
    check_matrix("positive", positive)
    if positive.shape != anchor.shape:
        raise ValueError(f"positive has shape {tuple(positive.shape)}, expected the anchor's {tuple(anchor.shape)}")
    check_candidates(anchor, candidates)


class PoolSimilarities(NamedTuple):
    """The cosine similarities BNS is computed from, for B anchors over pools of P candidates.

    anchor_candidate: (B, P) cos(anchor_i, candidate_ij).
    positive_candidate: (B, P) cos(positive_i, candidate_ij).
    anchor_positive: (B, 1) cos(anchor_i, positive_i).
    """

    anchor_candidate: torch.Tensor
    positive_candidate: torch.Tensor
    anchor_positive: torch.Tensor

    @property
    def boundary_score(self) -> torch.Tensor:
        """(B, P) ``BS_ij``, exactly as :func:`boundary_score` computes it."""
        return self.anchor_candidate - self.anchor_positive


def pool_similarities(anchor: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> PoolSimilarities:
    """:class:`PoolSimilarities` of anchor (B, D), positive (B, D) and candidates (B, P, D) or (P, D),
    without gradient and without input checks (for callers that checked them, e.g. BACLLoss)."""
    with torch.no_grad():
        candidates = F.normalize(candidates, dim=-1)  # once for both similarities
        return PoolSimilarities(
            anchor_candidate=_similarities(anchor, candidates, normalized=True),
            positive_candidate=_similarities(positive, candidates, normalized=True),
            anchor_positive=_positive_similarity(anchor, positive),
        )


def _positive_similarity(anchor: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    return (F.normalize(anchor, dim=-1) * F.normalize(positive, dim=-1)).sum(-1, keepdim=True)


def boundary_score(anchor: torch.Tensor, positive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``BS_ij = cos(anchor_i, candidate_ij) - cos(anchor_i, positive_i)``.

    Args:
        anchor: (B, D) embeddings of the anchors (e.g. images).
        positive: (B, D) embeddings of each anchor's positive (e.g. its caption).
        candidates: (B, P, D) per-anchor candidate negatives, or (P, D) a pool shared by all anchors.

    Returns:
        (B, P) boundary scores in [-2, 2]; >= 0 means the candidate is at least as close to the
        anchor as the positive is.
    """
    _check_inputs(anchor, positive, candidates)
    return _similarities(anchor, candidates) - _positive_similarity(anchor, positive)


class _PolicyMLP(torch.autograd.Function):
    """``Linear -> GELU -> Linear`` on (..., F) features, as ``nn.Sequential`` computes it, with a
    hand-written backward: the hidden activations are recomputed rather than kept (the memory of
    B x P x hidden_dim floats per draw), and the weight gradients are taken in the layout that is
    cheap for a tall, thin input (B x P rows of 5 features); the same gradient up to rounding."""

    @staticmethod
    def forward(ctx, features, first_weight, first_bias, second_weight, second_bias):
        flat = features.reshape(-1, features.shape[-1])
        hidden = F.gelu(torch.addmm(first_bias, flat, first_weight.t()))
        ctx.save_for_backward(flat, first_weight, first_bias, second_weight)
        ctx.features_shape = features.shape
        return torch.addmm(second_bias, hidden, second_weight.t()).view(*features.shape[:-1], -1)

    @staticmethod
    def backward(ctx, grad):
        flat, first_weight, first_bias, second_weight = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1])
        before = torch.addmm(first_bias, flat, first_weight.t())
        # One output (the priority): the outer product is a broadcast product, cheaper than a matmul.
        grad_hidden = grad * second_weight if grad.shape[1] == 1 else grad @ second_weight
        grad_before = torch.ops.aten.gelu_backward(grad_hidden, before)
        grad_second = (F.gelu(before).t() @ grad).t()
        grad_first = (flat.t() @ grad_before).t()
        grad_features = None
        if ctx.needs_input_grad[0]:
            grad_features = (grad_before @ first_weight).view(ctx.features_shape)
        return grad_features, grad_first, grad_before.sum(0), grad_second, grad.sum(0)


@dataclass
class BoundarySample:
    """One BNS draw for a batch of B anchors over pools of P candidates.

    index: (B, K) pool positions of the drawn negatives (the highest-priority draw first).
    weights: (B, K) straight-through Gumbel-Softmax weights: exactly 1 for a valid draw and 0 for
        an invalid one in the forward pass, with the relaxation's gradient towards the policy.
    valid: (B, K) False where the pool had fewer than K admissible candidates.
    boundary_score: (B, K) BS of the drawn negatives (detached), for logging and for CLA.
    probabilities: (B, P) the sampling distribution softmax(priority - alpha * BS / T).
    relaxed: (B, P) the Gumbel-Softmax relaxation of the draw (the gradient path); it tends to a
        one-hot on the first drawn negative as the Gumbel temperature falls.
    policy_loss: scalar, the policy's objective (only the policy receives its gradient).
    alpha: the curriculum value alpha(eta) used.
    logits: (B, P) the sampler's logits priority - alpha * BS / T (detached; -inf where
        inadmissible), and positive_logit: (B,) the logit the positive would get as a candidate (its
        priority at BS = 0, cosine 1 with itself): the inputs of the sampling correction
        (:func:`bacl.sampling_correction.sampling_correction`).
    """

    index: torch.Tensor
    weights: torch.Tensor
    valid: torch.Tensor
    boundary_score: torch.Tensor
    probabilities: torch.Tensor
    relaxed: torch.Tensor
    policy_loss: torch.Tensor
    alpha: float
    logits: torch.Tensor
    positive_logit: torch.Tensor


class BoundarySampler(nn.Module):
    """Boundary-aware negative sampler with a learned policy and a curriculum (BNS).

    Args:
        num_negatives: K, negatives drawn per anchor. 4 is our default: enough to cover several
            kinds of boundary negative per anchor while staying a small fraction of a batch.
        schedule: a ``CurriculumSchedule`` or a preset name; the paper's default (0.3, -0.5, 1.5).
        hidden_dim: width of the 2-layer policy MLP; 64 is plenty for its 5 scalar inputs.
        gumbel_temperature: temperature of the Gumbel-Softmax relaxation (gradient path only).
            0.5 is the usual compromise between bias (low) and gradient variance (high).
        boundary_temperature: BS is divided by it before the curriculum shift so that it is in
            logit units like a contrastive logit; 0.07 is CLIP's initial temperature.
        priority_scale: the policy's priority is ``priority_scale * tanh(mlp)``, bounded so that
            the curriculum can keep control of the ordering at its extremes; 1 logit by default
            (a tiny value such as 1e-6 leaves the draws to the curriculum alone: a control).
        entropy_weight: weight of the entropy bonus in the policy objective, which keeps the
            policy from collapsing onto a single candidate.
        identical_tolerance: a candidate whose cosine with the positive is >= 1 - this is treated
            as the positive itself and never drawn.
    """

    def __init__(
        self,
        num_negatives: int = 4,
        schedule: CurriculumSchedule | str = "default",
        hidden_dim: int = 64,
        gumbel_temperature: float = 0.5,
        boundary_temperature: float = 0.07,
        priority_scale: float = 1.0,
        entropy_weight: float = 0.01,
        identical_tolerance: float = 1e-6,
    ):
        super().__init__()
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"num_negatives must be a positive integer, got {num_negatives!r}")
        if not (isinstance(identical_tolerance, (int, float)) and 0 <= identical_tolerance < 1):
            raise ValueError(f"identical_tolerance must lie in [0, 1), got {identical_tolerance!r}")
        self.num_negatives = num_negatives
        self.schedule = CurriculumSchedule.preset(schedule) if isinstance(schedule, str) else schedule
        if not isinstance(self.schedule, CurriculumSchedule):
            raise ValueError(f"schedule must be a CurriculumSchedule or a preset name, got {schedule!r}")
        self.gumbel_temperature = check_positive_number("gumbel_temperature", gumbel_temperature)
        self.boundary_temperature = check_positive_number("boundary_temperature", boundary_temperature)
        self.priority_scale = check_positive_number("priority_scale", priority_scale)
        self.entropy_weight = check_positive_number("entropy_weight", entropy_weight, allow_zero=True)
        self.identical_tolerance = float(identical_tolerance)
        self.policy = nn.Sequential(
            nn.Linear(len(POLICY_FEATURES), hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, 1),
        )

    def priorities(self, features: torch.Tensor) -> torch.Tensor:
        """Policy priority (B, P) from per-candidate features (B, P, len(POLICY_FEATURES)).

        The MLP runs through :class:`_PolicyMLP`: the same values as ``self.policy(features)``, and
        a backward pass that recomputes its (B, P, hidden_dim) activations instead of keeping them."""
        first, _, second = self.policy
        scores = _PolicyMLP.apply(features, first.weight, first.bias, second.weight, second.bias)
        return self.priority_scale * torch.tanh(scores.squeeze(-1))

    def forward(
        self,
        anchor: torch.Tensor,
        positive: torch.Tensor,
        candidates: torch.Tensor,
        progress: float,
        candidate_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> BoundarySample:
        """Draw ``K`` boundary-aware negatives per anchor.

        Args:
            anchor: (B, D) anchor embeddings.
            positive: (B, D) the anchors' positives.
            candidates: (B, P, D) per-anchor pools (e.g. retrieved from the coarse-aligned index)
                or (P, D) a shared pool (e.g. the batch); only similarities are used, so no
                gradient reaches the embeddings from the draw.
            progress: training progress eta in [0, 1].
            candidate_mask: optional (B, P) bool, True where a candidate is admissible (use it to
                exclude the anchor's own positive in an in-batch pool, or equivalent captions).
            generator: torch.Generator for the Gumbel noise; same generator state, same draw.
            rank, world_size: under data parallelism the noise is drawn for the global batch and
                this rank's rows are kept, so B anchors on each of W ranks get exactly the draws
                one process with W * B anchors would (given the same generator state).
        """
        _check_inputs(anchor, positive, candidates)
        return self.draw(pool_similarities(anchor, positive, candidates), progress, candidate_mask=candidate_mask,
                         generator=generator, rank=rank, world_size=world_size)

    def draw(self, similarities: PoolSimilarities, progress: float, candidate_mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None, rank: int = 0, world_size: int = 1) -> BoundarySample:
        """:meth:`forward` from the pool's similarities (:func:`pool_similarities`), whose inputs the
        caller has checked: BACLLoss computes them once and shares them with CLA. Same arguments
        otherwise; the same similarities and generator state give the same draw as :meth:`forward`."""
        return self.draws_by_row(similarities, progress, candidate_mask, generator, rank, world_size)(None)

    def draws_by_row(self, similarities: PoolSimilarities, progress: float, candidate_mask: torch.Tensor | None = None,
                     generator: torch.Generator | None = None, rank: int = 0,
                     world_size: int = 1) -> Callable[[torch.Tensor | None], BoundarySample]:
        """:meth:`draw`, made for some anchors at a time: a function of anchor rows (R,) (None: all B)
        returning their draw. Row r of each field is row ``rows[r]`` of :meth:`draw`'s with the same
        arguments and generator state, because the noise of all B anchors is drawn once, at the first
        call, exactly as :meth:`draw` draws it; ``policy_loss`` is the mean over the rows drawn. For a
        draw of which only a few anchors are used (the match lists of ``cla_anchors`` anchors)."""
        batch, pool = similarities.anchor_candidate.shape
        if self.num_negatives > pool:
            raise ValueError(f"num_negatives K={self.num_negatives} is larger than the candidate pool (P={pool})")
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress (eta) must be a number in [0, 1], got {progress!r}")
        if candidate_mask is not None:
            check_candidate_mask(candidate_mask, batch, pool)
        noise = []

        def draw_rows(rows: torch.Tensor | None) -> BoundarySample:
            pick = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
            logits, admissible, features = self._logits(PoolSimilarities(*map(pick, similarities)), progress,
                                                        None if candidate_mask is None else pick(candidate_mask))
            if not noise:  # the whole batch's, as a draw of all anchors takes it from the generator
                noise.append(torch.rand((world_size * batch, pool), generator=generator, device=logits.device,
                                        dtype=logits.dtype)[rank * batch:(rank + 1) * batch])
            return self._sample(logits, admissible, features, pick(noise[0]), progress)

        return draw_rows

    def _logits(self, similarities: PoolSimilarities, progress: float, candidate_mask: torch.Tensor | None):
        """The sampler's logits (B, P) (finite in rows with no admissible candidate), admissible (B, P)
        and the policy's features (B, P, F)."""
        score = similarities.boundary_score
        with torch.no_grad():
            positive_candidate = similarities.positive_candidate
            admissible = positive_candidate < 1.0 - self.identical_tolerance
            if candidate_mask is not None:
                admissible = admissible & candidate_mask
            features = torch.stack(
                [score, similarities.anchor_candidate, similarities.anchor_positive.expand_as(score),
                 positive_candidate, torch.full_like(score, float(progress))],
                dim=-1,
            )
        logits = self.priorities(features) - self.schedule(progress) * score / self.boundary_temperature
        logits = logits.masked_fill(~admissible, float("-inf"))
        # A row with no admissible candidate gets finite logits so that no NaN reaches the policy's
        # gradient; its draws are all marked invalid and its reward is zero.
        logits = torch.where(admissible.any(-1, keepdim=True), logits, torch.zeros_like(logits))
        return logits, admissible, features

    def _sample(self, logits, admissible, features, uniform, progress: float) -> BoundarySample:
        """The Gumbel-top-k draw from ``logits`` (B, P) with ``uniform`` (B, P) noise, and the policy's objective."""
        score = features[..., POLICY_FEATURES.index("boundary_score")]
        has_pool = admissible.any(-1)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        perturbed = logits + gumbel
        # Gumbel-top-k: the K largest perturbed logits are a draw without replacement from softmax(logits).
        index = perturbed.topk(self.num_negatives, dim=-1).indices
        valid = admissible.gather(-1, index)
        relaxed = torch.softmax(perturbed / self.gumbel_temperature, dim=-1)
        drawn = torch.zeros_like(relaxed).scatter(-1, index, valid.to(relaxed.dtype))
        straight_through = drawn + (relaxed - relaxed.detach())  # exactly `drawn` forward, relaxed gradient

        probabilities = torch.softmax(logits, dim=-1) * has_pool[:, None]
        reward = torch.where(admissible, score, torch.zeros_like(score))
        log_probabilities = torch.where(admissible, torch.log_softmax(logits, dim=-1), torch.zeros_like(logits))
        entropy = -(probabilities * log_probabilities).sum(-1)
        objective = (straight_through * reward).sum(-1) / self.boundary_temperature + self.entropy_weight * entropy
        policy_loss = -(objective * has_pool).sum() / has_pool.sum().clamp_min(1)

        return BoundarySample(
            index=index,
            weights=straight_through.gather(-1, index),
            valid=valid,
            boundary_score=score.gather(-1, index),
            probabilities=probabilities,
            relaxed=relaxed,
            policy_loss=policy_loss,
            alpha=self.schedule(progress),
            logits=logits.detach(),
            positive_logit=self._positive_logit(features[:, 0]),
        )

    @torch.no_grad()
    def _positive_logit(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) the logit of each anchor's positive as a candidate, from one candidate's features (B, F):
        BS 0 (the curriculum term vanishes), its cosine with the anchor, 1 with itself."""
        features = features.clone()
        names = {name: i for i, name in enumerate(POLICY_FEATURES)}
        features[:, names["boundary_score"]] = 0.0
        features[:, names["anchor_candidate_sim"]] = features[:, names["anchor_positive_sim"]]
        features[:, names["positive_candidate_sim"]] = 1.0
        return self.priorities(features[:, None])[:, 0]
