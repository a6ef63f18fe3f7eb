"""Train many bilinear scorers at once: one run per (seed, n), BNS or uniform negatives, same loss.

Each run fits ``W`` (d, d) of ``s_W(x, c) = x^T W c`` on its own training pools by full-batch
optimisation of bacl's contrastive loss: the positive's logit against K drawn negatives, which
enter the denominator as ``logit + log(weight)`` exactly as in ``BACLLoss`` (weights detached).

* ``arm="bacl"``: the K negatives come from a ``bacl.sampler.BoundarySampler`` owned by the run
  (its own policy, trained by its own ``policy_loss``), fed the run's current anchor embeddings
  ``z = W^T x``, at progress ``eta = epoch / (epochs - 1)`` of the curriculum.
* ``arm="uniform"``: K negatives uniformly without replacement from the same pool; weight 1.

Draws are redrawn every epoch, as a training loop redraws them every step. Runs are independent
(a sum of per-run losses, and every update below acts run by run), so one backward pass trains all
of them. The loop over runs is per epoch; all work inside a run is vectorised.

Two optimisers, both on the autograd gradient of that loss:
* ``"newton"``: the gradient preconditioned by the exact Hessian of the epoch's loss (the softmax
  covariance of the features ``vec(x c^T)`` over the K+1 candidates), with a half-cosine step size
  from 1 to 0. It reaches the statistical optimum of runs of every n in ~100 epochs, and the decaying
  steps average out the epoch-to-epoch redraw noise, so what is measured is the estimator, not the
  optimiser. Used for the rate experiments.
* ``"gd"``: plain full-batch gradient descent with a constant step, a discretised gradient flow
  whose contraction rates are the loss curvatures; used to follow the margin's dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bacl.losses import contrastive_logits_loss
from bacl.sampler import BoundarySampler
from bacl.schedule import CurriculumSchedule

from .model import TrainingPools

__all__ = ["TrainingConfig", "TrainingResult", "contrastive_hessian", "largest_curvature", "train_runs"]

ARMS = ("bacl", "uniform")
OPTIMIZERS = ("newton", "gd")


@dataclass(frozen=True)
class TrainingConfig:
    """How every run is trained.

    Args:
        arm: "bacl" (BoundarySampler) or "uniform" negatives.
        num_negatives: K drawn per anchor; 4, the sampler's default, for both arms.
        epochs: full-batch steps (and curriculum positions). 120 Newton epochs bring runs of every
            n to their optimum: doubling them moved the uniform arm's excess risks by under 5 %.
        optimizer: "newton" or "gd" (see the module docstring).
        learning_rate: the constant step of "gd" (unused by "newton", whose step runs 1 -> 0); 1.0 is
            below 1/L (about 2.8 for the default model), so stable; 03_margin passes 1/L itself.
        max_step: trust radius of a Newton step (Frobenius norm of the change of W); 1.0, an eighth
            of |W*|, so that a flat early Hessian cannot throw W far away.
        schedule: the curriculum; the paper's default (0.3, -0.5, 1.5).
        policy_learning_rate: Adam step of each run's policy MLP; 1e-3, Adam's usual default.
        sampler_options: further ``BoundarySampler`` keyword arguments. hidden_dim 16 by default
            (library: 64): the policy sees 5 scalars, and the narrower MLP is 4x cheaper, which is
            what lets 10 seeds x 6 sample sizes run in the notebook's time budget.
    """

    arm: str = "bacl"
    num_negatives: int = 4
    epochs: int = 120
    optimizer: str = "newton"
    learning_rate: float = 1.0
    max_step: float = 1.0
    schedule: CurriculumSchedule = field(default_factory=lambda: CurriculumSchedule.preset("default"))
    policy_learning_rate: float = 1e-3
    sampler_options: dict = field(default_factory=lambda: {"hidden_dim": 16})

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name, low in (("num_negatives", 1), ("epochs", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("learning_rate", "max_step", "policy_learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not isinstance(self.schedule, CurriculumSchedule):
            raise ValueError(f"schedule must be a CurriculumSchedule, got {self.schedule!r}")


@dataclass
class TrainingResult:
    """weights: (R, d, d) final W per run; ambiguous_draw_share: (R, epochs) share of the K draws that
    were ambiguous negatives, per epoch; records: what ``on_epoch`` returned, stacked (recorded, ...);
    recorded_progress: (recorded,) the fraction of the epochs completed when each record was taken
    (0: the initial weights, 1: the final ones); it matches the curriculum's eta to within 1/epochs."""

    weights: torch.Tensor
    ambiguous_draw_share: torch.Tensor
    records: torch.Tensor | None
    recorded_progress: torch.Tensor | None


def _uniform_draw(count: int, pool: int, k: int, generator: torch.Generator) -> torch.Tensor:
    # The top-k of iid uniforms is a uniform k-subset without replacement.
    return torch.rand(count, pool, generator=generator).topk(k, dim=-1).indices


