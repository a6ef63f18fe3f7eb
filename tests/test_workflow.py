"""The Snakemake workflow: lint-clean, and every config builds a DAG (dry runs)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, cwd=ROOT, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize("configfile", [None, "workflow/config/default.yaml", "workflow/config/smoke.yaml"])
def test_dry_run_builds_the_dag(configfile):
    args = ["-n", "--forceall", "--cores", "2", "--quiet", "rules"]
    if configfile:
        args += ["--configfile", configfile]
    result = snakemake(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in ("generate_data", "pretrain_encoder", "extract_features", "candidate_index", "train", "evaluate"):
        assert rule in result.stdout + result.stderr


def test_invalid_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: " + str(ROOT / "workflow/config/smoke.yaml") + "\ntrain: {steps: 0}\n")
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert result.returncode != 0
    assert "steps" in result.stdout + result.stderr


PAPER_FILES = [
    *(f"tables/{name}.{ext}" for name in ("main", "components", "schedules", "lambda_local", "beta", "ael",
                                          "reranked", "heldout", "encoders") for ext in ("md", "csv", "tex")),
    *(f"figures/{name}.{ext}" for name in ("schedule_alpha", "boundary_scores", "training_curves",
                                           "attention_maps", "schedule_r1") for ext in ("png", "pdf")),
    "claims.md", "claims.json", "README.md",
]


@pytest.mark.slow
def test_smoke_pipeline_killed_rerun_completes_then_nothing_left_to_do(tmp_path):
    """The smoke DAG end to end, with the first attempt killed (SIGKILL to the whole process group)
    in the middle of training: the rerun completes, every paper output exists, a second rerun has
    nothing to do, and Snakemake's HTML report builds."""
    config = tmp_path / "smoke.yaml"
    config.write_text(
        f"base: {ROOT / 'workflow/config/smoke.yaml'}\n"
        f"results_dir: {tmp_path / 'results'}\npaper_dir: {tmp_path / 'paper'}\n"
        f"theory: {{results_dir: {tmp_path / 'theory'}, size: smoke}}\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen([*SNAKEMAKE, "--cores", "2", "--configfile", str(config)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while not list((tmp_path / "results").glob("runs/*/*/seed0/checkpoint.pt")):
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended before training"
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # A hard kill leaves Snakemake's lock behind (Ctrl-C would release it): unlock, as its message says.
    assert snakemake("--unlock", "--configfile", str(config)).returncode == 0
    result = snakemake("--cores", "2", "--rerun-incomplete", "--configfile", str(config), timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    missing = [name for name in PAPER_FILES if not (tmp_path / "paper" / name).is_file()]
    assert not missing, missing
    assert (tmp_path / "theory" / "verdicts.json").is_file()
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary file was left behind"
    again = snakemake("--cores", "2", "--configfile", str(config), "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake("--configfile", str(config), "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10_000
