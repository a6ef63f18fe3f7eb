"""Validation curves during training, the plateau criterion, and the sibling shares of BNS draws."""

import copy
import json
import math

import pytest
import torch
from fixtures import latent_features
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from test_train import SETTINGS, assert_same_run, make_aligner

from bacl.aligners import CLIPAligner
from bacl.convergence import VALIDATION_POINTS, validation_metrics, validation_subset
from bacl.evaluate import evaluate
from bacl.metrics.plateau import PLATEAU_GAIN_PP, last_quarter_change, plateau_report
from bacl.featureset import FeatureSet
from bacl.metrics.siblings import sibling_shares
from bacl.train import FINAL_WEIGHTS, METRICS_LOG, TrainSettings, batch_indices, train

VALIDATED = TrainSettings(steps=12, batch_size=16, lr=3e-3, checkpoint_every=5, log_every=2, validate_every=5,
                          validate_samples=8)


def records(run_dir):
    return [json.loads(line) for line in (run_dir / METRICS_LOG).read_text().splitlines()]


@pytest.mark.parametrize("method", ["clip_bacl", "blip"])
def test_validation_leaves_the_weights_and_the_training_log_unchanged(method, tmp_path):
    train_set, val_set = latent_features(48), latent_features(24, seed=1)
    train(make_aligner(method, train_set.dims), train_set, SETTINGS, tmp_path / "plain", progress=False)
    summary = train(make_aligner(method, train_set.dims), train_set, VALIDATED, tmp_path / "validated",
                    progress=False, val_set=val_set)
    plain, validated = load_file(str(tmp_path / "plain" / FINAL_WEIGHTS)), load_file(str(tmp_path / "validated" / FINAL_WEIGHTS))
    assert all(torch.equal(plain[name], validated[name]) for name in plain)
    logged = records(tmp_path / "validated")
    # step 0 (the untrained heads), every 5 steps and the last; merged into the loss line of a shared step
    assert [r["step"] for r in logged if "val_r1" in r] == [0, 5, 10, 12]
    assert all("val_head_pairwise" in r for r in logged if "val_r1" in r)  # both methods have a match head
    training_lines = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in logged if "loss" in r]
    assert training_lines == records(tmp_path / "plain")
    assert 0 < summary["validation_seconds"] < summary["seconds"]


def test_validated_run_resumes_to_the_same_log(tmp_path):
    train_set, val_set = latent_features(48), latent_features(24, seed=1)
    train(make_aligner("clip_bacl", train_set.dims), train_set, VALIDATED, tmp_path / "whole", progress=False,
          val_set=val_set)
    train(make_aligner("clip_bacl", train_set.dims), train_set, VALIDATED, tmp_path / "resumed", progress=False,
          stop_after=7, val_set=val_set)
    resumed = train(make_aligner("clip_bacl", train_set.dims, seed=1), train_set, VALIDATED, tmp_path / "resumed",
                    progress=False, val_set=val_set)
    assert resumed["resumed_from"] == 7  # its checkpoint's log holds the points of steps 0 and 5
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")


def test_a_checkpoint_validated_on_another_split_is_not_resumed(tmp_path):
    train_set = latent_features(48)
    train(make_aligner("clip", train_set.dims), train_set, VALIDATED, tmp_path, progress=False, stop_after=5,
          val_set=latent_features(24, seed=1))
    with pytest.warns(UserWarning, match="different run"):
        again = train(make_aligner("clip", train_set.dims), train_set, VALIDATED, tmp_path, progress=False)
    assert again["resumed_from"] == 0 and again["validation_seconds"] is None