def contrastive_hessian(anchor: torch.Tensor, candidates: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Hessian of the mean softmax cross-entropy w.r.t. vec(W) for logits ``x^T W c + const``.

    Args:
        anchor: (n, d); candidates: (n, M, d) the candidates in each row's softmax (positive and
            drawn negatives); logits: (n, M) their logits (``-inf`` entries drop out).
    Returns:
        (d*d, d*d): mean over rows of Cov_q[vec(x c^T)], q = softmax(logits), indexed like W.reshape(-1).
    """
    q = torch.softmax(logits, dim=-1)
    features = torch.einsum("nd,nme->nmde", anchor, candidates).flatten(2)
    mean = torch.einsum("nm,nma->na", q, features)
    second = torch.einsum("nm,nma,nmb->ab", q, features, features)
    return (second - mean.T @ mean) / anchor.shape[0]


def train_runs(
    pools: list[TrainingPools],
    seeds: list[int],
    config: TrainingConfig,
    initial_weights: torch.Tensor,
    on_epoch: Callable[[torch.Tensor], torch.Tensor] | None = None,
    record_every: int = 1,
) -> TrainingResult:
    """Train one scorer per run.

    Args:
        pools: R training sets (run r uses ``pools[r]``; pass nested heads of one sample per seed
            for common random numbers across n).
        seeds: R integers; seed the run's policy initialisation and draw noise, so two runs with the
            same seed start from the same policy and use the same random stream.
        config: the TrainingConfig shared by all runs.
        initial_weights: (d, d) starting W of every run.
        on_epoch: optional ``f(weights (R, d, d)) -> tensor`` evaluated before epoch 0, before every
            ``record_every``-th epoch, and after the last (e.g. a test-set margin).
    """
    if not pools or len(pools) != len(seeds):
        raise ValueError(f"pools and seeds must be non-empty and of equal length, got {len(pools)} and {len(seeds)}")
    d = pools[0].anchor.shape[1]
    if initial_weights.shape != (d, d):
        raise ValueError(f"initial_weights must have shape ({d}, {d}), got {tuple(initial_weights.shape)}")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    runs, epochs = len(pools), config.epochs
    weights = initial_weights.float().expand(runs, d, d).clone().requires_grad_(True)
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    samplers = []
    if config.arm == "bacl":
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                samplers.append(BoundarySampler(config.num_negatives, config.schedule, **config.sampler_options))
    policy_optimizer = (
        torch.optim.Adam([p for s in samplers for p in s.parameters()], lr=config.policy_learning_rate) if samplers else None
    )
    labels = [torch.zeros(p.anchor.shape[0], dtype=torch.long) for p in pools]
    share = torch.zeros(runs, epochs)
    records, recorded_progress = [], []

    def record(completed):
        if on_epoch is not None:
            records.append(on_epoch(weights.detach().double()))
            recorded_progress.append(completed)

    for epoch in range(epochs):
        progress = epoch / (epochs - 1)
        if epoch % record_every == 0:
            record(epoch / epochs)
        total = weights.new_zeros(())
        hessians = []
        for r, data in enumerate(pools):
            z = data.anchor @ weights[r]
            positive_logit = (z * data.positive).sum(-1, keepdim=True)
            negative_logits = torch.einsum("nd,npd->np", z, data.negatives)
            if samplers:
                draw = samplers[r](z.detach(), data.positive, data.negatives, progress, generator=generators[r])
                index, log_weight = draw.index, torch.log(draw.weights.detach())
                total = total + draw.policy_loss
            else:
                index = _uniform_draw(z.shape[0], data.negatives.shape[1], config.num_negatives, generators[r])
                log_weight = torch.zeros(index.shape)
            extra = negative_logits.gather(1, index) + log_weight
            total = total + contrastive_logits_loss(positive_logit, labels[r], extra)
            share[r, epoch] = data.ambiguous.gather(1, index).float().mean()
            if config.optimizer == "newton":
                drawn = data.negatives.gather(1, index[..., None].expand(-1, -1, d))
                with torch.no_grad():
                    hessians.append(contrastive_hessian(
                        data.anchor, torch.cat([data.positive[:, None], drawn], 1),
                        torch.cat([positive_logit, extra], 1)))
        weights.grad = None
        if policy_optimizer is not None:
            policy_optimizer.zero_grad(set_to_none=True)
        total.backward()
        with torch.no_grad():
            weights -= _step(config, weights.grad, hessians, epoch)
        if policy_optimizer is not None:
            policy_optimizer.step()
    record(1.0)
    return TrainingResult(
        weights=weights.detach().double(),
        ambiguous_draw_share=share,
        records=torch.stack(records) if records else None,
        recorded_progress=torch.tensor(recorded_progress, dtype=torch.float64) if records else None,
    )


def _step(config: TrainingConfig, gradient: torch.Tensor, hessians: list[torch.Tensor], epoch: int) -> torch.Tensor:
    """The update of every run's W, (R, d, d)."""
    if config.optimizer == "gd":
        return config.learning_rate * gradient
    runs, d = gradient.shape[0], gradient.shape[1]
    hessian = torch.stack(hessians).double()
    # A tiny ridge keeps directions without curvature (an all-easy draw) from producing huge steps.
    ridge = 1e-6 * hessian.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(d * d, dtype=torch.float64)
    newton = torch.linalg.solve(hessian + ridge, gradient.reshape(runs, d * d, 1).double()).reshape(runs, d, d)
    norm = newton.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
    newton = newton * (config.max_step / norm).clamp(max=1.0)
    step_size = 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return (step_size * newton).float()


def largest_curvature(pools: TrainingPools, weights: torch.Tensor, num_negatives: int, generator: torch.Generator) -> float:
    """Largest eigenvalue of the Hessian of the uniform-draw contrastive loss at ``weights`` (d, d):
    the smoothness constant L whose inverse 1/L is gradient descent's classical step size."""
    index = _uniform_draw(pools.anchor.shape[0], pools.negatives.shape[1], num_negatives, generator)
    d = pools.anchor.shape[1]
    candidates = torch.cat([pools.positive[:, None], pools.negatives.gather(1, index[..., None].expand(-1, -1, d))], 1)
    logits = torch.einsum("nd,de,nme->nm", pools.anchor, weights.float(), candidates)
    return float(torch.linalg.eigvalsh(contrastive_hessian(pools.anchor, candidates, logits).double()).max())
