"""The experiment grids of the notebooks: every arm on nested training sets, scored exactly.

Common random numbers: seed s draws one training set of the largest n any arm uses, and every n uses
its first n pools; every arm sees the same pools and the same test set; run (s, n) seeds its sampler
policy and draw noise with the same number in every arm. Seeds are independent, so blocks of seeds
run in separate processes (``workers``) and are concatenated: the result does not depend on it (up
to floating-point rounding in the batched risk evaluation).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from .model import BoundaryPoolModel, TestPools
from .risk import alignment_margin, excess_log_loss, excess_pairwise_risk
from .training import ARMS, TrainingConfig, train_runs

__all__ = ["ArmResult", "margin_trajectories", "run_arms", "run_share_grid", "training_seed"]


def training_seed(base_seed: int, seed: int) -> int:
    """Generator seed of seed ``seed``'s training set (distinct from the test set's base_seed)."""
    return 1_000_003 * (base_seed + 1) + seed


@dataclass
class ArmResult:
    """One arm over seeds and sample sizes: n_values (N,); excess pairwise risk and excess log-loss
    (S, N); final weights theta (S, N, d); the share of ambiguous negatives among the draws per
    epoch (S, N, epochs)."""

    n_values: np.ndarray
    excess_pairwise: np.ndarray
    excess_log_loss: np.ndarray
    theta: np.ndarray
    ambiguous_draw_share: np.ndarray


def _check_common(seeds, arms, workers) -> None:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    unknown = set(arms) - set(ARMS)
    if not arms or unknown:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {list(arms)!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _check_sizes(name, values) -> None:
    if not values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")


def _map_seed_blocks(function, seeds: int, workers: int, *arguments) -> list:
    """``function(seed_indices, *arguments)`` over contiguous blocks of seeds, in ``workers`` processes."""
    blocks = [block.tolist() for block in np.array_split(np.arange(seeds), min(workers, seeds))]
    if len(blocks) == 1:
        return [function(blocks[0], *arguments)]
    # spawn, not fork: a forked child would inherit torch's thread pools in an undefined state.
    with ProcessPoolExecutor(len(blocks), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, blocks, *[[a] * len(blocks) for a in arguments]))


def _arm_block(seed_indices, model, arm_n_values, test, config, base_seed) -> dict:
    torch.set_num_threads(1)  # each process is one core's worth of work; intra-op threads only contend
    largest = max(max(values) for values in arm_n_values.values())
    data = {s: model.training_pools(largest, torch.Generator().manual_seed(training_seed(base_seed, s)))
            for s in seed_indices}
    block = {}
    for arm, n_values in arm_n_values.items():
        pools = [data[s].head(n) for s in seed_indices for n in n_values]
        run_seeds = [training_seed(base_seed, s) for s in seed_indices for _ in n_values]
        shape = (len(seed_indices), len(n_values))
        trained = train_runs(pools, run_seeds, replace(config, arm=arm), torch.zeros(model.dim))
        weights = torch.diag_embed(trained.theta)
        block[arm] = ArmResult(
            n_values=np.asarray(n_values),
            excess_pairwise=excess_pairwise_risk(weights, test).numpy().reshape(shape),
            excess_log_loss=excess_log_loss(weights, test).numpy().reshape(shape),
            theta=trained.theta.numpy().reshape(*shape, model.dim),
            ambiguous_draw_share=trained.ambiguous_draw_share.numpy().reshape(*shape, -1),
        )
    return block


def _concatenate(blocks: list[dict]) -> dict[str, ArmResult]:
    fields = ("excess_pairwise", "excess_log_loss", "theta", "ambiguous_draw_share")
    return {arm: ArmResult(blocks[0][arm].n_values, *[np.concatenate([getattr(b[arm], f) for b in blocks]) for f in fields])
            for arm in blocks[0]}


def run_arms(model: BoundaryPoolModel, arm_n_values: dict[str, list[int]], seeds: int, test: TestPools,
             config: TrainingConfig, base_seed: int = 0, workers: int = 1) -> dict[str, ArmResult]:
    """Train every arm on every (seed, n) of its own list and score it on ``test``.

    Args:
        model: the generative model; arm_n_values: arm -> its training-set sizes (an arm whose runs
        cost more may stop at a smaller n; every n is a head of the same seed's sample); seeds: number
        of seeds; test: exact-risk test pools; config: training settings (its ``arm`` is replaced by
        each arm); base_seed: offsets every random stream; workers: processes to spread the seeds over.
    """
    if not isinstance(arm_n_values, dict):
        raise ValueError(f"arm_n_values must be a dict arm -> list of n, got {arm_n_values!r}")
    for arm, values in arm_n_values.items():
        _check_sizes(f"arm_n_values[{arm!r}]", values)
    _check_common(seeds, list(arm_n_values), workers)
    return _concatenate(_map_seed_blocks(_arm_block, seeds, workers, model, dict(arm_n_values), test, config, base_seed))


def _share_block(seed_indices, ambiguous_values, n, test, config, arms, base_seed) -> list:
    return [_arm_block(seed_indices, BoundaryPoolModel(ambiguous_negatives=a), {arm: [n] for arm in arms}, test,
                       config, base_seed) for a in ambiguous_values]


def run_share_grid(ambiguous_values: list[int], n: int, seeds: int, test: TestPools, config: TrainingConfig,
                   arms: tuple[str, ...], base_seed: int = 0, workers: int = 1) -> list[dict[str, ArmResult]]:
    """``run_arms`` at one n for each number of ambiguous negatives A of the *training* pools (rho = A / P),
    default model otherwise, every rho scored on the same ``test`` pools (the test distribution is
    held fixed). Returns one ``{arm: ArmResult}`` per entry of ``ambiguous_values``, in order."""
    if not ambiguous_values:
        raise ValueError("ambiguous_values must not be empty")
    _check_sizes("[n]", [n])
    _check_common(seeds, arms, workers)
    for a in ambiguous_values:
        BoundaryPoolModel(ambiguous_negatives=a)  # validates every A up front
    blocks = _map_seed_blocks(_share_block, seeds, workers, list(ambiguous_values), n, test, config, tuple(arms),
                              base_seed)
    return [_concatenate([b[i] for b in blocks]) for i in range(len(ambiguous_values))]


def _margin_block(seed_indices, model, n, test, config, arms, base_seed, record_every, initial_theta) -> dict:
    torch.set_num_threads(1)
    run_seeds = [training_seed(base_seed, s) for s in seed_indices]
    data = [model.training_pools(n, torch.Generator().manual_seed(seed)) for seed in run_seeds]
    block = {}
    for arm in arms:
        trained = train_runs(data, run_seeds, replace(config, arm=arm), initial_theta,
                             on_epoch=lambda weights: alignment_margin(weights, test), record_every=record_every)
        block[arm] = (trained.recorded_progress.numpy(), trained.records.numpy().T, trained.ambiguous_draw_share.numpy(),
                      trained.curvature.numpy(), trained.theta.numpy())
    return block


def margin_trajectories(model: BoundaryPoolModel, n: int, seeds: int, test: TestPools, config: TrainingConfig,
                        record_every: int, initial_theta: torch.Tensor, arms: tuple[str, ...], base_seed: int = 0,
                        workers: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Train every arm from ``initial_theta`` (d,) on ``seeds`` training sets of ``n`` pools, recording
    the test-set margin.

    Returns per arm: ``eta`` (M,) progress of each record, ``margin`` (S, M), ``share`` (S, steps) the
    share of ambiguous negatives among the draws, ``curvature`` (S, steps, d, d) the Hessian of each
    step's loss, and ``theta`` (S, d) the final weights.
    """
    _check_sizes("[n]", [n])
    _check_common(seeds, arms, workers)
    blocks = _map_seed_blocks(_margin_block, seeds, workers, model, n, test, config, tuple(arms), base_seed,
                              record_every, initial_theta)
    return {arm: {"eta": blocks[0][arm][0],
                  "margin": np.concatenate([b[arm][1] for b in blocks]),
                  "share": np.concatenate([b[arm][2] for b in blocks]),
                  "curvature": np.concatenate([b[arm][3] for b in blocks]),
                  "theta": np.concatenate([b[arm][4] for b in blocks])}
            for arm in arms}
