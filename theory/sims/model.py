"""The generative model of the theory simulations: candidate pools with a share rho of ambiguous negatives.

Setting (stated once here, used by every notebook):

* Embeddings live in ``R^d`` with ``d = coarse_dim + detail_dim``: a "coarse" block (what a
  caption is about; a unit vector, a topic direction) and a small "detail" block (one attribute).
* An anchor (image) ``x ~ N(0, I_d)``.
* Its candidate pool has ``P + 1`` captions: a *boundary group* of ``A + 1`` captions whose coarse
  block is the anchor's coarse direction, ``c = (x_c / |x_c|, t)``, with independent details
  ``t ~ N(0, detail_scale^2 I)``, and ``P - A`` *easy* captions ``c = (e, t)`` with an unrelated
  coarse direction ``e`` (uniform on the sphere). This is what a coarse-aligned retrieval index
  returns: captions about the right thing that may get one detail wrong, padded with unrelated ones.
* The positive is drawn from the pool by the Luce / conditional-logit rule
  ``P(J = j | x, C) = softmax_j(x^T W* c_j)`` with ``W* = diag(coarse_weight I, detail_weight I)``.
  The model is well specified for a bilinear scorer ``s_W(x, c) = x^T W c``, so ``W*`` is the
  population optimum of the contrastive log-loss and (ordering by ``x^T W* c`` being the Bayes
  ranking) of every ranking risk below: excess risks are measured against a known optimum.
* n = number of training anchors (one pool and one positive each). An *ambiguous* negative is a
  negative that differs from the positive only in the detail block: when the positive is in the
  boundary group, the other ``A`` group members. rho = A / P, the share of ambiguous negatives in a
  pool (exact whenever the positive is in the group; ``positive_in_group_rate`` reports how often).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BoundaryPoolModel", "TestPools", "TrainingPools"]


@dataclass(frozen=True)
class TestPools:
    """Unlabelled pools for exact risk evaluation: the positive is integrated out with ``p``.

    anchor: (T, d); candidates: (T, P+1, d); probabilities: (T, P+1) the true choice probabilities
    softmax(x^T W* c); in_group: (T, P+1) bool, True for boundary-group members.
    """

    anchor: torch.Tensor
    candidates: torch.Tensor
    probabilities: torch.Tensor
    in_group: torch.Tensor


@dataclass(frozen=True)
class TrainingPools:
    """Labelled pools as the learner sees them.

    anchor: (N, d); positive: (N, d); negatives: (N, P, d) the pool without the positive;
    ambiguous: (N, P) bool, True for negatives that differ from the positive only in detail.
    """

    anchor: torch.Tensor
    positive: torch.Tensor
    negatives: torch.Tensor
    ambiguous: torch.Tensor

    def head(self, count: int) -> TrainingPools:
        """The first ``count`` pools (nested training sets give common random numbers across n)."""
        if not 1 <= count <= self.anchor.shape[0]:
            raise ValueError(f"count={count} must lie in [1, {self.anchor.shape[0]}]")
        return TrainingPools(self.anchor[:count], self.positive[:count], self.negatives[:count], self.ambiguous[:count])


@dataclass(frozen=True)
class BoundaryPoolModel:
    """The pool model; see the module docstring for the full definition.

    Args:
        ambiguous_negatives: A, boundary-group members besides the positive; rho = A / P.
            6 of 15 by default (rho = 0.4): more than K = 4, so BNS can fill a draw with them.
        pool_negatives: P, negatives per pool. 15 (a pool of 16) lets rho move in steps of 1/15
            while every candidate set stays small enough to evaluate pairwise risks exactly.
        coarse_dim: size of the coarse block; 3 keeps W (d x d = 16 entries) small enough that
            n = 100 anchors already identify it.
        detail_dim: size of the detail block; 1 (a single attribute that a near-miss caption flips).
        coarse_weight: scale of W* on the coarse block; 4.0 makes the boundary group hold the positive
            in 87 % of pools at rho = 0.4 (anchors with a small coarse norm are genuinely ambiguous),
            while easy captions are still chosen sometimes, which keeps the log-likelihood's optimum
            finite in every direction (no separable fits at small n).
        detail_weight: scale of W* on the detail block; 4.0 with detail_scale 0.5 gives detail
            logits of standard deviation about 2, so the detail is learnable but noisy. Equal to
            coarse_weight: nothing in the setting calls for another scale.
        detail_scale: standard deviation of the detail coordinates; 0.5 (< 1) makes ambiguous
            negatives close to the positive in cosine, i.e. boundary scores near 0.
    """

    ambiguous_negatives: int = 6
    pool_negatives: int = 15
    coarse_dim: int = 3
    detail_dim: int = 1
    coarse_weight: float = 4.0
    detail_weight: float = 4.0
    detail_scale: float = 0.5

    def __post_init__(self):
        for name in ("pool_negatives", "coarse_dim", "detail_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        a = self.ambiguous_negatives
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= self.pool_negatives:
            raise ValueError(f"ambiguous_negatives must be an integer in [0, pool_negatives={self.pool_negatives}], got {a!r}")
        for name in ("coarse_weight", "detail_weight", "detail_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

    @property
    def dim(self) -> int:
        return self.coarse_dim + self.detail_dim

    @property
    def ambiguous_share(self) -> float:
        """rho = A / P."""
        return self.ambiguous_negatives / self.pool_negatives

    def optimum(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """W* (d, d): the known population optimum."""
        weights = [self.coarse_weight] * self.coarse_dim + [self.detail_weight] * self.detail_dim
        return torch.diag(torch.tensor(weights, dtype=dtype))

    def _pools(self, count: int, generator: torch.Generator, dtype: torch.dtype):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        group, easy = self.ambiguous_negatives + 1, self.pool_negatives - self.ambiguous_negatives
        anchor = torch.randn(count, self.dim, generator=generator, dtype=dtype)
        # Caption coarse content is a unit vector (a topic direction): a bilinear score must not let
        # an unrelated caption win the pool merely by having a large norm.
        direction = torch.nn.functional.normalize(anchor[:, : self.coarse_dim], dim=-1)
        group_coarse = direction[:, None, :].expand(count, group, self.coarse_dim)
        easy_coarse = torch.nn.functional.normalize(
            torch.randn(count, easy, self.coarse_dim, generator=generator, dtype=dtype), dim=-1)
        detail = self.detail_scale * torch.randn(count, group + easy, self.detail_dim, generator=generator, dtype=dtype)
        candidates = torch.cat([torch.cat([group_coarse, easy_coarse], dim=1), detail], dim=-1)
        in_group = (torch.arange(group + easy) < group).expand(count, -1)
        probabilities = torch.softmax(true_scores(self, anchor, candidates), dim=-1)
        return anchor, candidates, probabilities, in_group

    def test_pools(self, count: int, generator: torch.Generator) -> TestPools:
        """``count`` unlabelled pools in float64 for exact risk evaluation."""
        return TestPools(*self._pools(count, generator, torch.float64))

    def training_pools(self, count: int, generator: torch.Generator) -> TrainingPools:
        """``count`` labelled pools (positive drawn by the Luce rule), float32 for training."""
        anchor, candidates, probabilities, in_group = self._pools(count, generator, torch.float64)
        positive_index = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        rows = torch.arange(count)
        # Negative slot k maps to pool position k, skipping the positive: a gather, no loop.
        slots = torch.arange(self.pool_negatives)[None, :]
        negative_index = slots + (slots >= positive_index[:, None]).long()
        positive_in_group = in_group[rows, positive_index]
        ambiguous = in_group.gather(1, negative_index) & positive_in_group[:, None]
        return TrainingPools(
            anchor=anchor.float(),
            positive=candidates[rows, positive_index].float(),
            negatives=candidates.gather(1, negative_index[..., None].expand(-1, -1, self.dim)).float(),
            ambiguous=ambiguous,
        )


def true_scores(model: BoundaryPoolModel, anchor: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """x^T W* c for anchors (N, d) and candidates (N, M, d): (N, M)."""
    return torch.einsum("nd,de,nme->nm", anchor, model.optimum(anchor.dtype), candidates)
