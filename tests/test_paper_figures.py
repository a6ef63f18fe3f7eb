"""The paper stage's training summaries, figures, attention examples and report on tiny hand-made inputs."""

import datetime
import math

import pytest
import torch
from paper_fixtures import (
    load,
    summary_of,
    training_summary,
)


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
    full = report.report_markdown(
        "c", "unknown", "cmd", None, {"not reproduced": 3}, "", [], [], [], data="real data read locally",
        inconclusive={"inconclusive": 1, "claims": 3, "testable": 2, "share_of_claims": 1 / 3, "share_of_testable": 0.5},
        theory={"table": "### Theory\n\n| a |\n", "figures": [{"title": "Rate", "png": "t/r.png", "pdf": "t/r.pdf"}]},
        beyond_paper="The corrected sampler is not in the paper.")
    for needed in ("on real data read locally.", "**1** of 3 claims (33 %; 50 % of the testable ones)",
                   "**Beyond the paper.** The corrected sampler", "## Theory", "#### Theory", "![Rate](t/r.png)"):
        assert needed in full, needed
    text = report.report_markdown("c", "unknown", "cmd", None, {}, "", [], [], [],
                                  invocations=[("2026-11-29 06:46", 50.6 * 60), ("2026-11-29 08:00", 90.0)])
    assert "started 2026-11-29 06:46, 50.6 min; started 2026-11-29 08:00, 1.5 min" in text


def test_invocation_times_come_from_the_snakemake_logs_oldest_first():
    report = load("report")
    now = datetime.datetime(2026, 11, 29, 8, 0, 0)
    finished = datetime.datetime(2026, 11, 29, 7, 30, 0).timestamp()
    logs = {".snakemake/log/2026-11-29T071500.000000.snakemake.log": now.timestamp(),
            ".snakemake/log/2026-11-29T064500.500000.snakemake.log": finished, ".snakemake/log/notes.log": 0.0}
    assert report.invocation_times(logs, now) == [("2026-11-29 06:45", 45 * 60 - 0.5), ("2026-11-29 07:15", 45 * 60)]
    assert report.invocation_times({"x.log": 0.0}, now) == []
