"""What every benchmark shares: the run's provenance, interleaved timing, peak step memory, JSON output.

Timing is side by side in one process: after a warm-up, the variants run in rounds, each round
timing every variant once, in an order that rotates from round to round (A B C, B C A, ...). Load
from other processes then hits all variants alike and cancels in their ratios; the paired ratio
of each round is kept, so its spread shows how much it did not. On CPU the clock is the process's
CPU time (``time.process_time``), not wall time: on a shared machine a niced process waits for
the CPU most of the wall time, and that wait says nothing about the step. With one torch thread
(the default) CPU time is the compute the step needs on a free core, up to cache and memory
bandwidth shared with the other work. On GPU the clock is wall time after synchronising.

Peak memory of a training step is "the most bytes of tensors alive at once during the step that
were allocated by it", measured by torch itself: on CUDA ``max_memory_allocated`` minus what was
allocated before; on CPU the running total of the allocations torch's profiler records with
``profile_memory=True``, each counted from its allocation inside the profiled window to its free
(by address). The profiler's own "Total Allocated" counter is not used: it keeps the blocks that
earlier profiled windows allocated and later unprofiled code freed, so it drifts upwards over a
run (benchmarks/README.md). Process RSS is not used: glibc keeps freed pages, so RSS deltas depend on what
ran before and would need a fresh subprocess per variant; tracemalloc does not see torch's
allocator at all.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["ROOT", "RESULTS", "DETAILS", "environment", "interleaved", "ratio_stats", "step_peak_bytes", "write_json",
           "positive_int", "sync", "clock", "training_optimizer"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# Detailed results live one level down: the paper's claims read every benchmarks/results/*.json
# as a cost report (workflow/rules/paper.smk), so only the overhead summary sits at the top.
DETAILS = "details"


def positive_int(text: str) -> int:
    """argparse type: an int >= 1, else a ValueError naming the value."""
    value = int(text)
    if value < 1:
        raise ValueError(f"expected an integer >= 1, got {text!r}")
    return value


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment(device: str = "cpu") -> dict:
    """Provenance of a run: library versions, threads, machine, date, commit, niceness and load."""
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "clock": "wall time" if device.startswith("cuda") else "process CPU time",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        # Times (not the ratios) depend on the CPU: its model and torch's vector extension say which.
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted changes to the library change what was measured: say so.
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "src")),
        "niceness": os.nice(0),
        "niced": os.nice(0) > 0,
        "load_average_1min": os.getloadavg()[0],
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timestamp after it means the work is done."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def clock(device: str = "cpu") -> float:
    """Seconds on the benchmarks' clock (see module docstring): CPU time on CPU, wall time on GPU."""
    if device.startswith("cuda"):
        sync(device)
        return time.perf_counter()
    return time.process_time()


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                min_seconds: float = 0.05, device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each variant on :func:`clock`, ``repeats`` samples each, in rotating rounds.

    A sample times ``n`` consecutive calls and divides by ``n``, with ``n`` set from the warm-up so
    that a sample lasts at least ``min_seconds`` (50 ms by default: well above the timer's and the
    scheduler's granularity, short enough to interleave finely).
    """
    if not variants:
        raise ValueError("variants is empty: nothing to time")
    calls: dict[str, int] = {}
    for name, fn in variants.items():
        start = clock(device)
        for _ in range(max(1, warmup)):
            fn()
        per_call = (clock(device) - start) / max(1, warmup)
        calls[name] = max(1, min(1000, int(min_seconds / max(per_call, 1e-9)) + 1))
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock(device)
            for _ in range(calls[name]):
                variants[name]()
            samples[name].append((clock(device) - start) / calls[name])
    return samples


def ratio_stats(numerator: list[float], denominator: list[float]) -> dict:
    """Ratio of medians, and the median and range of the per-round paired ratios."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("numerator and denominator must be equally long, non-empty lists of samples")
    paired = [a / b for a, b in zip(numerator, denominator)]
    return {"ratio": statistics.median(numerator) / statistics.median(denominator),
            "paired_median": statistics.median(paired), "paired_min": min(paired), "paired_max": max(paired)}


def step_peak_bytes(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes of tensors allocated by one call of ``fn`` and alive at once (see module docstring)."""
    if device.startswith("cuda"):
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # The chrome trace is where the profiler exposes its allocation events (address, signed bytes).
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace_path))
        events = json.loads(trace_path.read_text())["traceEvents"]
    memory = sorted((event for event in events
                     if event.get("name") == "[memory]" and event.get("args", {}).get("Device Type") == 0),
                    key=lambda event: event["ts"])
    live, current, peak = {}, 0, 0  # blocks allocated in the window and not yet freed
    for event in memory:
        address, size = event["args"]["Addr"], event["args"]["Bytes"]
        if size > 0:
            live[address] = size
            current += size
        elif address in live:  # a block allocated before the window is not counted when freed either
            current -= live.pop(address)
        peak = max(peak, current)
    return peak


def training_optimizer(parameters) -> torch.optim.Optimizer:
    """The AdamW ``python -m bacl train`` builds (bacl.train.warmup_cosine_adamw, TrainSettings' rate
    and decay), at its full rate from the first step: one warm-up step, and the scheduler is never
    stepped here (the rate does not change a step's cost)."""
    from bacl.train import TrainSettings, warmup_cosine_adamw

    settings = TrainSettings(steps=1, batch_size=1, warmup_fraction=0.0)
    optimizer, _ = warmup_cosine_adamw(parameters, settings.lr, settings.weight_decay, settings.steps,
                                       settings.warmup_fraction)
    return optimizer


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