def test_validation_metrics_are_the_evaluation_metrics():
    train_set, val_set = latent_features(48), latent_features(30, seed=1)
    aligner = make_aligner("clip_bacl", train_set.dims)
    subset = validation_subset(val_set, 10)
    metrics = validation_metrics(aligner, val_set, subset)
    full = evaluate(copy.deepcopy(aligner), val_set)["retrieval"]
    assert metrics["val_r1"] == pytest.approx((full["image_to_text"]["R@1"] + full["text_to_image"]["R@1"]) / 2)
    assert metrics["val_head_pairwise"] == evaluate(copy.deepcopy(aligner), subset)["boundary_match_head"]["pairwise_accuracy"]
    assert aligner.training  # validated on a copy: the model's mode is untouched
    plain = validation_metrics(make_aligner("clip", train_set.dims), val_set, subset)
    assert set(plain) == {"val_r1"}  # no match head, no head metric


def test_validation_subset_is_fixed_and_drops_row_indices():
    val_set = latent_features(30, seed=1)
    first, second = validation_subset(val_set, 10), validation_subset(val_set, 10)
    assert len(first) == 10 and torch.equal(first["x"], second["x"])
    rows = [int((val_set["x"] == row).all(1).nonzero()) for row in first["x"]]
    assert rows == sorted(rows) and rows != list(range(10))  # a seeded spread, kept in row order
    assert "text_neighbours" not in first and "negative_text_tokens" in first
    assert len(validation_subset(val_set, 100)) == 30
    bare = FeatureSet({k: v for k, v in val_set.tensors.items() if not k.startswith("negative")})
    assert validation_subset(bare, 10) is None
    with pytest.raises(ValueError, match="samples"):
        validation_subset(val_set, 0)


def test_validation_interval_defaults_to_a_fixed_number_of_points():
    assert TrainSettings(steps=1000, batch_size=4).validation_interval == math.ceil(1000 / VALIDATION_POINTS)
    assert TrainSettings(steps=3, batch_size=4).validation_interval == 1
    assert TrainSettings(steps=1000, batch_size=4, validate_every=7).validation_interval == 7
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="validate_every"):
            TrainSettings(steps=10, batch_size=4, validate_every=bad)


@settings(max_examples=50, deadline=None)
@given(intercept=st.floats(-5, 5), slope=st.floats(-1e-2, 1e-2), total=st.integers(8, 5000),
       before=st.floats(-100, 100))
