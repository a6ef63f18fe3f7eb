"""The Snakemake workflow: lint-clean, and every config builds a DAG (dry runs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


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
