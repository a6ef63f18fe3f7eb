"""The paper stage's scripts (workflow/scripts): their pure functions on tiny hand-made inputs.

The scripts import their shared modules (paper_common, paper_claims) by name, as Snakemake's
``script:`` directive puts the scripts folder on sys.path; the tests do the same.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
sys.path.insert(0, str(SCRIPTS))


def load(name: str):
    """Import workflow/scripts/<name>.py (no ``snakemake`` global, so its entry point stays idle),
    registered under its name so that the scripts importing it share this one module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


common, aggregate, training_summary = load("paper_common"), load("aggregate_results"), load("aggregate_training")
claims, render, paper = load("claims"), load("claims_render"), load("paper_claims")


def evaluation(r1_i2t: float, r1_t2i: float, accuracy: float = 0.5, method: str = "clip", ael: float | None = None,
               reranked: float | None = None) -> dict:
    """A hand-made evaluation JSON in bacl.evaluate's layout (only the keys the scripts read)."""
    result = {
        "method": method, "n": 10, "features": "f.safetensors", "weights": None,
        "retrieval": {"image_to_text": {"R@1": r1_i2t, "mAP": r1_i2t + 0.1},
                      "text_to_image": {"R@1": r1_t2i, "mAP": r1_t2i + 0.1}},
        "boundary": {"accuracy": accuracy, "n_samples": 10, "per_type": {"binding_swap": {"accuracy": accuracy}}},
        "multiple_choice": {"accuracy": accuracy, "f1": accuracy},
    }
    if ael is not None:
        result["ael"] = {"ael": ael, "n": 20, "chance": 0.1}
    if reranked is not None:
        result["retrieval_reranked"] = {"k": 4, "image_to_text": {"R@1": reranked}, "text_to_image": {"R@1": reranked}}
    return result


def summary_of(values: dict[tuple[str, str], list[float]], split: str = "test") -> dict:
    """A results summary from {(benchmark, method): per-seed R@1 (both directions) = accuracy = AEL}."""
    records = [{"benchmark": b, "split": split, "method": m, "seed": seed,
                "result": evaluation(v, v, accuracy=v, method=m, ael=v)}
               for (b, m), per_seed in values.items() for seed, v in enumerate(per_seed)]
    return {"config": "test", "seeds": [0, 1, 2], "results": aggregate.summarise(records)}


# --- aggregate_results ---------------------------------------------------------------------------

def test_flatten_metrics_adds_the_direction_mean_and_ignores_provenance():
    flat = aggregate.flatten_metrics(evaluation(0.2, 0.4, reranked=0.6))
    assert flat["retrieval.mean.R@1"] == pytest.approx(0.3)
    assert flat["retrieval.mean.mAP"] == pytest.approx(0.4)
    assert flat["retrieval_reranked.mean.R@1"] == pytest.approx(0.6)
    assert flat["boundary.per_type.binding_swap.accuracy"] == 0.5
    assert not any(key.startswith(("method", "features", "weights", "n")) for key in flat)
    with pytest.raises(ValueError, match="no metrics"):
        aggregate.flatten_metrics({"method": "clip"})


def test_summarise_gives_seed_mean_std_and_values_in_seed_order():
    records = [{"benchmark": "image_text", "split": "test", "method": "clip", "seed": seed,
                "result": evaluation(v, v)} for seed, v in ((2, 0.5), (0, 0.1), (1, 0.3))]
    stats = aggregate.summarise(records)["image_text"]["test"]["clip"]
    assert stats["seeds"] == [0, 1, 2]
    r1 = stats["metrics"]["retrieval.mean.R@1"]
    assert r1["values"] == pytest.approx([0.1, 0.3, 0.5])
    assert r1["mean"] == pytest.approx(0.3) and r1["std"] == pytest.approx(0.2) and r1["n"] == 3


