"""The benchmark scripts (benchmarks/) run end to end at toy sizes and write well-formed results.

They measure nothing here: the sizes are far too small for their numbers to mean anything. What
is checked is that each script runs, writes the JSON its readers (plot.py, cost_report.py, the paper's
cost claim) expect, and that the Snakemake benchmark reader sums a known tree correctly.
"""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from paper_fixtures import claims

from bacl.config import load_config

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bank_scaling  # noqa: E402
import cache_effect  # noqa: E402
import common  # noqa: E402
import pipeline_stages  # noqa: E402
import plot  # noqa: E402
import cost_report  # noqa: E402
import step_cost  # noqa: E402

ENVIRONMENT_KEYS = {"torch", "threads", "platform", "cpu_count", "date", "git_commit", "niced", "device", "cpu_model",
                    "cpu_capability"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One toy run of each timed benchmark into a shared results folder."""
    out = tmp_path_factory.mktemp("benchmark-results")
    step_cost.main(["--batch-sizes", "8", "--aligners", "clip", "--repeats", "1", "--rows", "40", "--pool", "8",
                    "--profile-batch", "8", "--profile-aligners", "clip", "--profile-steps", "1", "--out", str(out)])
    bank_scaling.main(["--sizes", "200", "400", "--queries", "16", "--k", "4", "--repeats", "1",
                       "--kinds", "exact", "faiss-flat", "faiss-ivf", "--out", str(out)])
    cache_effect.main(["--samples", "40", "--batch-size", "8", "--repeats", "1", "--out", str(out)])
    return out


def _read(results: Path, name: str) -> dict:
    data = json.loads((results / "details" / f"{name}.json").read_text())
    assert ENVIRONMENT_KEYS <= set(data["environment"])
    return data


def test_step_cost_measures_every_variant_and_both_ratios(results):
    data = _read(results, "step_cost")
    assert data["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {m["variant"] for m in data["measurements"]} == set(step_cost.VARIANTS)
    for m in data["measurements"]:
        assert m["seconds_median"] > 0 and m["peak_bytes"] >= m["persistent_bytes"] > 0
        assert set(m["phases_median"]) == {"batch", "forward", "backward", "optimizer"}
    (ratios,) = data["ratios"]
    assert ratios["transformer_reference"] == "match" and ratios["time_vs_plain"]["ratio"] > 0
    assert ratios["memory_vs_same_transformer"] > 0
    assert ratios["profile_bacl"]["torch_ops"] and set(ratios["profile_bacl"]["parts_ms"]) == set(step_cost.COMPONENTS)
    # no batch of 256 was measured, so there is no overhead summary for the paper's cost claim
    assert not (results / "overhead_summary.json").exists()


def test_overhead_summary_is_what_the_cost_claim_reads():
    ratios = [{"aligner": "clip", "batch_size": 256, "time_vs_same_transformer": {"ratio": 1.1},
               "time_vs_plain": {"ratio": 20.0}, "memory_vs_same_transformer": 1.02,
               "memory_extra_bytes_vs_same_transformer": 3e6}]
    env = {"device": "cpu", "threads": 1, "niced": True}
    summary = step_cost.summary(ratios, env, quick=False)
    assert summary["time_overhead"] == pytest.approx(0.1) and summary["memory_overhead_gb"] == pytest.approx(0.003)
    found = {c["id"].split(".")[1]: c for c in claims.cost_claims({}, [("s.json", summary)], {}, 2.0)}
    assert found["time_overhead"]["verdict"] == "reproduced"  # +10 % <= 2 x the paper's +8 %
    assert found["memory_overhead_gb"]["verdict"] == "not testable here"  # GB only at the paper's scale
    assert step_cost.summary([{**ratios[0], "batch_size": 64}], env, quick=False) is None


def test_bank_scaling_reports_time_and_recall_per_index(results):
    data = _read(results, "bank_scaling")
    rows = data["measurements"]
    assert {(r["data"], r["bank_size"], r["kind"]) for r in rows} == {
        (d, n, k) for d in ("clustered", "isotropic") for n in (200, 400) for k in ("exact", "faiss-flat", "faiss-ivf")}
    for r in rows:
        assert r["query_batch_seconds"] > 0 and 0.0 <= r["recall_at_4"] <= 1.0
        if r["kind"] != "faiss-ivf":
            assert r["recall_at_4"] == pytest.approx(1.0, abs=0.02)  # exact searches agree (up to float ties)
    assert bank_scaling.index_options("faiss-ivf", 400) == {"nlist": 10, "nprobe": 10}


def test_cache_effect_times_both_epochs(results):
    data = _read(results, "cache_effect")
    assert set(data["epoch_seconds"]) == {"clip_from_cache", "clip_with_encoder", "clip_bacl_from_cache"}
    assert data["steps_per_epoch"] == 5 and data["encode_seconds_per_sample"] > 0
    assert data["clip_bacl_with_encoder_estimate_seconds"] > data["epoch_seconds"]["clip_bacl_from_cache"]


def test_figure_and_report_section_from_the_results(results):
    written = plot.main(["--results", str(results)])
    assert [p.name for p in written] == ["cost.png", "cost.pdf"] and all(p.stat().st_size > 0 for p in written)
    text = cost_report.main(["--results", str(results)]).read_text()
    for heading in ("### Step time and peak memory", "### BNS candidate search", "### Feature cache"):
        assert heading in text


def test_before_and_after_table_reads_both_runs():
    def run(commit: str, scale: float) -> dict:
        measurements = [{"aligner": "clip", "batch_size": 256, "variant": v, "seconds": [t * scale, 2 * t * scale],
                         "seconds_median": 1.5 * t * scale, "peak_bytes": int(1e6 * t)}
                        for v, t in (("base", 1.0), ("bns", 4.0), ("match", 10.0), ("bacl", 12.0))]
        return {"environment": {"git_commit": commit, "date": "2026-11-30T00:00:00"}, "measurements": measurements}

    before, middle = run("a" * 40, 1.0), run("c" * 40, 0.8)
    middle.update(transformer={"width": 64}, bacl={"cla_anchors": 32})
    after = run("b" * 40, 0.5)
    after["environment"].update(cpu_model="AMD EPYC", cpu_capability="AVX2")  # recorded since 2026-12
    text = "\n".join(cost_report.before_after_section(after=after, earlier=[before, middle]))
    assert "| aligner | ratio | aaaaaaaaaa | cccccccccc, width 64, 32 anchors | bbbbbbbbbb (AVX2) | target |" in text
    assert "| clip | time: +BNS / plain | " + " | ".join(["4.00x [4.00, 4.00]"] * 3) + " | <= 2.0x |" in text
    assert "| clip | memory: +BACL / same Transformer | 1.20x | 1.20x | 1.20x | <= 1.05x |" in text
    assert "| clip | bacl | 18000.0 | 14400.0 | 9000.0 | 11 | 11 | 11 |" in text  # median ms and peak MiB of each run
    assert "| m3jepa | time: +BACL / same Transformer | – | – | – | <= 1.3x |" in text  # not measured: a dash
    assert cost_report.before_after_section(run("b" * 40, 1.0), []) == []


def test_step_peak_counts_the_tensors_a_step_allocates_and_holds_at_once():
    """3 MiB: two tensors alive at once; a tensor allocated before the step and freed in it does not
    lower the count, and a profiled window before it does not raise it (the profiler's own counter
    did both)."""
    held = [torch.ones(2**18)]  # 1 MiB from before the step

    def step():
        held.clear()
        first, second = torch.ones(2**19), torch.ones(2**18)  # 2 MiB + 1 MiB
        del first, second
        torch.ones(2**18)

    kept = []
    common.step_peak_bytes(lambda: kept.append(torch.ones(2**20)))  # allocated in a profiled window, freed outside
    kept.clear()
    assert common.step_peak_bytes(step) == 3 * 2**20


def test_earlier_runs_are_the_baseline_then_the_kept_runs_by_date(tmp_path):
    def write(name: str, date: str) -> None:
        path = tmp_path / "details" / f"{name}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"environment": {"date": date}, "name": name}))

    write("step_cost_b", "2026-12-02")
    write("step_cost_a", "2026-12-03")
    write("step_cost", "2026-12-04")  # the current run: not an earlier one
    assert cost_report.earlier_runs(tmp_path) == []  # no baseline, no table
    write("step_cost_baseline", "2026-12-01")
    assert [run["name"] for run in cost_report.earlier_runs(tmp_path)] == ["step_cost_baseline", "step_cost_b",
                                                                           "step_cost_a"]


def _tsv(path: Path, seconds: list[float], max_rss: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["s\th:m:s\tmax_rss\tcpu_time"] + [f"{s}\t0:00:01\t{m}\t{s / 2}" for s, m in zip(seconds, max_rss)]
    path.write_text("\n".join(lines) + "\n")


def test_pipeline_stages_sums_a_fabricated_tree(tmp_path):
    run = tmp_path / "results" / "toy"
    _tsv(run / "benchmarks" / "data" / "image_text_train.tsv", [2.0], ["100"])
    _tsv(run / "benchmarks" / "data" / "image_text_test.tsv", [1.0], ["NA"])  # Snakemake writes NA when unknown
    _tsv(run / "benchmarks" / "train" / "image_text" / "clip" / "seed0.tsv", [10.0, 20.0], ["300", "500"])  # 2 repeats
    _tsv(run / "theory" / "benchmarks" / "01_rate.tsv", [4.0], ["50"])
    _tsv(tmp_path / "elsewhere" / "benchmarks" / "02_floor.tsv", [3.0], ["70"])
    stages = pipeline_stages.stage_table(run, {"theory": tmp_path / "elsewhere"})
    assert set(stages) == {"data", "train", "theory"}
    assert stages["data"]["jobs"] == 2 and stages["data"]["seconds"] == 3.0 and stages["data"]["max_rss_mb"] == 100
    assert stages["train"]["seconds"] == 15.0 and stages["train"]["max_rss_mb"] == 500  # mean over repeats, max RSS
    assert stages["train"]["cpu_seconds"] == 7.5
    assert stages["theory"]["jobs"] == 2 and stages["theory"]["seconds"] == 7.0
    result = pipeline_stages.main([str(run), "--extra", f"theory={tmp_path / 'elsewhere'}", "--out", str(tmp_path)])
    assert result["total_job_seconds"] == 25.0
    assert (tmp_path / "details" / "pipeline_stages_toy.json").is_file()


@pytest.mark.parametrize("absolute", [False, True])
def test_pipeline_stages_finds_the_theory_results_the_runs_config_names(tmp_path, absolute):
    """By default the theory notebooks' TSVs count too: the run's config copy names their folder,
    relative to the checkout that holds the run, or absolute (as the tests' configs write it)."""
    checkout = tmp_path / "checkout"
    run, theory = checkout / "results" / "toy", checkout / "theory" / "results"
    config = load_config(BENCHMARKS.parent / "workflow/config/smoke.yaml")
    config["results_dir"], config["theory"]["results_dir"] = ((str(run), str(theory)) if absolute
                                                              else ("results/toy", "theory/results"))
    _tsv(run / "benchmarks" / "data" / "image_text_train.tsv", [2.0], ["100"])
    _tsv(theory / "benchmarks" / "01_rate.tsv", [4.0], ["50"])
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = pipeline_stages.main([str(run), "--out", str(tmp_path)])
    assert result["stages"]["theory"]["seconds"] == 4.0 and result["total_job_seconds"] == 6.0


def test_pipeline_stages_gives_each_methods_train_and_evaluate_time(tmp_path):
    run = tmp_path / "toy"
    for benchmark, seconds in (("video_text", 30.0), ("image_text", 10.0)):
        for seed in (0, 1):
            _tsv(run / "benchmarks" / "train" / benchmark / "clip_bacl" / f"seed{seed}.tsv", [seconds], ["1"])
            _tsv(run / "benchmarks" / "evaluate" / benchmark / "clip_bacl" / f"seed{seed}.tsv", [seconds / 10], ["1"])
    _tsv(run / "benchmarks" / "train" / "image_text" / "clip" / "seed0.tsv", [2.0, 4.0], ["1", "1"])
    _tsv(run / "benchmarks" / "evaluate" / "image_text" / "a_zero_shot" / "seed0.tsv", [1.0], ["1"])  # no training
    # not a (benchmark, method, seed) job of the layout: counted by stage, never by method
    _tsv(run / "benchmarks" / "train" / "image_text" / "stray.tsv", [100.0], ["1"])
    _tsv(run / "benchmarks" / "train" / "image_text" / "clip" / "run.tsv", [100.0], ["1"])
    _tsv(run / "benchmarks" / "train" / "image_text" / "clip" / "nested" / "seed0.tsv", [100.0], ["1"])
    methods = pipeline_stages.method_table(run)
    assert methods == {  # _tsv writes cpu_time = s / 2
        "clip_bacl": {"benchmarks": ["image_text", "video_text"],
                      "train": {"jobs": 4, "seconds": 80.0, "cpu_seconds": 40.0},
                      "evaluate": {"jobs": 4, "seconds": 8.0, "cpu_seconds": 4.0}},
        "clip": {"benchmarks": ["image_text"], "train": {"jobs": 1, "seconds": 3.0, "cpu_seconds": 1.5},
                 "evaluate": {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0}},
        "a_zero_shot": {"benchmarks": ["image_text"], "train": {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0},
                        "evaluate": {"jobs": 1, "seconds": 1.0, "cpu_seconds": 0.5}}}
    result = pipeline_stages.main([str(run), "--extra", "--out", str(tmp_path)])
    assert result["methods"] == methods and result["total_job_seconds"] == 392.0  # the strays count in their stage
    lines = cost_report.method_lines(result["methods"], 92.0)
    assert [line for line in lines if line.startswith("| ") and not line.startswith("| method")] == [
        "| clip_bacl | 2 | 4 | 80 | 4 | 8 | 96 % |", "| clip | 1 | 1 | 3 | 0 | 0 | 3 % |",
        "| a_zero_shot | 1 | 0 | 0 | 1 | 1 | 1 % |"]
    assert cost_report.method_lines(None, 1.0) == []  # a summary written before the per-method table
    assert result["summarised_on"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_headline_floor_counts_the_tables_rows_and_the_upstream_stages_only(tmp_path):
    """The headline table's CPU time: its methods' train and evaluate jobs and the stages upstream of
    every run, not the other methods, not theory; cost.md turns it into minutes on the run's cores."""
    run = tmp_path / "checkout" / "results" / "toy"
    for stage, name, seconds in (("data", "image_text_train", 2.0), ("encoders", "image", 6.0),
                                 ("features", "image_text_train", 4.0), ("probe", "image_text", 8.0)):
        _tsv(run / "benchmarks" / stage / f"{name}.tsv", [seconds], ["1"])
    for method, seconds in (("clip", 100.0), ("clip_bacl", 300.0), ("zero_shot", 0.0), ("clip_bns", 1000.0)):
        for seed in (0, 1):
            if method != "zero_shot":
                _tsv(run / "benchmarks" / "train" / "image_text" / method / f"seed{seed}.tsv", [seconds], ["1"])
            _tsv(run / "benchmarks" / "evaluate" / "image_text" / method / f"seed{seed}.tsv", [10.0], ["1"])
    _tsv(run / "benchmarks" / "theory" / "01_rate.tsv", [50.0], ["1"])
    config = load_config(BENCHMARKS.parent / "workflow/config/smoke.yaml")
    config["results_dir"], config["theory"]["results_dir"] = "results/toy", "theory/results"
    config["tables"] = {"main": {"CLIP": "clip", "CLIP+BACL": "clip_bacl", "BLIP": "blip"},
                        "floor": {"Frozen": "zero_shot"}, "components": {"bns": "clip_bns"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    floor = pipeline_stages.main([str(run), "--out", str(tmp_path)])["headline_floor"]
    # cpu_time = s / 2: rows (100 + 300) x 2 seeds / 2 + 6 evaluate jobs x 5; upstream (2 + 6 + 4 + 8) / 2
    assert floor == {"methods": ["blip", "clip", "clip_bacl", "zero_shot"], "missing": ["blip"],
                     "upstream_stages": ["data", "encoders", "features", "probe"],
                     "rows_cpu_seconds": 430.0, "upstream_cpu_seconds": 10.0, "cpu_seconds": 440.0}
    line = cost_report.floor_lines({**floor, "cpu_seconds": 7200.0}, {"cpu_count": 2})[0]
    assert "(no job of blip in this run)" in line and "in less than 60 minutes" in line
    assert cost_report.floor_lines(None, {"cpu_count": 2}) == []


def test_provenance_names_the_cpu_where_recorded():
    env = {"torch": "2.14.1", "threads": 1, "cpu_count": 2, "device": "cpu", "niced": False, "niceness": 0,
           "load_average_1min": 0.5, "date": "2026-12-01", "git_commit": "a" * 40}
    assert "on 2 CPUs (cpu)," in cost_report._environment(env)  # runs before 2026-12 recorded no CPU
    assert "on 2 CPUs (AVX2; cpu)," in cost_report._environment({**env, "cpu_capability": "AVX2"})
    assert "on 2 CPUs (AMD EPYC; AVX2; cpu)," in cost_report._environment(
        {**env, "cpu_model": "AMD EPYC", "cpu_capability": "AVX2"})


def test_pipeline_stages_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="not under a benchmarks/"):
        pipeline_stages.stage_of(Path("results/x/data.tsv"))
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bad.tsv").write_text("seconds\n1\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark file"):
        pipeline_stages.read_tsv(tmp_path / "benchmarks" / "bad.tsv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Snakemake benchmark files"):
        pipeline_stages.main([str(tmp_path / "empty"), "--extra", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="does not exist"):
        pipeline_stages.main([str(tmp_path / "missing"), "--out", str(tmp_path)])
