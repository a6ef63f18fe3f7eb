"""The Snakemake workflow: lint-clean, and every config builds a DAG (dry runs)."""

import os
import subprocess
import sys
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
def test_smoke_pipeline_end_to_end_then_nothing_left_to_do(tmp_path):
    config = tmp_path / "smoke.yaml"
    config.write_text(
        f"base: {ROOT / 'workflow/config/smoke.yaml'}\n"
        f"results_dir: {tmp_path / 'results'}\npaper_dir: {tmp_path / 'paper'}\n"
        f"theory: {{results_dir: {tmp_path / 'theory'}, size: smoke}}\n"
    )
    result = snakemake("--cores", "2", "--configfile", str(config), timeout=1500)  # ~5 min on 2 cores
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    missing = [name for name in PAPER_FILES if not (tmp_path / "paper" / name).is_file()]
    assert not missing, missing
    assert (tmp_path / "theory" / "verdicts.json").is_file()
    # A rerun finds every output up to date and recomputes nothing.
    again = snakemake("--cores", "2", "--configfile", str(config), "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