def test_summarise_rejects_mismatched_method_duplicate_seed_and_differing_keys():
    base = {"benchmark": "image_text", "split": "test", "method": "clip", "seed": 0}
    with pytest.raises(ValueError, match="says it is of method 'blip'"):
        aggregate.summarise([{**base, "result": evaluation(0.1, 0.1, method="blip")}])
    with pytest.raises(ValueError, match="reported twice"):
        aggregate.summarise([{**base, "result": evaluation(0.1, 0.1)}, {**base, "result": evaluation(0.2, 0.2)}])
    with pytest.raises(ValueError, match="image_text/test/clip"):
        aggregate.summarise([{**base, "result": evaluation(0.1, 0.1)},
                             {**base, "seed": 1, "result": evaluation(0.1, 0.1, ael=0.3)}])
    with pytest.raises(ValueError, match="empty"):
        aggregate.summarise([])


# --- paper_common -------------------------------------------------------------------------------

@given(st.floats(-1, 1), st.floats(0, 1), st.integers(1, 10), st.floats(-3, 3))
def test_contrast_of_one_term_is_its_scaled_mean_and_standard_error(mean, std, n, weight):
    result = common.contrast([(weight, {"mean": mean, "std": std, "n": n})])
    assert result["estimate"] == pytest.approx(weight * mean)
    assert result["se"] == pytest.approx(abs(weight) * std / math.sqrt(n))


def test_contrast_adds_variances_and_merge_terms_joins_a_repeated_method():
    a, b = {"mean": 0.5, "std": 0.3, "n": 3}, {"mean": 0.2, "std": 0.4, "n": 4}
    result = common.contrast([(1, a), (-1, b)])
    assert result["estimate"] == pytest.approx(0.3)
    assert result["se"] == pytest.approx(math.sqrt(0.09 / 3 + 0.16 / 4))
    assert result["n"] == 3
    assert common.merge_terms([(1, "bns"), (-1, "base"), (1, "cla"), (-1, "base")]) == [(1, "bns"), (-2, "base"),
                                                                                       (1, "cla")]
    assert common.merge_terms([(1, "a"), (-1, "a")]) == []
    with pytest.raises(ValueError, match="n >= 1"):
        common.contrast([(1, {"mean": 0.1})])


def test_table_renders_markdown_csv_latex_and_html(tmp_path):
    table = common.Table("T_1 & more", ["Method", "R@1", "paper"],
                         [["CLIP", common.MeanStd(35.25, 1.5, 3), 35.2], ["M3-JEPA", None, None]], ["a note"])
    markdown = table.markdown()
    assert "| CLIP | 35.2 ± 1.5 | 35.2 |" in markdown and "| M3-JEPA | – | – |" in markdown and "a note" in markdown
    assert table.csv_rows() == [["Method", "R@1 mean", "R@1 std", "paper"], ["CLIP", 35.25, 1.5, 35.2],
                                ["M3-JEPA", "", "", ""]]
    latex = table.latex()
    assert r"T\_1 \& more" in latex and r"35.2 $\pm$ 1.5" in latex and "--" in latex
    assert "T_1 &amp; more" in table.html()
    paths = [tmp_path / f"t.{ext}" for ext in ("md", "csv", "tex", "html")]
    table.write(*paths)
    assert all(path.stat().st_size > 0 for path in paths)
    with pytest.raises(ValueError, match="rows \\[0\\]"):
        common.Table("bad", ["a", "b"], [["only one"]])
    with pytest.raises(ValueError, match="direction"):
        common.metric_path("retrieval.{direction}.R@1", "sideways")


def test_git_commit_is_a_hash_or_unknown(tmp_path):
    assert common.git_commit(tmp_path) == "unknown"
    commit = common.git_commit(SCRIPTS)
    assert commit == "unknown" or (len(commit) == 40 and all(c in "0123456789abcdef" for c in commit))


# --- claims -------------------------------------------------------------------------------------

@given(st.floats(-5, 5), st.floats(0, 2), st.floats(0, 3))
def test_ordering_verdict_is_reproduced_exactly_when_the_difference_exceeds_z_standard_errors(estimate, se, z):
    verdict, direction = claims.ordering_verdict(estimate, se, z)
    assert (verdict == "reproduced") == (estimate > z * se and estimate > 0)
    assert (direction == "opposite") == (estimate < -z * se and estimate < 0)


