"""The experiment grids of the notebooks: both arms on nested training sets, scored exactly.

Common random numbers: seed s draws one training set of ``max(n_values)`` pools and every n uses
its first n pools; both arms see the same pools and the same test set; run (s, n) seeds its sampler
policy and draw noise with the same number in both arms. Seeds are independent, so blocks of seeds
run in separate processes (``workers``) and are concatenated: the result does not depend on it
(up to floating-point rounding in the batched risk evaluation).
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
    """Per (seed, n): excess pairwise risk and excess log-loss (S, N), final weights (S, N, d, d),
    and the share of ambiguous negatives among the K draws per epoch (S, N, epochs)."""

    excess_pairwise: np.ndarray
    excess_log_loss: np.ndarray
    weights: np.ndarray
    ambiguous_draw_share: np.ndarray


def _check_common(seeds, arms, workers) -> None:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    unknown = set(arms) - set(ARMS)
    if not arms or unknown:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}, got {arms!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _map_seed_blocks(function, seeds: int, workers: int, *arguments) -> list:
    """``function(seed_indices, *arguments)`` over contiguous blocks of seeds, in ``workers`` processes."""
    blocks = [block.tolist() for block in np.array_split(np.arange(seeds), min(workers, seeds))]
    if len(blocks) == 1:
        return [function(blocks[0], *arguments)]
    # spawn, not fork: a forked child would inherit torch's thread pools in an undefined state.
    with ProcessPoolExecutor(len(blocks), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, blocks, *[[a] * len(blocks) for a in arguments]))


def _arm_block(seed_indices, model, n_values, test, config, arms, base_seed) -> dict:
    torch.set_num_threads(1)  # each process is one core's worth of work; intra-op threads only contend
    largest = max(n_values)
    data = {s: model.training_pools(largest, torch.Generator().manual_seed(training_seed(base_seed, s)))
            for s in seed_indices}
    pools = [data[s].head(n) for s in seed_indices for n in n_values]
    run_seeds = [training_seed(base_seed, s) for s in seed_indices for _ in n_values]
    shape = (len(seed_indices), len(n_values))
    block = {}
    for arm in arms:
        trained = train_runs(pools, run_seeds, replace(config, arm=arm), torch.zeros(model.dim, model.dim))
        block[arm] = ArmResult(
            excess_pairwise=excess_pairwise_risk(trained.weights, test).numpy().reshape(shape),
            excess_log_loss=excess_log_loss(trained.weights, test).numpy().reshape(shape),
            weights=trained.weights.numpy().reshape(*shape, model.dim, model.dim),
            ambiguous_draw_share=trained.ambiguous_draw_share.numpy().reshape(*shape, -1),
        )
    return block


def run_arms(model: BoundaryPoolModel, n_values: list[int], seeds: int, test: TestPools, config: TrainingConfig,
             arms: tuple[str, ...] = ARMS, base_seed: int = 0, workers: int = 1) -> dict[str, ArmResult]:
    """Train every arm on every (seed, n) and score it on ``test``.

    Args:
        model: the generative model; n_values: training-set sizes; seeds: number of seeds;
        test: exact-risk test pools of the same model; config: training settings (its ``arm`` is
        replaced by each entry of ``arms``); base_seed: offsets every random stream;
        workers: processes to spread the seeds over.
    """
    if not n_values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in n_values):
        raise ValueError(f"n_values must be a non-empty list of positive integers, got {n_values!r}")
    _check_common(seeds, arms, workers)
    blocks = _map_seed_blocks(_arm_block, seeds, workers, model, list(n_values), test, config, tuple(arms), base_seed)
    return _concatenate(blocks, arms)


def _share_block(seed_indices, ambiguous_values, n, test_pools, config, arms, base_seed) -> list:
    blocks = []
    for ambiguous in ambiguous_values:
        model = BoundaryPoolModel(ambiguous_negatives=ambiguous)
        test = model.test_pools(test_pools, torch.Generator().manual_seed(base_seed))
        blocks.append(_arm_block(seed_indices, model, [n], test, config, arms, base_seed))
    return blocks


def run_share_grid(ambiguous_values: list[int], n: int, seeds: int, test_pools: int, config: TrainingConfig,
                   arms: tuple[str, ...] = ARMS, base_seed: int = 0, workers: int = 1) -> list[dict[str, ArmResult]]:
    """``run_arms`` at one n for each number of ambiguous negatives A (rho = A / P), default model
    otherwise; each rho gets its own test set of ``test_pools`` pools (seeded by ``base_seed``).
    Returns one ``{arm: ArmResult}`` per entry of ``ambiguous_values``, in order."""
    if not ambiguous_values:
        raise ValueError("ambiguous_values must not be empty")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    _check_common(seeds, arms, workers)
    models = [BoundaryPoolModel(ambiguous_negatives=a) for a in ambiguous_values]  # validates every A up front
    blocks = _map_seed_blocks(_share_block, seeds, workers, list(ambiguous_values), n, test_pools, config,
                              tuple(arms), base_seed)
    return [_concatenate([b[i] for b in blocks], arms) for i in range(len(models))]


def _concatenate(blocks: list[dict], arms) -> dict[str, ArmResult]:
    return {arm: ArmResult(*[np.concatenate([getattr(b[arm], field) for b in blocks])
                             for field in ("excess_pairwise", "excess_log_loss", "weights", "ambiguous_draw_share")])
            for arm in arms}


def _margin_block(seed_indices, model, n, test, config, arms, base_seed, record_every) -> dict:
    torch.set_num_threads(1)
    run_seeds = [training_seed(base_seed, s) for s in seed_indices]
    data = [model.training_pools(n, torch.Generator().manual_seed(seed)) for seed in run_seeds]
    block = {}
    for arm in arms:
        trained = train_runs(data, run_seeds, replace(config, arm=arm), torch.zeros(model.dim, model.dim),
                             on_epoch=lambda weights: alignment_margin(weights, test), record_every=record_every)
        block[arm] = (trained.recorded_progress.numpy(), trained.records.numpy().T, trained.ambiguous_draw_share.numpy())
    return block


def margin_trajectories(model: BoundaryPoolModel, n: int, seeds: int, test: TestPools, config: TrainingConfig,
                        record_every: int, arms: tuple[str, ...] = ARMS, base_seed: int = 0,
                        workers: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Train every arm on ``seeds`` training sets of ``n`` pools, recording the test-set margin.

    Returns per arm: ``eta`` (M,) progress of each record, ``margin`` (S, M), and ``share`` (S, epochs)
    the share of ambiguous negatives among the draws.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    _check_common(seeds, arms, workers)
    blocks = _map_seed_blocks(_margin_block, seeds, workers, model, n, test, config, tuple(arms), base_seed, record_every)
    return {arm: {"eta": blocks[0][arm][0],
                  "margin": np.concatenate([b[arm][1] for b in blocks]),
                  "share": np.concatenate([b[arm][2] for b in blocks])}
            for arm in arms}
