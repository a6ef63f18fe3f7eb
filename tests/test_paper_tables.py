"""The paper stage's aggregation, shared table pieces and tables (workflow/scripts) on tiny hand-made
inputs; the claims are in test_paper_claims.py, the head and sibling tables in test_paper_heads.py."""

import math
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paper_fixtures import SCRIPTS, aggregate, common, evaluation, load, summary_of


def test_flatten_metrics_adds_the_direction_mean_and_ignores_provenance():
    flat = aggregate.flatten_metrics(evaluation(0.2, 0.4, reranked=0.6))
    assert flat["retrieval.mean.R@1"] == pytest.approx(0.3)
    assert flat["retrieval.mean.mAP"] == pytest.approx(0.4)
    assert flat["retrieval_reranked.mean.R@1"] == pytest.approx(0.6)
    assert flat["boundary.per_type.binding_swap.accuracy"] == 0.5
    assert not any(key.startswith(("method", "features", "weights", "n")) for key in flat)
    heads = aggregate.flatten_metrics(evaluation(0.2, 0.4, head=0.7, untrained=0.1, ael=0.6))
    assert heads["retrieval_reranked_combined.mean.R@1"] == pytest.approx(0.7)
    assert heads["untrained.retrieval_reranked_combined.mean.R@1"] == pytest.approx(0.1)  # direction means nested too
    assert heads["untrained.boundary_match_head.pairwise_accuracy"] == pytest.approx(0.1)
    assert heads["boundary_match_head.chance.accuracy_exchangeable"] == 0.2 and heads["attention.max_entropy"] == 4.0
    assert heads["ael.frozen_reference"] == 0.3 and heads["untrained.ael.ael"] == 0.2
    assert not any("score" in key for key in heads)  # the combined score's formula is a string
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
    assert result["estimate"] == pytest.approx(0.3) and not result["paired"]
    assert result["se"] == pytest.approx(math.sqrt(0.09 / 3 + 0.16 / 4))
    assert result["n"] == 3
    assert common.merge_terms([(1, "bns"), (-1, "base"), (1, "cla"), (-1, "base")]) == [(1, "bns"), (-2, "base"),
                                                                                       (1, "cla")]
    assert common.merge_terms([(1, "a"), (-1, "a")]) == []
    with pytest.raises(ValueError, match="n >= 1"):
        common.contrast([(1, {"mean": 0.1})])


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(-0.2, 0.2)), min_size=2, max_size=8))
def test_contrast_of_runs_on_shared_seeds_is_the_standard_error_of_the_per_seed_differences(pairs):
    a_values, shifts = [a for a, _ in pairs], [d for _, d in pairs]
    b_values = [a + d for a, d in pairs]

    def stats(values, seeds):
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return {"mean": mean, "std": std, "n": len(values), "values": values, "seeds": seeds}

    seeds = list(range(len(pairs)))
    paired = common.contrast([(1, stats(b_values, seeds)), (-1, stats(a_values, seeds))])
    assert paired["paired"] and paired["estimate"] == pytest.approx(sum(shifts) / len(shifts), abs=1e-9)
    assert paired["se"] == pytest.approx(stats(shifts, seeds)["std"] / math.sqrt(len(shifts)), abs=1e-9)
    other = common.contrast([(1, stats(b_values, seeds)), (-1, stats(a_values, [s + 100 for s in seeds]))])
    assert not other["paired"]  # different seeds: independent
    # More seeds on one side (5 against 3): paired on the shared seeds only.
    extra = common.contrast([(1, stats(b_values + [5.0, 7.0], seeds + [50, 51])), (-1, stats(a_values, seeds))])
    assert extra["paired"] and extra["n"] == len(seeds)
    assert extra["estimate"] == pytest.approx(paired["estimate"], abs=1e-9) and extra["se"] == pytest.approx(paired["se"])


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
    marked = common.Table("M", ["Type", "acc"], [[common.Marked("relation | flip", " †"), common.Marked(
        common.MeanStd(50.0, 1.0, 2), " †")], ["binding", common.MeanStd(80.0, 2.0, 2)]])
    assert "| relation \\| flip † | 50.0 ± 1.0 † |" in marked.markdown()  # a "|" in a cell is escaped
    assert marked.csv_rows() == [["Type", "Type mark", "acc mean", "acc std", "acc mark"],
                                 ["relation | flip", "†", 50.0, 1.0, "†"], ["binding", "", 80.0, 2.0, ""]]
    assert r"\textdagger{}" in marked.latex()


