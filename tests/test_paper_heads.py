"""The paper stage's head, re-ranking, sibling and probe-flag pieces (workflow/scripts) on tiny
hand-made inputs."""

import json

import pytest
import torch
from paper_fixtures import common, load, summary_of

table_heads, table_reranked, table_siblings, type_flags = (load("table_heads"), load("table_reranked"),
                                                           load("table_siblings"), load("type_flags"))
FLAGS = {"image_text": ["relation_flip"]}


def head_summary():
    """CLIP (no Transformer) and BACL (head 80 / 70 % on two seeds, untrained 50 %) on image_text."""
    return summary_of({("image_text", "clip"): [0.30, 0.31], ("image_text", "bacl"): [0.40, 0.40]},
                      heads={("image_text", "bacl"): ([0.8, 0.7], [0.5, 0.5])})


def test_heads_table_puts_the_untrained_copy_and_chance_beside_each_head_metric():
    table = table_heads.heads_table(head_summary(), {"CLIP": "clip", "CLIP+BACL": "bacl"}, "test", "mean", "Heads",
                                    FLAGS)
    assert len(table.rows) == 1  # CLIP has no match head
    row = dict(zip(table.columns, table.rows[0]))
    assert row["Method"] == "CLIP+BACL" and row["pairwise acc (head)"].mean == pytest.approx(75.0)
    assert row["pairwise acc (untrained)"].mean == pytest.approx(50.0)
    gain = row["Δ head − untrained"]  # paired: per seed +30, +20 -> SE 5
    assert gain.mean == pytest.approx(25.0) and gain.std == pytest.approx(5.0)
    # without the flagged relation flips (30 of the 40 pairs at 50 %) only the binding swaps remain
    assert row["pairwise acc (head, no †)"].mean == pytest.approx(75.0)
    assert row["pairwise chance"] == pytest.approx(50.0) and row["beats all chance (indep. / exch.)"] == "6.2 / 20.0"
    assert row["R@1 re-ranked by match only (untrained)"].mean == pytest.approx(50.0)
    assert row["R@1 embedding"].mean == pytest.approx(40.0)
    assert "relation_flip" in table.notes[-1] and "'(no †)'" in table.notes[-1]
    with pytest.raises(ValueError, match="match head"):
        table_heads.heads_table(head_summary(), {"CLIP": "clip"}, "test", "mean", "Heads")


def test_heads_by_type_flags_types_at_chance_and_shows_the_frozen_embedding_beside_the_heads():
    summary = summary_of({("image_text", "zero_shot"): [0.6, 0.6], ("image_text", "bacl"): [0.4, 0.4]},
                         heads={("image_text", "bacl"): ([0.8, 0.7], [0.5, 0.5])})
    table = table_heads.heads_by_type_table(summary, {"CLIP+BACL": "bacl"}, {"Frozen": "zero_shot"}, "test",
                                            "By type", FLAGS)
    assert table.columns == ["Benchmark", "Negative type", "chance", "Frozen (embedding)", "CLIP+BACL head",
                             "CLIP+BACL untrained"]
    by_type = {row[1]: row for row in table.rows}
    assert by_type["binding_swap"][3].mean == pytest.approx(60.0) and by_type["binding_swap"][4].mean == \
        pytest.approx(75.0)
    assert by_type["relation_flip †"][3] is None and by_type["relation_flip †"][4].mean == pytest.approx(50.0)
    assert "image_text: relation_flip" in table.notes[-1]


def test_reranked_table_compares_both_rerankings_with_the_embedding_and_the_untrained_copy():
    table = table_reranked.reranked_table(head_summary(), {"CLIP": "clip", "CLIP+BACL": "bacl"}, "test", "mean",
                                          "Re-ranked")
    assert [row[1] for row in table.rows] == ["CLIP+BACL"] and "top 4" in table.notes[1]
    row = dict(zip(table.columns, table.rows[0]))
    assert row["R@1 re-ranked, combined (head)"].mean == pytest.approx(75.0)
    assert row["R@1 re-ranked, combined (untrained)"].mean == pytest.approx(50.0)
    assert row["Δ combined − embedding"].mean == pytest.approx(35.0)
    with pytest.raises(ValueError, match="match head"):
        table_reranked.reranked_table(head_summary(), {"CLIP": "clip"}, "test", "mean", "Re-ranked")


