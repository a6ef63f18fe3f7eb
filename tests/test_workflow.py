"""The Snakemake workflow: lint-clean, and every config builds a DAG (dry runs)."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
import yaml
from PIL import Image
from paper_fixtures import load

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


def test_make_reproduce_runs_with_the_profile_that_resumes_interrupted_runs():
    """Snakemake looks for a default profile only beside the Snakefile, so `make reproduce` must
    name workflow/profiles/default for a rerun after a kill to redo the incomplete jobs."""
    # Under a parent make (CI calls `make test`) make would add "Entering/Leaving directory" lines.
    make = subprocess.run(["make", "--no-print-directory", "-n", "reproduce", "CONFIG=workflow/config/smoke.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert make.returncode == 0, make.stderr
    command = make.stdout.strip().splitlines()[-1].split()
    assert command[0].endswith("/snakemake"), command
    result = snakemake(*command[1:], "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Using workflow specific profile workflow/profiles/default" in result.stdout + result.stderr
    profile = yaml.safe_load((ROOT / "workflow/profiles/default/config.yaml").read_text())
    assert profile["rerun-incomplete"] is True and profile["keep-going"] is True


@pytest.mark.parametrize("configfile, runs_control", [("workflow/config/default.yaml", True),
                                                      ("workflow/config/gpu.yaml", False)])
def test_the_sibling_group_control_runs_only_where_there_are_groups(configfile, runs_control):
    """gpu.yaml (real data, no sibling groups) runs clip_bns_no_group nowhere, and the BNS controls' table drops out."""
    result = snakemake("-n", "--forceall", "--cores", "2", "--configfile", configfile)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("method=clip_bns_no_group" in result.stdout) == runs_control
    assert ("paper_table_bns_controls" in result.stdout) == runs_control


def test_invalid_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: " + str(ROOT / "workflow/config/smoke.yaml") + "\ntrain: {steps: 0}\n")
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert result.returncode != 0
    assert "steps" in result.stdout + result.stderr