def test_git_commit_is_a_hash_or_unknown(tmp_path):
    assert common.git_commit(tmp_path) == "unknown"
    commit = common.git_commit(SCRIPTS)
    assert commit == "unknown" or (len(commit) == 40 and all(c in "0123456789abcdef" for c in commit))


# --- tables -------------------------------------------------------------------------------------

def test_main_table_puts_the_papers_numbers_beside_ours_and_the_reranked_r1_beside_each_r1():
    table_main = load("table_main")
    summary = summary_of({("image_text", "clip"): [0.30, 0.32], ("audio_video_text", "gram"): [0.7, 0.8],
                          ("image_text", "bacl_c"): [0.4, 0.4]},
                         heads={("image_text", "bacl_c"): ([0.5, 0.6], [0.1, 0.1])})
    rows = {"CLIP": "clip", "GRAM": "gram", "M3-JEPA": "m3jepa", "CLIP+BACL (corrected)": "bacl_c"}
    table = table_main.main_table(summary, rows, "test", "mean", True, "Main", beyond_paper=["CLIP+BACL (corrected)"])
    assert table.columns[1:4] == ["Image R@1 (ours, image_text)", "Image R@1 re-ranked (ours, image_text)",
                                  "Image R@1 (paper, LAION-400M)"]
    clip, gram, m3jepa, corrected = table.rows
    assert clip[1] == pytest.approx(common.MeanStd(31.0, math.sqrt(2), 2)) and clip[2] is None and clip[3] == 35.2
    assert corrected[2].mean == pytest.approx(55.0)  # re-ranked through its match head
    assert gram[-2].mean == pytest.approx(75.0) and gram[-1] == 77.3
    assert m3jepa[1:] == [None] * 13  # neither run here nor in the paper's table
    assert corrected[0] == common.Marked("CLIP+BACL (corrected)", " ‡") and "beyond the paper" in table.notes[-1]
    assert "2 seeds" in table.notes[0] and "synthetic" in table.notes[0] and "boundary negatives" in table.notes[1]
    plain = table_main.main_table(summary, {"CLIP": "clip"}, "test", "mean", False, "Held out",
                                  real=["image_text", "audio_video_text"])
    assert len(plain.columns) == 9 and "‡" not in " ".join(plain.notes)
    flagged = table_main.main_table(summary, {"GRAM": "gram"}, "test", "mean", False, "Main",
                                    flags={"audio_video_text": ["direction_flip"], "video_text": ["order_swap"]})
    assert any("audio_video_text: direction_flip" in note and "order_swap" not in note and "Audio-video Acc" in note
               for note in flagged.notes)
    assert "real data" in plain.notes[0] and "stands in" not in plain.notes[0]
    assert "captions of other clips" in plain.notes[1]
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
    assert len(table.rows) == 6  # no reference rows: no metric names one
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


def test_ablation_table_puts_the_untrained_no_transformer_and_chance_references_under_their_metric():
    table_ablation = load("table_ablation")
    group = {"discriminative": "disc", "literal": "lit", "none (λ = 0)": "none"}
    summary = summary_of({("image_text", m): [0.3, 0.3] for m in group.values()},
                         heads={("image_text", "disc"): ([0.8, 0.7], [0.2, 0.2]),
                                ("image_text", "lit"): ([0.3, 0.3], [0.2, 0.2])})  # "none" has no Transformer here
    metrics = [{"label": "AEL", "metric": "ael.ael", "untrained": "untrained.ael.ael",
                "no_transformer": "ael.frozen_reference", "chance": "ael.chance"},
               {"label": "entropy (nats)", "metric": "attention.entropy", "percent": False,
                "untrained": "untrained.attention.entropy", "chance": "attention.max_entropy"},
               {"label": "pairwise acc (head)", "metric": "boundary_match_head.pairwise_accuracy", "types": True,
                "untrained": "untrained.boundary_match_head.pairwise_accuracy",
                "chance": "boundary_match_head.chance.pairwise"}]
    table = table_ablation.ablation_table(summary, group, "test", metrics, "mean", "CLA form", "none (λ = 0)",
                                          flags={"image_text": ["relation_flip"]})
    by_name = {row[0]: row for row in table.rows}
    untrained = by_name[table_ablation.REFERENCE_ROWS[0][1]]
    no_transformer, chance = (by_name[name] for _, name in table_ablation.REFERENCE_ROWS[1:])
    ael, delta, entropy = 1, 2, 3  # columns: AEL, Δ AEL, entropy, Δ entropy, head acc, Δ head acc
    assert by_name["discriminative"][ael].mean == pytest.approx(75.0) and by_name["discriminative"][delta].mean == \
        pytest.approx(75.0 - 30.0)  # "none" has AEL = its R@1 (30 %)
    assert untrained[ael].mean == pytest.approx(20.0) and untrained[delta] is None
    assert no_transformer[ael].mean == pytest.approx(30.0) and no_transformer[entropy] is None
    assert chance[ael] == pytest.approx(10.0) and chance[entropy] == pytest.approx(4.0)  # uniform attention
    assert by_name["discriminative"][entropy].mean == pytest.approx(3.0)  # 4 x 0.75 nats, not scaled to percent
    assert chance[5] == pytest.approx(50.0) and table.digits == 2
    assert any("relation_flip" in note and "'pairwise acc (head)'" in note for note in table.notes)
    assert any("paired" in note for note in table.notes)