def test_last_quarter_change_of_a_line_is_its_rise_over_the_quarter(intercept, slope, total, before):
    steps = sorted({0, *range(0, total + 1, max(1, total // 16)), total})
    start = 0.75 * total
    # points before the last quarter do not count, whatever their values
    values = [intercept + slope * s if s >= start else before for s in steps]
    change = last_quarter_change(steps, values, total)
    assert change == pytest.approx(slope * 0.25 * total, abs=1e-9)


def test_last_quarter_change_needs_two_points_and_skips_missing_ones():
    assert last_quarter_change([0, 50, 100], [0.1, 0.2, 0.3], 100) is None  # one point in the quarter
    assert last_quarter_change([80, 90, 100], [0.2, None, 0.3], 100) == pytest.approx(0.25 * 100 * 0.1 / 20)
    with pytest.raises(ValueError, match="same length"):
        last_quarter_change([1, 2], [0.1], 10)
    with pytest.raises(ValueError, match="total_steps"):
        last_quarter_change([1, 2], [0.1, 0.2], 0)


def test_plateau_report_flags_a_run_still_gaining():
    steps = list(range(0, 101, 10))
    flat = [{"step": s, "val_r1": 0.6, "loss": 2.0} for s in steps]
    # +2 pp over the last quarter: far above the 0.5 pp criterion
    rising = [{"step": s, "val_r1": 0.6 + 0.0008 * s, "val_head_pairwise": 0.5 + 0.001 * s, "loss": 3 - 0.01 * s}
              for s in steps]
    report = plateau_report(flat, 100)
    assert report["meets"] is True and report["val_r1_gain_pp"] == pytest.approx(0.0)
    assert report["final_val_r1"] == pytest.approx(60.0) and report["val_head_gain_pp"] is None
    assert report["initial_val_head_pairwise"] is None
    assert report["loss_relative_change"] == pytest.approx(0.0) and report["threshold_pp"] == PLATEAU_GAIN_PP
    report = plateau_report(rising, 100)
    assert report["meets"] is False and report["val_r1_gain_pp"] == pytest.approx(2.0)
    assert report["val_head_gain_pp"] == pytest.approx(2.5) and report["final_val_head_pairwise"] == pytest.approx(60.0)
    assert report["initial_val_head_pairwise"] == pytest.approx(50.0) and report["initial_val_r1"] == pytest.approx(60.0)
    # the loss falls by 0.25 over the quarter, relative to its mean there (2.2, 2.1, 2.0 at steps 80-100)
    assert report["loss_relative_change"] == pytest.approx(-0.25 / 2.1)
    unvalidated = plateau_report([{"step": s, "loss": 1.0} for s in steps], 100)
    assert unvalidated["meets"] is None and unvalidated["final_val_r1"] is None


class DrawNamingRows(CLIPAligner):
    """clip_bns whose BNS draw also names its rows, as BACLLoss's last_draw does: the first K of
    each anchor's pool, all valid but the last of every third anchor."""

    K = 3

    def loss(self, batch, progress, generator=None):
        terms = super().loss(batch, progress, generator)
        rows = batch.candidate_text.rows[:, : self.K]
        valid = torch.ones_like(rows, dtype=torch.bool)
        valid[::3, -1] = False
        self.contrastive.last_draw.update(image_to_text_rows=rows, image_to_text_valid=valid,
                                          match_rows=rows[:, :1], match_valid=torch.ones_like(rows[:, :1], dtype=torch.bool))
        return terms


def test_bns_draws_log_their_sibling_shares(tmp_path):
    features = latent_features(48)
    n = len(features)
    pools = features["text_neighbours"]
    # Every row's one-edit sibling is its first pool neighbour; groups of four consecutive rows.
    sibling_index = torch.full((n, 2), -1)
    sibling_index[:, 0] = pools[:, 0]
    tensors = {**features.tensors, "group": torch.arange(n) // 4, "sibling_index": sibling_index}
    features = FeatureSet(tensors, features.meta)
    aligner = make_aligner("clip_bns", features.dims)
    stub = DrawNamingRows(features.dims, contrastive=aligner.contrastive)
    stub.load_state_dict(aligner.state_dict())
    train(stub, features, SETTINGS, tmp_path, progress=False)
    logged = records(tmp_path)
    assert all("drawn_one_edit" in r for r in logged)
    for record in logged:
        rows = batch_indices(n, SETTINGS.batch_size, SETTINGS.seed, record["step"] - 1)
        valid = torch.ones(len(rows), DrawNamingRows.K, dtype=torch.bool)
        valid[::3, -1] = False
        expected = sibling_shares(pools[rows, : DrawNamingRows.K], tensors["group"], sibling_index, rows, valid)
        assert record["drawn_one_edit"] == pytest.approx(expected["one_edit"])
        assert record["drawn_same_group"] == pytest.approx(expected["same_group"])
        # one of the K drawn is the sibling: 1/3 of full rows' draws, 1/2 of the others'
        assert record["drawn_one_edit"] == pytest.approx(len(rows) / valid.sum().item())
        assert record["match_one_edit"] == 1.0  # the match list's one draw is the sibling
    # Without sibling groups in the split, or rows in the draw, nothing is logged about siblings.
    plain = make_aligner("clip_bns", features.dims)
    train(plain, latent_features(48), SETTINGS, tmp_path / "plain", progress=False)
    assert not any("drawn_one_edit" in r for r in records(tmp_path / "plain"))
    assert all("drawn_bs_mean" in r for r in records(tmp_path / "plain"))


# --- the paper stage: training summary, convergence table, curves figure ---------------------------

def run_log(gain_per_step: float, seed: int, steps: int = 100) -> list[dict]:
    """A run's log lines: loss every 10 steps with drawn one-edit shares rising from 0.1 to 0.3,
    validation points every 25 steps merged into the loss line of the same step, R@1 rising linearly."""
    lines = [{"step": s, "progress": (s - 1) / steps, "loss": 2.0, "drawn_one_edit": 0.1 if s <= 25 else 0.3}
             for s in range(10, steps + 1, 10)]
    lines += [{"step": s, "progress": max(s - 1, 0) / steps, "val_r1": 0.5 + gain_per_step * s + 0.001 * seed,
               "val_head_pairwise": 0.5} for s in range(0, steps + 1, 25)]
    return sorted(lines, key=lambda line: line["step"])


def test_training_summary_reports_each_runs_plateau_and_draw_shares():
    from paper_fixtures import training_summary

    flat, rising = run_log(0.0, seed=0), run_log(1e-3, seed=1)  # +2.5 pp over the last quarter
    curves = training_summary.seed_curves([flat])
    at_50 = curves["steps"].index(50)
    assert curves["series"]["loss"]["mean"][at_50] == 2.0 and curves["series"]["val_r1"]["mean"][at_50] == 0.5
    runs = [training_summary.run_convergence(flat, 0, {"seconds": 50.0}),
            training_summary.run_convergence(rising, 1, {"seconds": 70.0})]
    assert runs[0]["steps"] == 100 and runs[0]["meets"] is True and runs[1]["meets"] is False
    assert runs[1]["val_r1_gain_pp"] == pytest.approx(2.5)
    assert runs[0]["drawn_one_edit_early"] == pytest.approx(0.1) and runs[0]["drawn_one_edit_late"] == pytest.approx(0.3)
    assert runs[0]["drawn_same_group_early"] is None and runs[1]["seconds_per_step"] == pytest.approx(0.7)
    summary = training_summary.convergence_statistics(runs)
    assert summary["meets"] == 1 and summary["n"] == 2 and summary["steps"] == [100]
    assert summary["seconds_per_step"]["mean"] == pytest.approx(0.6) and summary["val_r1_gain_pp"]["n"] == 2
    assert "drawn_same_group_early" not in summary  # never logged: no statistics
    with pytest.raises(ValueError, match="seed 3"):
        training_summary.run_convergence([], 3)


def test_convergence_table_flags_runs_that_miss_the_plateau(tmp_path):
    from paper_fixtures import load, training_summary

    table_convergence = load("table_convergence")
    runs = [training_summary.run_convergence(run_log(gain, seed), seed, {"seconds": 50.0})
            for seed, gain in enumerate((0.0, 1e-3))]
    training = {"convergence": {"image_text": {"clip_bacl": training_summary.convergence_statistics(runs),
                                               "clip": training_summary.convergence_statistics(runs[:1])}},
                "cost": {"image_text": {"clip_bacl": {"max_rss_mb": {"mean": 300.0, "std": 0.0, "n": 2}}}},
                "plateau": {"threshold_pp": PLATEAU_GAIN_PP}}
    pools = tmp_path / "pools.safetensors"
    FeatureSet.write(pools, {"text_neighbours": torch.zeros(4, 2, dtype=torch.long)},
                     {"sibling_shares": {"text_neighbours": {"one_edit": 0.125}, "x_neighbours": {"one_edit": 0.5}}})
    FeatureSet.write(tmp_path / "real.safetensors", {"text_neighbours": torch.zeros(4, 2, dtype=torch.long)}, {})
    shares = table_convergence.pool_shares({"image_text": pools, "real": tmp_path / "real.safetensors"})
    assert shares == {"image_text": 0.125}
    table = table_convergence.convergence_table(training, {"CLIP": "clip", "CLIP+BACL": "clip_bacl", "GRAM": "gram"},
                                                "Convergence", shares)
    assert [row[:3] for row in table.rows] == [["image_text", "CLIP", "100"], ["image_text", "CLIP+BACL", "100"]]
    clip, bacl = (dict(zip(table.columns, row)) for row in table.rows)
    assert clip["Plateau met"] == "1/1" and bacl["Plateau met"] == "1/2 ✗"
    assert bacl["ms / step"].mean == pytest.approx(500.0) and bacl["Peak RSS (MB)"].mean == 300.0
    assert bacl["One-edit draws, last quarter (%)"].mean == pytest.approx(30.0) and clip["Peak RSS (MB)"] is None
    notes = " ".join(table.notes)
    assert "image_text / CLIP+BACL seed 1 (+2.50 pp)" in notes and "image_text 12.5 %" in notes
    assert "different numbers of steps" not in notes
    with pytest.raises(ValueError, match="gram"):
        table_convergence.convergence_table(training, {"GRAM": "gram"}, "Convergence")


def test_training_curves_figure_adds_the_validation_rows(tmp_path):
    from paper_fixtures import load, training_summary

    fig_training_curves = load("fig_training_curves")
    training = {"curves": {"image_text": {"clip": training_summary.seed_curves([run_log(1e-3, 0)])},
                           "video_text": {"clip": training_summary.seed_curves([[{"step": 5, "loss": 1.0}]])}}}
    rows = fig_training_curves.figure_rows(training, {"CLIP": "clip"}, "loss")
    assert len(rows) == 3 and list(rows)[1] == fig_training_curves.VALIDATION_SERIES["val_r1"]
    assert rows[list(rows)[1]]["image_text"]["CLIP"]["mean"][-1] == pytest.approx(60.0)  # in percent
    assert "video_text" not in rows[list(rows)[1]]  # that run did not validate
    fig_training_curves.plot(rows, tmp_path / "c.png", tmp_path / "c.pdf")
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "c.pdf").stat().st_size > 0


def test_learning_curves_script_runs_the_cli_per_method_and_budget(tmp_path, capsys):
    import sys
    from pathlib import Path

    from fixtures import tiny_config, write_config, write_feature_file

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import learning_curves

    config = write_config(tmp_path / "config.yaml", tiny_config({"clip": {"aligner": "clip"},
                                                                 "clip_bacl": {"aligner": "clip", "bns": True, "cla": True}}))
    train_file = write_feature_file(tmp_path / "train.safetensors", latent_features(48))
    val_file = write_feature_file(tmp_path / "val.safetensors", latent_features(24, seed=1))
    args = ["--config", str(config), "--train", str(train_file), "--pools", str(train_file), "--val", str(val_file),
            "--methods", "clip", "clip_bacl", "--validate-every", "2", "--report-steps", "2", "4"]
    curve = learning_curves.main([*args, "--steps", "4", "--out", str(tmp_path / "curve.json")])
    assert curve["mode"] == "curve" and [(r["method"], r["steps"]) for r in curve["runs"]] == [("clip", 4), ("clip_bacl", 4)]
    assert curve["runs"][1]["curve"]["steps"] == [0, 2, 4] and len(curve["runs"][1]["head_curve"]["steps"]) == 3
    assert all(0 < r["validation_share"] < 1 and r["cpu_seconds_per_step"] > 0 for r in curve["runs"])
    budgets = learning_curves.main([*args, "--methods", "clip", "--budgets", "2", "4", "--validate-every", "1",
                                    "--out", str(tmp_path / "budgets.json")])
    assert [r["steps"] for r in budgets["runs"]] == [2, 4] and budgets["runs"][1]["plateau"]["meets"] is not None
    printed = capsys.readouterr().out
    assert "R@1@2" in printed and "gain_lq(pp)" in printed
    assert json.loads((tmp_path / "budgets.json").read_text())["mode"] == "budgets"