def test_ordering_verdict_rejects_a_negative_standard_error():
    with pytest.raises(ValueError, match="se >= 0"):
        claims.ordering_verdict(1.0, -0.1, 2.0)


def test_main_table_claims_order_paper_rows_and_test_each_plugin_pair():
    rows = {"CLIP": "clip", "GRAM": "gram", "M3-JEPA": "m3jepa", "CLIP+BACL": "clip_bacl"}
    summary = summary_of({("image_text", "clip"): [0.30, 0.31, 0.32], ("image_text", "clip_bacl"): [0.50, 0.51, 0.52],
                          ("image_text", "gram"): [0.40, 0.45, 0.35]})
    found = {c["id"]: c for c in claims.main_table_claims(summary, rows, "test", "mean", 2.0)}
    assert found["main.image_r1.GRAM>CLIP"]["verdict"] == "reproduced"  # 40 vs 31, SE ~2.9
    assert found["main.image_r1.CLIP+BACL>CLIP"]["estimate"] == pytest.approx(20.0)
    assert "+11.3" in found["main.image_r1.CLIP+BACL>CLIP"]["paper"]
    assert "main.image_r1.CLIP>CLIP+BACL" not in found  # the plug-in pair is tested once, as a gain
    assert found["main.video_r1.GRAM>CLIP"]["verdict"] == "not testable here"  # no video results
    assert not any(".M3-JEPA>" in key or ">M3-JEPA" in key for key in found)  # the paper has no M3-JEPA row
    assert found["main.image_r1.CLIP+BACL>GRAM"]["verdict"] == "reproduced"


def test_component_claims_test_each_part_and_the_sum_of_parts():
    roles = {"base": "clip", "bns": "clip_bns", "cla": "clip_cla", "full": "clip_bacl"}
    values = {("image_text", "clip"): [0.30] * 3, ("image_text", "clip_bns"): [0.35] * 3,
              ("image_text", "clip_cla"): [0.28] * 3, ("image_text", "clip_bacl"): [0.40] * 3}
    found = {c["id"]: c for c in claims.component_claims(summary_of(values), roles, "test", "mean", 2.0)}
    assert found["ablation.bns.image_text"]["verdict"] == "reproduced"
    assert found["ablation.cla.image_text"]["direction"] == "opposite"
    assert found["ablation.super_additive.image_text"]["estimate"] == pytest.approx(40 - 35 - 28 + 30)
    assert found["ablation.bns.video_text"]["verdict"] == "not testable here"
    single = claims.component_claims(summary_of({key: v[:1] for key, v in values.items()}), roles, "test", "mean", 2.0)
    assert single[0]["verdict"] == "not testable here" and "one seed" in single[0]["reason"]
    missing = claims.component_claims(summary_of(values), {"base": "clip"}, "test", "mean", 2.0)
    assert {c["verdict"] for c in missing} == {"not testable here"} and "lacks" in missing[0]["reason"]


def test_schedule_and_ael_claims():
    values = {("image_text", "d"): [0.5, 0.52, 0.51], ("image_text", "a"): [0.4, 0.41, 0.42],
              ("image_text", "s"): [0.45, 0.44, 0.46], ("image_text", "n"): [0.1, 0.12, 0.11]}
    summary = summary_of(values)
    found = {c["id"]: c for c in claims.schedule_claims(summary, {"Default": "d", "Aggressive": "a", "Shallow": "s"},
                                                        "test", "mean", 2.0)}
    assert found["schedule.Default>Aggressive.image_text"]["verdict"] == "reproduced"
    assert found["schedule.Aggressive>Shallow.image_text"]["direction"] == "opposite"
    ael = {c["id"]: c for c in claims.ael_claims(summary, {"with CLA": "d", "without CLA": "n"}, "test", 2.0)}
    assert ael["ael.gain.image_text"]["estimate"] == pytest.approx(40.0)
    assert ael["ael.above_chance.image_text"]["verdict"] == "reproduced"  # 51 % vs chance 10 %
    assert claims.ael_claims(summary, {"only": "d"}, "test", 2.0)[0]["verdict"] == "not testable here"


