# Shared settings and helpers of the pipeline: paths, which runs exist, and input functions.
import re
import sys

from bacl.data.synthetic import BENCHMARK_MODALITY
from bacl.data.synthetic.config import config_from_mapping

RESULTS = config["results_dir"]
PAPER = config["paper_dir"]
SEEDS = config["seeds"]
BENCHMARKS = config["benchmarks"]
EVAL_SPLITS = config["evaluate"]["splits"]
FEATURE_SPLITS = ["train", *EVAL_SPLITS]  # every benchmark has them (realdata.smk checks the real ones)
# The split training runs validate on (val R@1 curves, the plateau criterion; bacl.metrics.plateau):
# extracted too wherever a benchmark has it (val_split_features).
VAL_SPLIT = "val"
# THREADS_NOTE: every job uses one torch thread and Snakemake runs as many jobs as there are cores.
# A 2-thread OpenMP job beside any other busy process spin-waits at its barriers: measured 4x
# slower per step (CLIP pre-training, 0.94 s/step on 1 thread vs 3.8 s on 2 threads).
PYTHON = sys.executable  # the interpreter Snakemake runs under: the project venv via `make reproduce`

# Which frozen encoder family each benchmark's non-text side goes through.
ENCODER_FAMILIES = {
    "image_text": ["image"],
    "video_text": ["image"],
    "audio_text": ["audio"],
    "audio_video_text": ["image", "audio"],
}
# The benchmark whose pre-training split pre-trains each family's small encoder.
PRETRAIN_SOURCE = {"image": "image_text", "audio": "audio_text"}

wildcard_constraints:
    benchmark="|".join(ENCODER_FAMILIES),
    split="pretrain|train|val|test|test_heldout",
    family="image|audio",
    method="|".join(map(re.escape, config["methods"])),
    seed=r"\d+",


def methods_for(benchmark):
    """Methods that run on ``benchmark`` (a method's ``benchmarks`` list, else all)."""
    return [m for m, spec in config["methods"].items() if benchmark in spec.get("benchmarks", BENCHMARKS)]


def is_trained(method):
    return config["methods"][method]["aligner"] != "zero_shot"


def seeds_for(method):
    """Seeds of ``method``'s runs: the first ``num_seeds`` of the config's seeds (all when absent)."""
    return SEEDS[: config["methods"][method].get("num_seeds", len(SEEDS))]


def runs():
    """(benchmark, method, seed) of every configured run."""
    return [(b, m, s) for b in BENCHMARKS for m in methods_for(b) for s in seeds_for(m)]


def encoder_weights(family):
    """The family's frozen weights: a configured local file/tag, else the pipeline's pre-training."""
    pretrained = config["encoders"][family]["pretrained"]
    return pretrained if pretrained else f"{RESULTS}/encoders/{family}.safetensors"


def run_dir(benchmark, method, seed):
    return f"{RESULTS}/runs/{benchmark}/{method}/seed{seed}"


def eval_file(benchmark, split, method, seed):
    return f"{RESULTS}/eval/{benchmark}/{split}/{method}/seed{seed}.json"


def all_eval_files():
    return [eval_file(b, split, m, s) for b, m, s in runs() for split in EVAL_SPLITS]


def all_metric_logs():
    return [f"{run_dir(b, m, s)}/metrics.jsonl" for b, m, s in runs() if is_trained(m)]


def all_train_benchmarks():
    return [f"{RESULTS}/benchmarks/train/{b}/{m}/seed{s}.tsv" for b, m, s in runs() if is_trained(m)]


def has_val_split(benchmark):
    """Whether ``benchmark`` has a validation split: a synthetic one unless its n_val is 0 (the smoke
    config's), a real one when its config lists the split's paths."""
    data = config["data"].get(benchmark, {})
    if "source" in data:
        return VAL_SPLIT in data["splits"]
    return config_from_mapping(BENCHMARK_MODALITY[benchmark], data).split_size(VAL_SPLIT) > 0


def val_split_features(wildcards):
    """The run's validation features, or nothing where the benchmark has no val split (no curve)."""
    return f"{RESULTS}/features/{wildcards.benchmark}/{VAL_SPLIT}.safetensors" if has_val_split(wildcards.benchmark) else []


def pipeline_encoder_weights(wildcards):
    """Encoder weights the pipeline itself makes (none when the config names pretrained files)."""
    return [encoder_weights(f) for f in ENCODER_FAMILIES[wildcards.benchmark]
                     if not config["encoders"][f]["pretrained"]]


def trained_weights(wildcards):
    """The run's weights, or nothing for the zero-shot floor."""
    if not is_trained(wildcards.method):
        return []
    return f"{run_dir(wildcards.benchmark, wildcards.method, wildcards.seed)}/weights.safetensors"


def table_files(name):
    """A table's files in PAPER/tables: markdown, CSV, LaTeX and HTML."""
    return {ext: f"{PAPER}/tables/{name}.{ext}" for ext in ("md", "csv", "tex", "html")}


def table_outputs(name):
    """table_files with the HTML marked for Snakemake's report."""
    files = table_files(name)
    files["html"] = report(files["html"], category="Tables", labels={"table": name})
    return files


def figure_files(name):
    """A figure's files in PAPER/figures: PNG and PDF."""
    return {"png": f"{PAPER}/figures/{name}.png", "pdf": f"{PAPER}/figures/{name}.pdf"}


def figure_outputs(name):
    """figure_files with the PNG marked for Snakemake's report."""
    files = figure_files(name)
    files["png"] = report(files["png"], category="Figures", labels={"figure": name})
    return files
