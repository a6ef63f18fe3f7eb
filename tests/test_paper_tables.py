"""The paper stage's aggregation, tables and claims (workflow/scripts) on tiny hand-made inputs."""

import math
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paper_fixtures import (
    SCRIPTS,
    aggregate,
    claims,
    common,
    evaluation,
    load,
    paper,
    render,
    summary_of,
)


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
    outputs = types.SimpleNamespace(**{ext: tmp_path / "rule" / f"t.{ext}" for ext in ("md", "csv", "tex", "html")})
    table.write_outputs(outputs)  # a table rule's named outputs
    assert [outputs.md.read_text(), outputs.html.read_text()] == [paths[0].read_text(), paths[3].read_text()]
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


def test_encoder_quality_table_has_one_row_per_benchmark_and_every_negative_kind():
    table_encoder_quality = load("table_encoder_quality")
    image = evaluation(0.6, 0.8, accuracy=0.4, method="zero_shot")
    video = evaluation(0.1, 0.3, accuracy=0.2, method="zero_shot")
    video["boundary"]["per_type"] = {"order_swap": {"accuracy": 0.45}}
    records = [{"benchmark": b, "split": "test", "method": "zero_shot", "seed": 0, "result": r}
               for b, r in (("image_text", image), ("video_text", video))]
    records.append({"benchmark": "audio_text", "split": "test", "method": "clip", "seed": 0,
                    "result": evaluation(0.5, 0.5)})  # not the floor: no row
    summary = {"results": aggregate.summarise(records)}
    table = table_encoder_quality.encoder_quality_table(summary, "zero_shot", "test", "mean", "Frozen")
    assert table.columns[-2:] == ["binding_swap (pairs)", "order_swap (pairs)"]
    image_row, video_row = table.rows
    assert image_row[0] == "image_text" and image_row[1].mean == pytest.approx(70.0)
    assert image_row[3].mean == pytest.approx(40.0) and image_row[-1] is None and image_row[-2].mean == pytest.approx(40.0)
    assert video_row[-1].mean == pytest.approx(45.0) and video_row[-2] is None
    with pytest.raises(ValueError, match="no result"):
        table_encoder_quality.encoder_quality_table(summary, "zero_shot", "test_heldout", "mean", "Frozen")


# --- training summary ---------------------------------------------------------------------------