def test_cost_claims_need_a_cost_benchmark_and_memory_needs_the_paper_scale():
    training = {"cost": {"image_text": {"clip": {"seconds": {"mean": 10.0}}, "clip_bacl": {"seconds": {"mean": 15.0}}}}}
    roles = {"base": "clip", "full": "clip_bacl"}
    untestable = claims.cost_claims(training, [], roles, 2.0)
    assert [c["verdict"] for c in untestable] == ["not testable here"] * 2 and "+50%" in untestable[0]["measured"]
    report = {"time_overhead": 0.1, "memory_overhead_gb": 0.3, "scale": "cpu"}
    found = {c["id"]: c for c in claims.cost_claims(training, [("b.json", report)], roles, 2.0)}
    assert found["cost.time_overhead.b.json"]["verdict"] == "reproduced"  # 10 % <= 2 x 8 %
    assert found["cost.memory_overhead_gb.b.json"]["verdict"] == "not testable here"
    slow = claims.cost_claims(training, [("b.json", {"time_overhead": 0.5, "scale": "paper"})], roles, 2.0)
    assert slow[0]["verdict"] == "not reproduced" and slow[1]["verdict"] == "not testable here"


def test_theory_claims_read_the_notebooks_entries_and_flag_missing_ones():
    verdicts = {"theorem_4_1_fast_rate": {
        "claim": "fast rate", "setting": "logistic model", "estimate": {"name": "log-log slope", "value": -1.02},
        "confidence_interval": [-1.1, -0.95], "confidence_level": 0.95, "verdict": "supported",
        "details": {"uniform_rate_verdict": "inconclusive", "fits": {"nested": 1}}},
        "proposition_4_1_margin_contraction": {"setting": "midpoint window", "estimate": 0.1,
                                               "verdict": "inconclusive"}}
    found = {c["id"]: c for c in claims.theory_claims(verdicts)}
    rate = found["theory.theorem_4_1_fast_rate"]
    assert rate["verdict"] == "reproduced" and rate["paper"] == paper.PAPER_THEORY["theorem_4_1"]
    for text in ("logistic model", "log-log slope = -1.02", "95% CI [-1.1, -0.95]",
                 "uniform_rate_verdict = inconclusive"):
        assert text in rate["measured"]
    assert "nested" not in rate["measured"] and rate["estimate"] == -1.02
    assert found["theory.proposition_4_1_margin_contraction"]["verdict"] == "not reproduced"
    assert found["theory.theorem_4_2"]["verdict"] == "not testable here"
    assert "theory.theorem_4_1" not in found and "theory.proposition_4_1" not in found
    with pytest.raises(ValueError, match="theorem_4_2"):
        claims.theory_claims({"theorem_4_2": {"verdict": "maybe"}})


def test_claims_render_states_the_rules_and_counts():
    listed = claims.theory_claims({})
    rules = {"z": 2.0, "split": "test", "direction": "mean", "cost_tolerance": 2.0}
    markdown = render.claims_markdown(listed, rules)
    assert "2 SE" in markdown and "| not testable here | 3 |" in markdown and "## Theory" in markdown
    assert "<td>theory.theorem_4_1</td>" in render.claims_html(listed, rules)
    with pytest.raises(ValueError, match="'z'"):
        render.rules_text({})


def test_paper_constants_are_labelled_and_shaped_like_the_columns():
    assert set(paper.PAPER_DATASETS) == {column["key"] for column in common.MAIN_COLUMNS}
    assert all(set(row) == set(paper.PAPER_DATASETS) for row in paper.PAPER_TABLE.values())
    assert paper.PAPER_TABLE["CLIP+BACL"]["image_r1"] == 46.5 and "paper" in paper.PAPER_SOURCE


# --- tables -------------------------------------------------------------------------------------