PAPER_FILES = [
    *(f"tables/{name}.{ext}" for name in ("main", "components", "bns_controls", "schedules", "lambda_local", "beta", "ael",
                                          "reranked", "heldout", "encoders", "convergence") for ext in ("md", "csv", "tex")),
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
    from bacl.featureset import FeatureSet

    features = tmp_path / "results/features/image_text"
    shares = FeatureSet.load(features / "train.safetensors", features / "train_pools.safetensors").meta["sibling_shares"]
    assert shares.keys() == {"text_neighbours", "x_neighbours"}
    assert all(0 <= share["one_edit"] <= share["same_group"] <= 1 for share in shares.values())
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary file was left behind"
    again = snakemake("--cores", "2", "--configfile", str(config), "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake("--configfile", str(config), "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10_000


# ---- Paper scale: workflow/config/gpu.yaml and the real-data feature rule (workflow/rules/realdata.smk)


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the job stats table of a dry run."""
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def test_gpu_config_dry_run_with_slurm_profile_reads_real_data_and_pretrains_nothing():
    """The paper-scale DAG builds on a machine without the data or weights (they are checked when
    each job runs): features from the real-data rule, no synthetic data, no encoder pre-training."""
    result = snakemake("-n", "--forceall", "--quiet", "rules", "--profile", "workflow/profiles/slurm",
                       "--configfile", "workflow/config/gpu.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = job_counts(result.stdout + result.stderr)
    assert jobs["extract_real_features"] == 8  # 4 benchmarks x (train, test)
    for rule in ("candidate_index", "train", "evaluate", "paper_report"):
        assert jobs.get(rule), rule
    for rule in ("generate_data", "pretrain_encoder", "extract_features", "paper_attention_maps"):
        assert rule not in jobs, rule


def write_config(tmp_path, overrides: dict) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"base": str(ROOT / "workflow/config/gpu.yaml"), **overrides}))
    return config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"evaluate": {"splits": ["test", "test_heldout"]}}, "data.image_text.splits.test_heldout is missing"),
    ({"encoders": {"audio": {"pretrained": None}}}, "encoders.audio.pretrained is null"),
    ({"data": {"image_text": {"source": "video"}}}, "image_text"),
    ({"data": {"audio_video_text": {"source": "audio"}}}, "audio_video_text"),
])
def test_bad_real_data_config_stops_before_any_job_naming_the_key(tmp_path, overrides, message):
    result = snakemake("-n", "--cores", "1", "--configfile", str(write_config(tmp_path, overrides)))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr



def test_missing_real_data_path_is_an_error_naming_the_path_and_its_key(tmp_path):
    script = load("extract_real_features")
    shards = str(tmp_path / "nowhere" / "{00000..00001}.tar")
    data = {"source": "webdataset", "max_bad_fraction": 0.01}
    with pytest.raises(FileNotFoundError) as raised:
        script.real_feature_set("image_text", "train", data, {"shards": shards, "max_samples": None},
                                {"image": object()}, tmp_path / "cache", 4, 4)
    assert "data.image_text.splits.train" in str(raised.value)
    assert str(tmp_path / "nowhere" / "00000.tar") in str(raised.value)
    video = {"source": "video", "root": str(tmp_path / "videos"), "num_frames": 4, "max_bad_fraction": 0.01,
             "columns": {"key": "videoid", "captions": ["name"], "folder": "page_dir", "path": "path"}}
    (tmp_path / "videos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"data\.video_text\.splits\.test: .*train\.csv"):
        script.real_feature_set("video_text", "test", video, {"metadata": str(tmp_path / "train.csv")},
                                {"image": object()}, tmp_path / "cache", 4, 4)


def write_real_data(root: Path) -> dict:
    """Tiny local copies of the three layouts gpu.yaml reads: image-text webdataset shards (images of
    assorted sizes, one caption used three times), WebVid-style frame folders (one listed clip
    missing) and WavText5K-style 8 kHz WAVs (one blank description). Returns the config's data section."""
    rng = np.random.default_rng(0)

    def pixels(height, width):
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    def png(height, width):
        buffer = io.BytesIO()
        Image.fromarray(pixels(height, width)).save(buffer, format="PNG")
        return buffer.getvalue()

    def table(path, header, rows):
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        return str(path)

    data = {"image_text": {"splits": {}},
            "video_text": {"root": str(root / "videos"), "num_frames": 4, "max_bad_fraction": 0.5, "splits": {}},
            "audio_text": {"root": str(root / "audio"), "duration_s": 1.0, "splits": {}}}
    (root / "audio").mkdir(parents=True)
    for split, n in (("train", 12), ("test", 6)):
        (root / split).mkdir(parents=True)
        with wds.ShardWriter(str(root / split / "%05d.tar"), maxcount=6, mtime=0, verbose=0) as writer:
            for i in range(n):
                caption = "a red square" if i % 4 == 0 else f"{split} photo number {i}"
                writer.write({"__key__": f"{split}{i:03d}", "png": png(40 + 7 * i, 56), "txt": caption})
        data["image_text"]["splits"][split] = {"shards": str(root / split / f"{{00000..{n // 6 - 1:05d}}}.tar"),
                                               "max_samples": 5 if split == "test" else None}
        clips, sounds = [], []
        for i in range(n // 2):
            folder = root / "videos" / "page1" / f"{split}{i}"
            folder.mkdir(parents=True)
            for frame in range(3):  # fewer frames than num_frames: the reader repeats them
                Image.fromarray(pixels(30, 40)).save(folder / f"{frame + 1:06d}.png")
            clips.append((f"{split}{i}", f"{split} clip {i} moves left", "page1"))
            wave = 0.1 * np.sin(2 * np.pi * 220 * (i + 1) * np.arange(4000) / 8000)
            sf.write(root / "audio" / f"{split}{i}.wav", wave, 8000)
            sounds.append((f"{split}{i}.wav", "" if i == 0 else f"{split} tone {i}", f"{split} title {i}"))
        clips.append(("gone", "a listed clip whose video is missing", "page1"))
        data["video_text"]["splits"][split] = {
            "metadata": table(root / f"webvid_{split}.csv", ["videoid", "name", "page_dir"], clips),
            "max_samples": None}
        data["audio_text"]["splits"][split] = {
            "metadata": table(root / f"wavtext_{split}.csv", ["fname", "description", "title"], sounds),
            "max_samples": None}
    return data


@pytest.mark.slow
def test_real_data_features_train_and_evaluate_on_tiny_local_data(tmp_path):
    """gpu.yaml pointed at tiny local data and tiny open_clip weights: the real-data rule writes
    feature sets in the synthetic path's format, and candidate_index, train and evaluate run on
    them unchanged (retrieval only: real data has no boundary negatives)."""
    from safetensors.torch import save_file

    from bacl.encoders import load_encoder
    from bacl.featureset import FeatureSet

    weights = {}
    for family in ("image", "audio"):
        weights[family] = tmp_path / f"{family}.safetensors"
        save_file(load_encoder(f"bacl-tiny-{family}", None).model.state_dict(), str(weights[family]))
    results = tmp_path / "results"
    config = write_config(tmp_path, {
        "name": "gpu-tiny", "results_dir": str(results), "paper_dir": str(tmp_path / "paper"),
        "theory": {"results_dir": str(tmp_path / "theory"), "size": "smoke"}, "device": "cpu", "threads": 1,
        "seeds": [0], "encoders": {f: {"model": f"bacl-tiny-{f}", "pretrained": str(w)} for f, w in weights.items()},
        "features": {"batch_size": 4, "chunk_size": 5},  # 12 training pairs: three cache chunks
        "data": write_real_data(tmp_path / "data"), "index": {"kind": "exact", "pool_size": 4},
        "train": {"steps": 2, "batch_size": 4, "checkpoint_every": 1, "log_every": 1},
        "transformer": {"width": 16, "depth": 1, "heads": 2},
    })
    targets = [f"{results}/features/video_text/test.safetensors", f"{results}/features/audio_text/test.safetensors",
               f"{results}/eval/image_text/test/clip_bacl/seed0.json"]
    result = snakemake(*targets, "--cores", "2", "--configfile", str(config))  # --configfile takes several
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    train = FeatureSet.load(results / "features/image_text/train.safetensors")
    assert len(train) == 12 and train["x_tokens"].shape == (12, 64, 128) and train["x_tokens"].dtype == torch.half
    assert not [name for name in train.tensors if name.startswith("negative")]
    assert train["caption_id"][[0, 4, 8]].unique().numel() == 1 and train.meta["distinct_captions"] == 10
    assert train.meta["source"] == "webdataset" and train.meta["read"]["good"] == 12
    assert len(FeatureSet.load(results / "features/image_text/test.safetensors")) == 5  # max_samples
    video = FeatureSet.load(results / "features/video_text/test.safetensors")
    assert video["x_tokens"].shape == (3, 4, 128) and video.meta["read"]["bad_by_reason"] == {"video missing": 1}
    audio = FeatureSet.load(results / "features/audio_text/test.safetensors")
    assert len(audio) == 3 and audio.meta["encoders"].keys() == {"audio"} and audio.meta["distinct_captions"] == 3
    assert len(list((results / "cache").iterdir())) >= 2 * 3 + 2 * 1 + 2 * 1 + 2 * 1  # x and text per chunk

    evaluation = json.loads((results / "eval/image_text/test/clip_bacl/seed0.json").read_text())
    assert "retrieval" in evaluation and "retrieval_reranked" in evaluation
    assert not {"boundary", "multiple_choice", "ael"} & set(evaluation)
