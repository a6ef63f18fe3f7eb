"""Train many diagonal bilinear scorers at once: one run per (seed, n), negatives drawn by one arm.

The reduced (few-parameter) model: ``s_theta(x, c) = x^T diag(theta) c = theta . (x * c)`` with
``theta`` in R^d (d = 4: three coarse weights and the detail weight). The known optimum W* = 4 I is
diagonal, so the model stays well specified; four parameters instead of a full 4 x 4 matrix make the
Newton step trivial, which is what lets n reach 1e5 in the notebooks' budget. The pairwise ranking
risk depends on theta through its three ratios, the log-loss through all four.

Each run fits theta on its own training pools by full-batch optimisation of bacl's contrastive loss
(``bacl.losses.contrastive_logits_loss``): the positive's logit against the drawn negatives' logits
plus the arm's log-offsets (``draws.py``), redrawn every epoch as a training loop redraws them every
step. Arms with a ``BoundarySampler`` train its policy by its own objective (Adam), fed the run's
current anchor embeddings ``z = W^T x`` at progress ``eta = epoch / (epochs - 1)`` of the curriculum.
Runs are independent (a sum of per-run losses; every update acts run by run), so one backward pass
trains all of them.

Two optimisers, both on the autograd gradient of that loss:
* ``"newton"``: the gradient preconditioned by the exact Hessian of the epoch's loss (the softmax
  covariance of the features ``x * c`` over the positive and the drawn negatives), with a half-cosine
  step size from 1 to 0: it reaches the statistical optimum of runs of every n, and the decaying steps
  average out the epoch-to-epoch redraw noise, so what is measured is the estimator, not the optimiser.
* ``"gd"``: plain full-batch gradient descent with a constant step, a discretised gradient flow whose
  contraction rates are the loss curvatures; used to follow the margin's dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bacl.losses import contrastive_logits_loss
from bacl.schedule import CurriculumSchedule

from bacl.sampler import BoundarySampler

from .draws import ARMS, SAMPLER_ARMS, draw_negatives
from .model import TrainingPools

__all__ = [
    "ARMS", "TrainingConfig", "TrainingResult", "contrastive_hessian", "curvature_along_curriculum", "train_runs",
]

OPTIMIZERS = ("newton", "gd")


@dataclass(frozen=True)
class TrainingConfig:
    """How every run is trained.

    Args:
        arm: how negatives are drawn, one of ``draws.ARMS``.
        num_negatives: K drawn per anchor; 4, the sampler's default, for every sampling arm.
        epochs: full-batch steps over the curriculum (eta = epoch / (epochs - 1)). 30 Newton epochs
            bring the four weights of runs of every n to their optimum: with 40, 60 or 120 the uniform
            and corrected arms' mean excess moved within its seed noise. The uncorrected BNS arms' limit
            depends on it (more epochs follow the moving late-curriculum target more closely: +25 to
            +45 % excess at n = 1e4 from 30 to 120), a property of the procedure.
        hold_epochs: further steps at eta = 1 after the curriculum (0: none); 03_margin holds the end
            of the curriculum to find the fixed point its dynamics settle at.
        optimizer: "newton" or "gd" (see the module docstring).
        learning_rate: the constant step of "gd" (unused by "newton", whose step runs 1 -> 0); 1.0 by
            default, below 1/L for the default model; 03_margin passes 1/L itself.
        max_step: trust radius of a Newton step (Euclidean norm of the change of theta); 1.0, an eighth
            of |W*|, so that a flat early Hessian cannot throw theta far away.
        schedule: the curriculum; the paper's default (0.3, -0.5, 1.5).
        policy_learning_rate: Adam step of each run's policy MLP; 1e-3, Adam's usual default.
        sampler_options: further ``BoundarySampler`` keyword arguments. hidden_dim 16 (library: 64):
            the policy sees 5 scalars, and the narrower MLP is 4x cheaper.
    """

    arm: str = "bacl"
    num_negatives: int = 4
    epochs: int = 30
    hold_epochs: int = 0
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
        for name, low in (("num_negatives", 1), ("epochs", 2), ("hold_epochs", 0)):
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
    """theta: (R, d) final weights per run; ambiguous_draw_share: (R, steps) share of the draws that
    were ambiguous negatives, per step (steps = epochs + hold_epochs); records: what ``on_epoch``
    returned, stacked (recorded, ...); recorded_progress: (recorded,) completed steps over ``epochs``
    when each record was taken (0: the initial weights, 1: the end of the curriculum, above 1: the
    hold); curvature: (R, steps, d, d) the Hessian of each
    epoch's loss (what the Newton step uses; the contraction rates of gradient descent); samplers:
    each run's sampler (policy state included)."""

    theta: torch.Tensor
    ambiguous_draw_share: torch.Tensor
    records: torch.Tensor | None
    recorded_progress: torch.Tensor | None
    curvature: torch.Tensor
    samplers: list