def test_main_table_puts_the_papers_numbers_beside_ours():
    table_main = load("table_main")
    summary = summary_of({("image_text", "clip"): [0.30, 0.32], ("audio_video_text", "gram"): [0.7, 0.8]})
    table = table_main.main_table(summary, {"CLIP": "clip", "GRAM": "gram", "M3-JEPA": "m3jepa"}, "test", "mean",
                                  True, "Main")
    assert table.columns[1:3] == ["Image R@1 (ours, image_text)", "Image R@1 (paper, LAION-400M)"]
    clip, gram, m3jepa = table.rows
    assert clip[1] == pytest.approx(common.MeanStd(31.0, math.sqrt(2), 2)) and clip[2] == 35.2
    assert gram[-2].mean == pytest.approx(75.0) and gram[-1] == 77.3
    assert m3jepa[1:] == [None] * 10  # neither run here nor in the paper's table
    assert "2 seeds" in table.notes[0] and "paper" in table.notes[-1]
    plain = table_main.main_table(summary, {"CLIP": "clip"}, "test", "mean", False, "Held out")
    assert len(plain.columns) == 6
    with pytest.raises(ValueError, match="tables.main"):
        table_main.main_table(summary, {}, "test", "mean", True, "Main")


def test_ablation_table_with_deltas_and_the_sum_of_the_parts():
    table_ablation = load("table_ablation")
    roles = {"base": "clip", "bns": "clip_bns", "cla": "clip_cla", "full": "clip_bacl"}
    summary = summary_of({("image_text", "clip"): [0.30] * 2, ("image_text", "clip_bns"): [0.35] * 2,
                          ("image_text", "clip_cla"): [0.32] * 2, ("image_text", "clip_bacl"): [0.45] * 2})
    r1 = [{"label": "R@1", "metric": "retrieval.{direction}.R@1"}]
    table = table_ablation.ablation_table(summary, roles, "test", r1, "mean", "Components", "base", True)
    assert table.columns == ["Method", "image_text R@1", "image_text Δ R@1 vs Base aligner (no BACL)"]
    by_name = {row[0]: row for row in table.rows}
    assert by_name["Base aligner (no BACL)"][2] == "(reference)"
    assert by_name["BNS only"][2].mean == pytest.approx(5.0)
    assert by_name["Sum of the parts: Δ BNS + Δ CLA"][2].mean == pytest.approx(7.0)
    assert by_name["Full − sum of the parts (> 0: more than the sum)"][2].mean == pytest.approx(8.0)
    partial = summary_of({("image_text", "a"): [0.1], ("video_text", "a"): [0.1], ("video_text", "b"): [0.2]})
    assert table_ablation.group_benchmarks(partial, "test", ["a", "b"]) == ["video_text"]
    with pytest.raises(ValueError, match="no benchmark"):
        table_ablation.group_benchmarks(summary, "test", ["clip", "elsewhere"])
    sweep = table_ablation.ablation_table(summary, {"0.0": "clip", "0.3": "clip_bacl"}, "test",
                                          r1 + [{"label": "acc", "metric": "boundary.accuracy", "delta": False}],
                                          "mean", "Sweep", "0.0", row_format="λ = {}")
    assert [row[0] for row in sweep.rows] == ["λ = 0.0", "λ = 0.3"] and len(sweep.columns) == 4
    assert sweep.rows[1][2].mean == pytest.approx(15.0)
    with pytest.raises(ValueError, match="reference='nope'"):
        table_ablation.ablation_table(summary, roles, "test", r1, "mean", "x", "nope")
    with pytest.raises(ValueError, match="roles base, bns, cla, full"):
        table_ablation.ablation_table(summary, {"base": "clip"}, "test", r1, "mean", "x", "base", True)


