"""SIGKILL at several points of a training run, then resume: the same weights and metrics log, bit
for bit, as a run never interrupted (issue #7), on CPU.

test_train.py already kills a run once soon after its first checkpoint, and stops and resumes
runs in process. Here: a kill inside each atomic write (checkpoint, metrics log, final weights;
the child kills itself at the exact byte, so the point is deterministic), and a run killed twice at
whatever step it has reached. The Snakemake side (a pipeline killed mid-run, rerun) is
tests/test_workflow.py::test_smoke_pipeline_killed_rerun_completes_then_nothing_left_to_do.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures import (
    PicklePayload,
    file_tree,
    latent_features,
    tiny_config,
    train_args,
    write_config,
    write_feature_file,
)
from safetensors.torch import load_file

from bacl.cli import main
from bacl.train import CHECKPOINT, FINAL_WEIGHTS, METRICS_LOG

METHOD = {"clip_bacl": {"aligner": "clip", "bns": True, "cla": True}}  # Gumbel draws and CLA: the most state
STEPS, EVERY = 40, 10  # checkpoint_every; the log gets a line every 5 steps

# Runs the CLI in a child that SIGKILLs itself in the middle of the n-th atomic write of one file:
# the temporary file is cut to half its size, and the kill comes before the rename, as a crash
# while writing would. Only this child is patched; the resumed run is the unmodified CLI.
KILL_INSIDE_WRITE = """
import os, signal, sys
target, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
replace, seen = os.replace, [0]

def dying_replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == target:
        seen[0] += 1
        if seen[0] == nth:
            os.truncate(src, os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst, *args, **kwargs)

os.replace = dying_replace
from bacl.cli import main
sys.exit(main(argv))
"""


def child_environment() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def assert_same_run(expected: Path, resumed: Path) -> None:
    weights, resumed_weights = load_file(str(expected / FINAL_WEIGHTS)), load_file(str(resumed / FINAL_WEIGHTS))
    assert set(weights) == set(resumed_weights)
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    assert (expected / METRICS_LOG).read_bytes() == (resumed / METRICS_LOG).read_bytes()


def log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / METRICS_LOG).read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Config, training split and the uninterrupted run every resumed run must equal."""
    root = tmp_path_factory.mktemp("resume")
    config = write_config(root / "config.yaml", tiny_config(
        METHOD, train={"steps": STEPS, "batch_size": 16, "lr": 3e-3, "checkpoint_every": EVERY, "log_every": 5}))
    features = write_feature_file(root / "train.safetensors", latent_features(64))
    assert main(train_args(config, "clip_bacl", features, root / "whole")) == 0
    return config, features, root / "whole"


# (file whose n-th write is cut, n) -> (checkpoint step left behind, metrics lines left behind)
WRITE_KILLS = {
    ("checkpoint.pt", 2): (EVERY, 2 * EVERY // 5),  # the log of step 20 is already in place: ahead
    ("metrics.jsonl", 2): (EVERY, EVERY // 5),
    ("weights.safetensors", 1): (STEPS, STEPS // 5),  # the final checkpoint is in place, the weights not
}


@pytest.mark.parametrize("target, nth", sorted(WRITE_KILLS))
def test_killed_inside_an_atomic_write_resumes_to_the_same_run(target, nth, setup, tmp_path):
    config, features, whole = setup
    run = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", KILL_INSIDE_WRITE, target, str(nth),
                            *train_args(config, "clip_bacl", features, run)],
                           env=child_environment(), capture_output=True, text=True, timeout=600, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    kept_step, log_lines = WRITE_KILLS[(target, nth)]
    leftovers = list(run.glob(f".{target}.tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the cut temporary file
    assert checkpoint_step(run) == kept_step
    assert len(log_steps(run)) == log_lines and not (run / FINAL_WEIGHTS).exists()

    assert main(train_args(config, "clip_bacl", features, run)) == 0
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == kept_step
    assert_same_run(whole, run)
    assert not list(run.glob(".*.tmp-*")), "the resumed run left the killed write's temporary file"


def checkpoint_step(run: Path) -> int:
    return torch.load(run / CHECKPOINT, weights_only=True)["step"] if (run / CHECKPOINT).exists() else 0


def wait_then_kill(command: list[str], run: Path, until_step: int, delay: float, log: Path) -> int:
    """Start ``command``; SIGKILL it ``delay`` seconds after its metrics log reaches ``until_step``.
    Returns the step of the checkpoint it left (0: none)."""
    with open(log, "w") as stderr:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen(command, env=child_environment(), stderr=stderr)
        try:
            deadline = time.monotonic() + 600
            while child.poll() is None and time.monotonic() < deadline:
                if (run / METRICS_LOG).exists() and max(log_steps(run), default=0) >= until_step:
                    time.sleep(delay)
                    break
                time.sleep(0.002)
        finally:
            child.send_signal(signal.SIGKILL)  # nothing happens if it has already exited
            child.wait()
    assert child.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert not (run / FINAL_WEIGHTS).exists()
    return checkpoint_step(run)


@pytest.mark.slow
def test_killed_twice_mid_run_resumes_to_the_same_run(tmp_path):
    """Two kills of one run, each followed by a resumed child; the third start finishes. The first
    kill comes right after a metrics log write, so usually between it and the checkpoint's (the log
    is then ahead of the checkpoint, or no checkpoint exists yet); the second 50 ms later, inside
    some later step. 200 steps leave a wide margin after each kill point."""
    steps = 200
    config = write_config(tmp_path / "config.yaml", tiny_config(
        METHOD, train={"steps": steps, "batch_size": 16, "lr": 3e-3, "checkpoint_every": 20, "log_every": 10}))
    features = write_feature_file(tmp_path / "train.safetensors", latent_features(64))
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "bacl", *train_args(config, "clip_bacl", features, run)]
    first = wait_then_kill(command, run, until_step=20, delay=0.0, log=tmp_path / "first.log")
    second = wait_then_kill(command, run, until_step=max(log_steps(run)) + 60, delay=0.05,
                            log=tmp_path / "second.log")
    assert first < second < steps and second % 20 == 0
    assert main(train_args(config, "clip_bacl", features, run)) == 0
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == second
    assert main(train_args(config, "clip_bacl", features, tmp_path / "whole")) == 0
    assert_same_run(tmp_path / "whole", run)


def test_a_checkpoint_with_a_pickled_object_is_refused_never_run(setup, tmp_path, capsys):
    config, features, whole = setup
    run, marker = tmp_path / "run", tmp_path / "ran"
    run.mkdir()
    state = torch.load(whole / CHECKPOINT, weights_only=True)  # a genuine checkpoint of this very run...
    state["optimizer"]["hook"] = PicklePayload(marker)  # ...carrying one pickled object
    torch.save(state, run / CHECKPOINT)
    torch.load(run / CHECKPOINT, weights_only=False)  # the payload is live: a plain unpickle runs it
    assert marker.is_dir()
    marker.rmdir()
    before = file_tree(tmp_path)
    assert main(train_args(config, "clip_bacl", features, run)) == 2
    error = capsys.readouterr().err
    assert str(run / CHECKPOINT) in error and "never unpickled" in error and "posix.mkdir" in error
    assert not marker.exists() and file_tree(tmp_path) == before