def contrastive_hessian(features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Hessian of the mean softmax cross-entropy w.r.t. theta for logits ``features @ theta + const``.

    Args:
        features: (n, M, p) each row's candidates (positive and drawn negatives); logits: (n, M) their
            logits (``-inf`` entries drop out).
    Returns:
        (p, p): mean over rows of Cov_q[features], q = softmax(logits).
    """
    q = torch.softmax(logits, dim=-1)
    mean = torch.einsum("nm,nma->na", q, features)
    flat = features.reshape(-1, features.shape[-1])
    second = (q.reshape(-1, 1) * flat).T @ flat  # sum over rows and candidates of q f f^T, as one matmul
    return (second - mean.T @ mean) / features.shape[0]


def _make_samplers(config: TrainingConfig, seeds: list[int]) -> list[BoundarySampler]:
    samplers = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            samplers.append(BoundarySampler(config.num_negatives, config.schedule, **config.sampler_options))
    return samplers


def train_runs(
    pools: list[TrainingPools],
    seeds: list[int],
    config: TrainingConfig,
    initial_theta: torch.Tensor,
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
        initial_theta: (d,) starting weights of every run.
        on_epoch: optional ``f(weights (R, d, d)) -> tensor`` evaluated before epoch 0, before every
            ``record_every``-th epoch, and after the last (e.g. a test-set margin).
    """
    if not pools or len(pools) != len(seeds):
        raise ValueError(f"pools and seeds must be non-empty and of equal length, got {len(pools)} and {len(seeds)}")
    d = pools[0].anchor.shape[1]
    if initial_theta.shape != (d,):
        raise ValueError(f"initial_theta must have shape ({d},), got {tuple(initial_theta.shape)}")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    if config.num_negatives > pools[0].negatives.shape[1]:
        raise ValueError(f"num_negatives K={config.num_negatives} exceeds the pool (P={pools[0].negatives.shape[1]})")
    runs, epochs, steps = len(pools), config.epochs, config.epochs + config.hold_epochs
    theta = initial_theta.float().expand(runs, d).clone().requires_grad_(True)
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    # Every arm gets a sampler: the curriculum arms use its schedule and boundary temperature.
    samplers = _make_samplers(config, seeds)
    trained = [p for s in samplers for p in s.parameters()] if config.arm in SAMPLER_ARMS else []
    policy_optimizer = torch.optim.Adam(trained, lr=config.policy_learning_rate) if trained else None
    features = [_features(data) for data in pools]
    share = torch.zeros(runs, steps)
    curvature = torch.zeros(runs, steps, d, d, dtype=torch.float64)
    records, recorded_progress = [], []

    def record(completed):
        if on_epoch is not None:
            records.append(on_epoch(torch.diag_embed(theta.detach().double())))
            recorded_progress.append(completed)

    for epoch in range(steps):
        progress = min(epoch / (epochs - 1), 1.0)
        if epoch % record_every == 0:
            record(epoch / epochs)
        total = theta.new_zeros(())
        for r, data in enumerate(pools):
            loss, policy_loss, share[r, epoch], curvature[r, epoch] = _epoch(
                config, samplers[r], data, features[r], theta[r], progress, generators[r])
            total = total + loss + (policy_loss if policy_loss is not None else 0.0)
        theta.grad = None
        if policy_optimizer is not None:
            policy_optimizer.zero_grad(set_to_none=True)
        total.backward()
        with torch.no_grad():
            theta -= _step(config, theta.grad, curvature[:, epoch], epoch)
        if policy_optimizer is not None:
            policy_optimizer.step()
    record(steps / epochs)
    return TrainingResult(
        theta=theta.detach().double(),
        ambiguous_draw_share=share,
        records=torch.stack(records) if records else None,
        recorded_progress=torch.tensor(recorded_progress, dtype=torch.float64) if records else None,
        curvature=curvature,
        samplers=samplers,
    )


def _features(data: TrainingPools) -> tuple[torch.Tensor, torch.Tensor]:
    """The scorer's features ``x * c`` of the positives (n, d) and of the pool's negatives (n, P, d)."""
    return data.anchor * data.positive, data.anchor[:, None, :] * data.negatives


def _epoch(config: TrainingConfig, sampler, data: TrainingPools, features, theta: torch.Tensor, progress: float,
           generator: torch.Generator):
    """One run's epoch at weights theta (d,): its contrastive loss, the policy's loss (or None), the
    share of ambiguous draws, and the Hessian of the loss w.r.t. theta (d, d)."""
    positive_features, negative_features = features
    positive_logit = (positive_features @ theta)[:, None]
    negative_logits = negative_features @ theta
    draw = draw_negatives(config.arm, sampler, data.anchor * theta.detach(), data.positive, data.negatives,
                          (positive_logit.detach(), negative_logits.detach()), progress, config.num_negatives, generator)
    extra = negative_logits.gather(1, draw.index) + draw.offset
    loss = contrastive_logits_loss(positive_logit, torch.zeros(positive_logit.shape[0], dtype=torch.long), extra)
    drawn = negative_features.gather(1, draw.index[..., None].expand(-1, -1, theta.shape[0]))
    with torch.no_grad():
        hessian = contrastive_hessian(torch.cat([positive_features[:, None], drawn], 1), torch.cat([positive_logit, extra], 1))
    return loss, draw.policy_loss, data.ambiguous.gather(1, draw.index).float().mean(), hessian


def curvature_along_curriculum(pools: TrainingPools, theta: torch.Tensor, config: TrainingConfig, progress,
                               seed: int) -> torch.Tensor:
    """(len(progress), d, d) the Hessian of the arm's loss at fixed weights ``theta`` (d,) with the draws
    of each curriculum position: the rates of the dynamics linearised at a fixed point. A sampler's
    policy is at its initialisation (the trained one moves its priorities by a few hundredths)."""
    sampler = _make_samplers(config, [seed])[0]
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        return torch.stack([_epoch(config, sampler, pools, _features(pools), theta.float(), float(eta), generator)[3]
                            for eta in progress])


def _step(config: TrainingConfig, gradient: torch.Tensor, hessian: torch.Tensor, epoch: int) -> torch.Tensor:
    """The update of every run's theta, (R, d), from the gradient (R, d) and the Hessian (R, d, d)."""
    if config.optimizer == "gd":
        return config.learning_rate * gradient
    p = gradient.shape[1]
    # A tiny ridge keeps directions without curvature (an all-easy draw) from producing huge steps.
    ridge = 1e-6 * hessian.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(p, dtype=torch.float64)
    newton = torch.linalg.solve(hessian + ridge, gradient.double()[..., None])[..., 0]
    newton = newton * (config.max_step / newton.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    step_size = 0.5 * (1.0 + math.cos(math.pi * epoch / (config.epochs + config.hold_epochs)))
    return (step_size * newton).float()