def test_reranked_table_keeps_only_methods_with_a_match_head():
    table_reranked = load("table_reranked")
    records = [{"benchmark": "image_text", "split": "test", "method": m, "seed": 0,
                "result": evaluation(0.3, 0.3, method=m, reranked=r)} for m, r in (("clip", None), ("blip", 0.6))]
    summary = {"results": aggregate.summarise(records)}
    table = table_reranked.reranked_table(summary, {"CLIP": "clip", "BLIP": "blip"}, "test", "mean", "Re-ranked")
    assert [row[0] for row in table.rows] == ["BLIP"] and table.rows[0][2].mean == pytest.approx(60.0)
    assert "top 4" in table.notes[1]
    with pytest.raises(ValueError, match="match head"):
        table_reranked.reranked_table(summary, {"CLIP": "clip"}, "test", "mean", "Re-ranked")


def test_encoders_table_shows_scalars_of_every_report():
    table_encoders = load("table_encoders")
    reports = {"image": {"model": "tiny", "loss_final": 1.5, "losses": [3.0, 1.5], "frozen": {"R@1": 0.4}},
               "audio": {"model": "tiny-audio", "loss_final": 2.0, "seconds": 5.0}}
    table = table_encoders.encoders_table(reports, "Encoders")
    assert table.columns == ["Encoder family", "model", "loss_final", "frozen.R@1", "seconds"]
    assert table.rows[1] == ["audio", "tiny-audio", 2.0, None, 5.0]
    with pytest.raises(ValueError, match="JSON object"):
        table_encoders.scalar_fields([1, 2])


# --- training summary ---------------------------------------------------------------------------

def test_metrics_logs_become_seed_curves_and_benchmarks_become_costs():
    seed0 = training_summary.parse_metrics_log('{"step": 2, "progress": 1.0, "loss": 1.0}\n\n'
                                               '{"step": 1, "progress": 0.5, "loss": 3.0, "alpha": 0.3}\n')
    seed1 = training_summary.parse_metrics_log('{"step": 1, "progress": 0.5, "loss": 5.0}\n')
    curves = training_summary.seed_curves([seed0, seed1])
    assert curves["steps"] == [1, 2] and curves["progress"] == [0.5, 1.0]
    assert curves["series"]["loss"]["mean"] == [4.0, 1.0] and curves["series"]["loss"]["n"] == [2, 1]
    assert curves["series"]["loss"]["std"][0] == pytest.approx(math.sqrt(2))
    assert curves["series"]["alpha"]["mean"] == [0.3, None]
    with pytest.raises(ValueError, match="line 1"):
        training_summary.parse_metrics_log('{"loss": 1}')
    tsv = "s\th:m:s\tmax_rss\n10.0\t0:00:10\tNA\n20.0\t0:00:20\tNA\n"
    assert training_summary.parse_benchmark_tsv(tsv) == {"seconds": 15.0}
    cost = training_summary.cost_statistics([{"seconds": 10.0, "max_rss_mb": 100.0}, {"seconds": 20.0}])
    assert cost["seconds"]["mean"] == 15.0 and cost["max_rss_mb"]["n"] == 1
    with pytest.raises(ValueError, match="no data line"):
        training_summary.parse_benchmark_tsv("s\tmax_rss\n")


# --- figures ------------------------------------------------------------------------------------

def bns_training() -> dict:
    """A training summary with one BNS run that logged drawn boundary scores and alpha."""
    series = {key: {"mean": values, "std": [0.0, 0.0], "n": [1, 1]} for key, values in {
        "loss": [2.0, 1.0], "alpha": [0.3, -0.5], "drawn_bs_q10": [-0.5, -0.2], "drawn_bs_q50": [-0.3, 0.0],
        "drawn_bs_q90": [-0.1, 0.1], "drawn_bs_mean": [-0.3, 0.0]}.items()}
    return {"curves": {"image_text": {"clip_bacl": {"steps": [5, 10], "progress": [0.5, 1.0], "series": series}}}}


