"""The paper-scale rehearsal (workflow/config/rehearsal.yaml): gpu.yaml's DAG end to end on tiny
data in the real formats (workflow/scripts/rehearsal_data.py) with a random stand-in tower, through
the paper stage's tables, claims and report, so the paper-scale path cannot rot unnoticed."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from paper_fixtures import load

from bacl.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MAIN_ROWS = ("CLIP", "BLIP", "GRAM", "M3-JEPA", "CLIP+BACL", "M3-JEPA+BACL", "Frozen encoder (zero-shot)")
OUR_COLUMNS = ("Image R@1 (ours, image_text) mean", "Image mAP (ours, image_text) mean",
               "Video R@1 (ours, video_text) mean", "Audio R@1 (ours, audio_text) mean",
               "Audio-video Acc (ours, audio_video_text) mean")



rehearsal_data = load("rehearsal_data")


def test_rehearsal_config_reads_what_the_data_script_writes():
    config = load_config(ROOT / "workflow/config/rehearsal.yaml")
    written = rehearsal_data.data_section(rehearsal_data.DEFAULT_OUT)
    for benchmark, section in written.items():
        for key, value in section.items():
            if key != "splits":
                assert config["data"][benchmark][key] == value, (benchmark, key)
        for split, paths in section["splits"].items():
            for key, value in paths.items():
                assert config["data"][benchmark]["splits"][split][key] == value, (benchmark, split, key)
    for family in ("image", "audio"):
        assert config["encoders"][family] == {**config["encoders"][family], "model": rehearsal_data.TOWER,
                                              "pretrained": str(rehearsal_data.weights_path(rehearsal_data.DEFAULT_OUT))}
    gpu = load_config(ROOT / "workflow/config/gpu.yaml")
    assert config["benchmarks"] == gpu["benchmarks"] and set(config["methods"]) == set(gpu["methods"])
    assert config["tables"] == gpu["tables"]


@pytest.mark.slow
def test_rehearsal_runs_the_gpu_dag_through_the_report(tmp_path):
    data = rehearsal_data.write_all(tmp_path / "input")
    results = tmp_path / "results"
    config = tmp_path / "rehearsal.yaml"
    config.write_text(yaml.safe_dump({
        "base": str(ROOT / "workflow/config/rehearsal.yaml"), "results_dir": str(results),
        "paper_dir": str(results / "paper"), "theory": {"results_dir": str(results / "theory")},
        "data": rehearsal_data.data_section(data),
        "encoders": {family: {"pretrained": str(rehearsal_data.weights_path(data))} for family in ("image", "audio")},
    }))
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]

    from bacl.featureset import FeatureSet

    image = FeatureSet.load(results / "features/image_text/train.safetensors")
    assert image["x_tokens"].shape == (32, 16, 96) and image.meta["source"] == "webdataset"  # ViT-B-16's relations
    av = FeatureSet.load(results / "features/audio_video_text/test.safetensors")
    assert av["x_tokens"].shape == (8, 8 + 1, 64) and av["negative_text"].shape[:2] == (8, 4)
    assert av.meta["read"] == {"good": 8, "bad": 0, "bad_by_reason": {}, "broken_sources": 0}

    with (results / "paper/tables/main.csv").open() as handle:
        rows = {row["Method"]: row for row in csv.DictReader(handle)}
    assert set(MAIN_ROWS) <= set(rows)
    for label in MAIN_ROWS:  # every benchmark's column has a number, the audio-video one included
        for column in OUR_COLUMNS:
            assert 0.0 <= float(rows[label][column]) <= 100.0, (label, column)
    for name in ("components", "schedules", "lambda_local", "beta", "ael", "reranked", "encoder_quality"):
        assert (results / f"paper/tables/{name}.md").is_file(), name
    report = (results / "paper/README.md").read_text()
    assert "rehearsal" in report and (results / "paper/claims.json").is_file()
    assert not (results / "paper/tables/encoders.md").exists()  # nothing pre-trained at paper scale