def test_encoders_table_shows_scalars_of_every_report():
    table_encoders = load("table_encoders")
    reports = {"image": {"model": "tiny", "loss_final": 1.5, "losses": [3.0, 1.5], "frozen": {"R@1": 0.4}},
               "audio": {"model": "tiny-audio", "loss_final": 2.0, "seconds": 5.0}}
    table = table_encoders.encoders_table(reports, "Encoders")
    assert table.columns == ["Encoder family", "model", "loss_final", "frozen.R@1", "seconds"]
    assert table.rows[1] == ["audio", "tiny-audio", 2.0, None, 5.0]
    with pytest.raises(ValueError, match="JSON object"):
        table_encoders.scalar_fields([1, 2])


def test_encoder_quality_table_has_one_row_per_benchmark_and_every_negative_kind_flagged_at_chance():
    table_encoder_quality = load("table_encoder_quality")
    image = evaluation(0.6, 0.8, accuracy=0.4, method="zero_shot")
    video = evaluation(0.1, 0.3, accuracy=0.2, method="zero_shot")
    video["boundary"]["per_type"] = {"order_swap": {"accuracy": 0.45, "n_pairs": 30},
                                     "binding_swap": {"accuracy": 0.85, "n_pairs": 10}}
    records = [{"benchmark": b, "split": "test", "method": "zero_shot", "seed": 0, "result": r}
               for b, r in (("image_text", image), ("video_text", video))]
    records.append({"benchmark": "audio_text", "split": "test", "method": "clip", "seed": 0,
                    "result": evaluation(0.5, 0.5)})  # not the floor: no row
    summary = {"results": aggregate.summarise(records)}
    table = table_encoder_quality.encoder_quality_table(summary, "zero_shot", "test", "mean", "Frozen",
                                                        {"video_text": ["order_swap"], "image_text": []})
    assert table.columns[-3:] == ["boundary acc (pairs, no †)", "binding_swap (pairs)", "order_swap (pairs)"]
    assert table.columns[4] == "chance (all negatives)"
    image_row, video_row = table.rows
    assert image_row[0] == "image_text" and image_row[1].mean == pytest.approx(70.0)
    assert image_row[3].mean == pytest.approx(40.0) and image_row[-1] is None and image_row[-2].mean == pytest.approx(40.0)
    assert image_row[4] == "6.2 / 20.0" and image_row[-3].mean == pytest.approx(40.0)  # nothing flagged: the same
    assert video_row[-1] == common.Marked(common.MeanStd(45.0, 0.0, 1), " †") and video_row[-2].mean == \
        pytest.approx(85.0)
    assert video_row[-3].mean == pytest.approx(85.0)  # the pairs without the flagged order swaps
    assert "video_text: order_swap" in table.notes[-1] and "'(no †)'" in table.notes[-1]
    unflagged = table_encoder_quality.encoder_quality_table(summary, "zero_shot", "test", "mean", "Frozen")
    assert "boundary acc (pairs, no †)" not in unflagged.columns and len(unflagged.notes) == 1
    with pytest.raises(ValueError, match="no result"):
        table_encoder_quality.encoder_quality_table(summary, "zero_shot", "test_heldout", "mean", "Frozen")


# --- training summary ---------------------------------------------------------------------------