def test_schedule_figure_curves_hit_the_presets_endpoints(tmp_path):
    fig_schedule = load("fig_schedule")
    curves = fig_schedule.preset_curves({"Default": (0.3, -0.5, 1.5)}, points=11)
    assert curves["Default"]["alpha"][0] == pytest.approx(0.3) and curves["Default"]["alpha"][-1] == pytest.approx(-0.5)
    assert 0 < curves["Default"]["crossover"] < 1
    logged = fig_schedule.logged_alpha(bns_training(), "image_text", {"Default": "clip_bacl", "CLIP": "clip"})
    assert logged == {"Default": {"progress": [0.5, 1.0], "alpha": [0.3, -0.5]}}
    fig_schedule.plot(curves, logged, tmp_path / "a.png", tmp_path / "a.pdf")
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "a.pdf").stat().st_size > 0
    with pytest.raises(ValueError, match="points"):
        fig_schedule.preset_curves({"Default": (0.3, -0.5, 1.5)}, points=1)


def test_boundary_score_and_training_curves_and_schedule_bars():
    fig_boundary_scores, fig_training_curves = load("fig_boundary_scores"), load("fig_training_curves")
    drawn = fig_boundary_scores.drawn_score_curves(bns_training(), "image_text", {"Default": "clip_bacl"})
    assert drawn["Default"]["drawn_bs_q50"] == [-0.3, 0.0] and drawn["Default"]["alpha"] == [0.3, -0.5]
    with pytest.raises(ValueError, match="drawn boundary scores"):
        fig_boundary_scores.drawn_score_curves(bns_training(), "video_text", {"Default": "clip_bacl"})
    losses = fig_training_curves.loss_curves(bns_training(), {"CLIP+BACL": "clip_bacl"}, "loss")
    assert losses == {"image_text": {"CLIP+BACL": {"steps": [5, 10], "mean": [2.0, 1.0], "std": [0.0, 0.0]}}}
    bars = load("fig_schedule_r1").schedule_bars(summary_of({("image_text", "d"): [0.5, 0.6]}), {"Default": "d"},
                                                 "test", "retrieval.mean.R@1")
    assert bars["image_text"][0]["mean"] == pytest.approx(55.0) and bars["image_text"][0]["values"] == [50.0, 60.0]


# --- attention maps -----------------------------------------------------------------------------

def dataset_negatives(n: int, slots: int) -> list[list[dict]]:
    types = ["attribute_swap", "binding_swap", "relation_flip"]
    return [[{"caption": f"neg {i} {j}", "type": types[(i + j) % 3], "wrong_words": [] if i == 0 else [1]}
             for j in range(slots)] for i in range(n)]


def test_pick_examples_takes_the_first_negative_of_each_type_with_a_wrong_word():
    attention_maps = load("attention_maps")
    # sample 0 has no wrong word; then one new type per sample: 1 -> slot 0, 2 -> slot 0 (type of 2 + 0)...
    assert attention_maps.pick_examples(dataset_negatives(5, 3)) == [(1, 0), (2, 0), (3, 0)]
    assert attention_maps.pick_examples(dataset_negatives(5, 3), max_examples=2) == [(1, 0), (2, 0)]
    with pytest.raises(ValueError, match="nothing to show"):
        attention_maps.pick_examples(dataset_negatives(1, 3))
    with pytest.raises(ValueError, match="max_examples"):
        attention_maps.pick_examples(dataset_negatives(4, 3), max_examples=0)
    assert attention_maps.token_strings(torch.tensor([49406, 7, 49407, 0, 0]), str) == ["49406", "7", "49407"]