def test_read_flags_and_pooled_pairs_without_the_flagged_types(tmp_path):
    path = tmp_path / "image_text.json"
    path.write_text(json.dumps({"at_chance_types": ["relation_flip"], "types": {}}))
    assert type_flags.read_flags(["image_text"], [str(path)]) == FLAGS
    with pytest.raises(ValueError, match="pair up"):
        type_flags.read_flags(["image_text"], [])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="at_chance_types"):
        type_flags.read_flags(["image_text"], [str(tmp_path / "bad.json")])
    summary = head_summary()
    # per seed: (0.8 x 10 + 0.5 x 30) / 40 with everything, 0.8 without the relation flips
    everything = type_flags.pairwise_without(summary, "image_text", "test", "bacl", "boundary_match_head", [])
    assert everything["values"] == pytest.approx([23 / 40, 22 / 40]) and everything["seeds"] == [0, 1]
    assert type_flags.pairwise_without(summary, "image_text", "test", "bacl", "boundary_match_head",
                                       ["binding_swap", "relation_flip"]) is None
    assert type_flags.pairwise_without(summary, "video_text", "test", "bacl", "boundary_match_head", []) is None
    assert type_flags.type_label(FLAGS, "image_text", "relation_flip") == "relation_flip †"
    assert type_flags.type_label(FLAGS, "video_text", "relation_flip") == "relation_flip"


def write_pools(path, shares):
    from bacl.featureset import FeatureSet

    meta = {"pool_size": 4, "index": "exact", **({"sibling_shares": shares} if shares else {})}
    FeatureSet.write(path, {"text_neighbours": torch.zeros(3, 4, dtype=torch.long)}, meta)


def training_with_draws() -> dict:
    steps = list(range(1, 9))
    one_edit = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8]
    return {"curves": {"image_text": {"bacl": {
        "steps": steps, "progress": [s / 8 for s in steps],
        "series": {"loss": {"mean": [1.0] * 8}, "drawn_one_edit": {"mean": one_edit, "std": [0.0] * 8, "n": [1] * 8},
                   "drawn_same_group": {"mean": [v + 0.1 for v in one_edit], "std": [0.0] * 8, "n": [1] * 8}}}}}}


def test_siblings_table_shows_pool_and_draw_shares_beside_the_floor_and_its_headroom(tmp_path):
    shares = {"text_neighbours": {"same_group": 0.25, "one_edit": 0.125, "anchors_with_one_edit": 0.5, "entries": 12},
              "x_neighbours": {"same_group": 0.5, "one_edit": 0.25, "anchors_with_one_edit": 1.0, "entries": 12}}
    write_pools(tmp_path / "image_text.safetensors", shares)
    write_pools(tmp_path / "video_text.safetensors", None)  # no sibling groups: no rows
    pools = {b: table_siblings.pool_shares(tmp_path / f"{b}.safetensors") for b in ("image_text", "video_text")}
    assert pools == {"image_text": shares, "video_text": None}
    summary = summary_of({("image_text", "zero_shot"): [0.6, 0.6]})
    table = table_siblings.siblings_table(pools, summary, training_with_draws(), "zero_shot", {"CLIP+BACL": "bacl"},
                                          "test", "mean", "Siblings")
    by_name = {row[1]: row for row in table.rows}
    text = by_name[table_siblings.POOL_SIDES["text_neighbours"]]
    assert text[2:6] == [25.0, 12.5, 50.0, 12] and text[6].mean == pytest.approx(60.0) and text[7] == pytest.approx(40.0)
    early, late = by_name["CLIP+BACL: BNS draws, early (η 0.12–0.25)"], by_name["CLIP+BACL: BNS draws, late (η 0.88–1.00)"]
    assert early[3] == pytest.approx(0.0) and late[3] == pytest.approx(70.0) and late[2] == pytest.approx(80.0)
    assert late[4] is None  # the logs do not record it
    quiet = table_siblings.siblings_table(pools, summary, {"curves": {}}, "zero_shot", {"CLIP+BACL": "bacl"}, "test",
                                          "mean", "Siblings")
    assert len(quiet.rows) == 2  # the pools only: no draw shares logged
    with pytest.raises(ValueError, match="sibling groups"):
        table_siblings.siblings_table({"video_text": None}, summary, {}, "zero_shot", {}, "test", "mean", "S")


@pytest.mark.parametrize("real", [[], ["image_text"]])
def test_data_words_name_synthetic_stand_ins_and_real_data(real):
    words = common.data_words(["image_text", "video_text"], real)
    assert ("video_text stands in for WebVid" in words) and ("image_text stands in" in words) == (not real)
    assert ("real data" in words) == bool(real)