def test_attention_examples_of_a_cla_aligner_match_its_most_divergent_token(tmp_path):
    from fixtures import latent_features

    from bacl.aligners import build_aligner
    from bacl.attention import most_divergent_token

    attention_maps, fig_attention = load("attention_maps"), load("fig_attention")
    features = latent_features(12, negatives=3)
    torch.manual_seed(0)
    aligner = build_aligner({"aligner": "clip", "bns": True, "cla": True}, features.dims,
                            transformer={"width": 16, "depth": 1, "heads": 2})
    lengths = features["text_token_mask"].sum(1).tolist()
    captions = [" ".join(f"w{k}" for k in range(length)) for length in lengths]
    negatives = [[{"caption": captions[i], "type": t, "wrong_words": [1]} for t in ("a", "b", "c")]
                 for i in range(12)]
    images = torch.zeros(12, 4, 4, 3, dtype=torch.uint8).numpy()
    maps = attention_maps.attention_examples(aligner, features, captions, negatives, [(0, 1), (4, 2)], str.split,
                                             images)
    first = maps[0]
    rows = int(features["text_token_mask"][0].sum())
    assert len(first["attention_positive"]) == rows and len(first["attention_positive"][0]) == 6
    assert first["wrong_tokens"] == torch.nonzero(features["negative_wrong_tokens"][0, 1]).flatten().tolist()
    a_pos = aligner.local_attention(features["x_tokens"][[0]].float(), features["x_token_mask"][[0]],
                                    features["text_tokens"][[0]].float(), features["text_token_mask"][[0]])
    a_neg = aligner.local_attention(features["x_tokens"][[0]].float(), features["x_token_mask"][[0]],
                                    features["negative_text_tokens"][0, [1]].float(),
                                    features["negative_text_token_mask"][0, [1]])
    assert first["most_divergent_token"] == int(most_divergent_token(a_pos, a_neg, features["text_token_mask"][[0]]))
    assert first["hit"] == (first["most_divergent_token"] in first["wrong_tokens"])
    assert max(range(rows), key=lambda i: first["token_divergence"][i]) == first["most_divergent_token"]
    panels = fig_attention.example_panels(first)
    assert panels["positive"].shape == (rows, 6) and panels["image"].shape == (4, 4, 3)
    fig_attention.plot({"method": "clip_bacl", "seed": 0, "benchmark": "image_text", "examples": maps},
                       tmp_path / "m.png", tmp_path / "m.pdf")
    assert (tmp_path / "m.png").stat().st_size > 0
    with pytest.raises(ValueError, match="not the text tower's tokenizer"):
        attention_maps.attention_examples(aligner, features, captions, negatives, [(0, 1)], lambda c: ["x"])
    with pytest.raises(ValueError, match="one entry per sample"):
        attention_maps.attention_examples(aligner, features, captions[:3], negatives, [(0, 1)], str.split)
    with pytest.raises(ValueError, match="no cross-modal Transformer"):
        attention_maps.attention_examples(build_aligner({"aligner": "clip"}, features.dims), features, captions,
                                          negatives, [(0, 1)], str.split)
    with pytest.raises(ValueError, match="shape"):
        fig_attention.example_panels({**first, "token_divergence": [0.0]})


# --- report -------------------------------------------------------------------------------------

def test_job_times_by_stage_and_the_report_links_everything(tmp_path):
    report = load("report")
    root = tmp_path / "benchmarks"
    texts = {str(root / "train" / "image_text" / "a.tsv"): "s\tmax_rss\n30.0\t1\n",
             str(root / "train" / "image_text" / "b.tsv"): "s\tmax_rss\n90.0\t1\n",
             str(root / "data" / "x.tsv"): "s\tmax_rss\n60.0\t1\n", str(root / "odd.tsv"): "s\n-\n"}
    times = report.job_times(texts, str(root))
    assert times["jobs"] == 3 and times["sum_s"] == 180.0 and times["max_s"] == 90.0
    assert times["by_stage"]["train"] == {"jobs": 2, "sum_s": 120.0, "max_s": 90.0}
    text = report.report_markdown(
        "cpu-default", "abc123", "snakemake --cores all", times, {"reproduced": 2, "not reproduced": 1},
        "### Main\n\n| a |\n", [{"title": "Main table", "files": {"md": "tables/main.md", "csv": "tables/main.csv"}}],
        [{"title": "Schedules", "png": "figures/s.png", "pdf": "figures/s.pdf"}], [("Claims", "claims.md")])
    for needed in ("`snakemake --cores all`", "`abc123`", "3 jobs, 3.0 min", "**2** reproduced", "#### Main",
                   "[md](tables/main.md)", "![Schedules](figures/s.png)", "[PDF](figures/s.pdf)",
                   "[Claims](claims.md)"):
        assert needed in text
    assert "not available" in report.report_markdown("c", "unknown", "cmd", None, {}, "", [], [], [])
