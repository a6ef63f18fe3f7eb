"""Per-type linear probes (bacl.probe, bacl.probe_tasks) and the probe script and table on tiny data."""

import json
import types

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from paper_fixtures import load

from bacl.data.synthetic import config_from_mapping, generate_split
from bacl.data.synthetic.grammar import COLOURS, SHAPES, SIZES
from bacl.probe import (
    choose_layer,
    fit_linear_probe,
    probe_summary,
    resolve_token_layer,
    run_probe,
    text_separability,
)
from bacl.probe_tasks import probe_spec

GRIDS = {"image": (8, 8), "audio": (8, 8)}


def tiny(modality: str, n: int = 24):
    dataset = generate_split(modality, {"n_train": n}, "train")
    config = config_from_mapping(modality, dataset.config)
    spec = probe_spec(modality, dataset.scenes, config.palette, GRIDS, image_size=getattr(config, "image_size", None),
                      n_samples=getattr(config, "n_samples", None))
    return dataset, spec


@pytest.fixture(scope="module")
def image_data():
    return tiny("image", n=160)


def planted_image_tokens(scenes, with_position: bool, seed: int = 0) -> torch.Tensor:
    """(N, 2, 64, D): block 1 holds each object's attributes (one-hot) at the patch under its centre,
    plus, with_position, every patch's own row and column; block 2 is noise only."""
    generator = torch.Generator().manual_seed(seed)
    n, width = len(scenes), len(SIZES) + len(COLOURS) + len(SHAPES) + 2
    tokens = 0.1 * torch.randn(n, 2, 64, width, generator=generator)
    if with_position:
        tokens[:, 0, :, -2] += torch.arange(64) // 8
        tokens[:, 0, :, -1] += torch.arange(64) % 8
    for i, scene in enumerate(scenes):
        for o in scene["objects"]:
            patch = min(o["y"] // 8, 7) * 8 + min(o["x"] // 8, 7)
            for offset, values, value in ((0, SIZES, o["size"]), (2, COLOURS, o["colour"]), (12, SHAPES, o["shape"])):
                tokens[i, 0, patch, offset + values.index(value)] += 1.0
    return tokens.half()


@pytest.mark.parametrize("modality", ["image", "video", "audio", "audio_video"])
def test_spec_covers_the_benchmarks_negative_types_with_well_formed_comparisons(modality):
    dataset, spec = tiny(modality)
    assert {negative["type"] for sample in dataset.negatives for negative in sample} <= set(spec.types)
    for kind, terms in spec.types.items():
        samples = spec.comparison_sample[kind]
        for t in terms:
            task = spec.tasks[t.task]
            assert (t.true != t.alt).all() and (t.true == task.labels[t.example]).all()
            assert ((0 <= t.alt) & (t.alt < task.num_classes)).all()
            assert (task.sample[t.example] == samples[t.comparison]).all()  # a comparison stays in its sample
        assert set(np.concatenate([t.comparison for t in terms])) == set(range(len(samples)))
    for task in spec.tasks.values():
        for _, index, weight in task.slots:
            assert index.shape == weight.shape and np.allclose(weight.sum(1), 1)


def test_binding_swap_exchanges_two_objects_values(image_data):
    _, spec = image_data
    (*terms,) = spec.types["binding_swap"]
    for t in terms:
        counts = np.bincount(t.comparison)
        assert set(counts[counts > 0]) == {2}  # both objects of the pair, on the same attribute
        order = np.argsort(t.comparison, kind="stable")
        true, alt = t.true[order].reshape(-1, 2), t.alt[order].reshape(-1, 2)
        assert (true[:, ::-1] == alt).all()


def test_planted_tokens_are_read_at_the_informative_block_only(image_data):
    dataset, spec = image_data
    results = run_probe(spec, {"image": planted_image_tokens(dataset.scenes, with_position=True)}, seed=1)
    for kind, result in results.items():
        first, second = result["layers"]["1"], result["layers"]["2"]
        assert first["accuracy"] > 0.9 and not first["at_chance"], kind
        assert second["at_chance"] and abs(second["chance"] - 0.5) < 0.1, kind
        assert not result["at_chance_every_layer"]
    assert choose_layer(results, [1, 2])[0] == 1


def test_planted_audio_tokens_give_pitch_timbre_and_order_and_the_video_direction_needs_time():
    dataset, spec = tiny("audio", n=120)
    n_samples, rows = dataset.audio.shape[1], 8
    tokens = 0.1 * torch.randn(len(dataset), 1, 64, 10, generator=torch.Generator().manual_seed(0))
    tokens[:, 0, :, -1] += torch.arange(64) % 8  # each token knows its time column
    for i, scene in enumerate(dataset.scenes):
        for tone in scene["tones"]:
            start, stop = tone["onset"] / n_samples * 8, (tone["onset"] + tone["length"]) / n_samples * 8
            for column in range(int(start), min(int(np.ceil(stop)), 8)):
                where = torch.arange(rows) * 8 + column
                tokens[i, 0, where, ["bass", "low", "mid", "high", "treble"].index(tone["pitch"])] += 1
                tokens[i, 0, where, 5 + ["pure", "hollow", "bright"].index(tone["timbre"])] += 1
    results = run_probe(spec, {"audio": tokens.half()})
    assert all(r["layers"]["audio"]["accuracy"] > 0.9 for r in results.values()), results
    _, video = tiny("video")
    assert {"direction_flip", "direction_flip/time"} <= set(video.types)


def test_relation_without_position_in_the_tokens_is_flagged_at_chance(image_data):
    dataset, spec = image_data
    results = run_probe(spec, {"image": planted_image_tokens(dataset.scenes, with_position=False)}, seed=1)
    summary = probe_summary(spec, results, results, {"image": 2})
    assert summary["at_chance_types"] == ["relation_flip"]
    assert summary["types"]["attribute_swap"]["sources"] == ["image"] and summary["best_layer"] == {"image": 1}


def test_a_type_is_as_good_as_its_weakest_part():
    def result(accuracy, at_chance):
        return {"layers": {"frames": {"accuracy": accuracy, "at_chance": at_chance}}, "at_chance_every_layer": at_chance}

    dataset, spec = tiny("video")
    trained = {"direction_flip": result(0.9, False), "direction_flip/time": result(0.5, True),
               "order_swap": result(0.5, True), "attribute_swap": result(0.8, False), "change_swap": result(0.7, False)}
    summary = probe_summary(spec, trained, trained, {"frames": 1})
    direction = summary["types"]["direction_flip"]
    assert direction["layers"]["frames"] == {"accuracy": 0.5, "at_chance": True}
    assert set(direction["parts"]) == {"direction_flip", "time"} and "direction_flip/time" not in summary["types"]
    assert summary["at_chance_types"] == ["direction_flip", "order_swap"] and summary["best_layer"] == {}


def test_probe_is_deterministic_and_seed_sets_the_split(image_data):
    dataset, spec = image_data
    sources = {"image": planted_image_tokens(dataset.scenes, with_position=True)}
    a, b = run_probe(spec, sources, seed=3), run_probe(spec, sources, seed=3)
    assert a == b
    assert run_probe(spec, sources, seed=4)["relation_flip"]["layers"]["1"] != a["relation_flip"]["layers"]["1"]
    with pytest.raises(ValueError, match="test_fraction"):
        run_probe(spec, sources, test_fraction=1.0)


@given(st.integers(2, 5), st.integers(0, 2**16))
def test_linear_probe_separates_separable_classes(classes, seed):
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(60) % classes
    x = torch.nn.functional.one_hot(y, classes).float() * 3 + 0.3 * torch.randn(60, classes, generator=generator)
    assert (fit_linear_probe(x, y, classes)(x).argmax(1) == y).all()


def test_choose_layer_takes_the_best_mean_and_ties_to_the_later_layer():
    def result(*accuracies):
        return {"layers": {str(i + 1): {"accuracy": a} for i, a in enumerate(accuracies)}}

    assert choose_layer({"a": result(0.9, 0.5, 0.7), "b": result(0.5, 0.6, 0.8)}, [1, 2, 3]) == (
        3, {"1": 0.7, "2": 0.55, "3": 0.75})
    assert choose_layer({"a": result(0.6, 0.7, 0.7)}, [1, 2, 3])[0] == 3
    with pytest.raises(ValueError, match="no negative type"):
        choose_layer({"frames": {"layers": {"frames": {"accuracy": 0.5}}}}, [1, 2])


def test_resolve_token_layer():
    record = {"best_layer": {"image": 2}}
    assert resolve_token_layer("probe", 4, record, "image") == 2
    assert resolve_token_layer("last", 4) == 4 and resolve_token_layer(3, 4) == 3
    for bad in (0, 5, "first", True):
        with pytest.raises(ValueError, match="token_layer"):
            resolve_token_layer(bad, 4)
    with pytest.raises(ValueError, match="probe record"):
        resolve_token_layer("probe", 4, record, "audio")


def test_text_separability_is_zero_for_an_unchanged_caption_and_about_one_for_an_unrelated_one():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(6, 2, 5, 8, generator=generator)
    caption = {"global": torch.randn(6, 4, generator=generator), "tokens": tokens,
               "token_ids": torch.arange(1, 31).view(6, 5)}
    negative = {"global": caption["global"][[0, 1]], "tokens": torch.stack([tokens[0], torch.randn(2, 5, 8)])}
    out = text_separability(caption, negative, np.array([0, 1]), ["same", "other"], [[2], [1, 3]])
    assert out["same"] == pytest.approx({"1": 0.0, "2": 0.0, "pooled": 0.0}, abs=1e-6)
    assert 0.5 < out["other"]["1"] < 1.5


@pytest.fixture(scope="module")
def script_record(tmp_path_factory):
    """probe_layers.py on a 24-scene image split with the seeded-init tiny towers."""
    out = tmp_path_factory.mktemp("probe")
    data = generate_split("image", {"n_train": 24}, "train")
    data.save(out / "data")
    rule = types.SimpleNamespace(
        input=types.SimpleNamespace(data=str(out / "data")), output=[str(out / "probe.json")], log=[str(out / "log")],
        threads=1, wildcards=types.SimpleNamespace(benchmark="image_text"),
        params=types.SimpleNamespace(
            encoders={"image": ({"model": "bacl-tiny-image", "pretrain": {"seed": 0}}, None)}, batch_size=16,
            probe={"samples": 20, "seed": 0, "test_fraction": 0.5, "l2": 1e-3, "max_iter": 20}))
    load("probe_layers").main(rule)
    return json.loads((out / "probe.json").read_text())


def test_probe_script_writes_every_type_layer_and_the_chosen_block(script_record):
    record = script_record
    assert record["samples"] == 20 and record["encoders"]["image"]["layers"] == {"image": 4, "text": 3}
    assert set(record["types"]) == {"attribute_swap", "binding_swap", "object_replacement", "relation_flip"}
    for result in record["types"].values():
        assert set(result["layers"]) == set(result["untrained"]) == {"1", "2", "3", "4"}
    assert 1 <= record["best_layer"]["image"] <= 4 and isinstance(record["at_chance_types"], list)
    assert set(record["text"]["relation_flip"]) == {"1", "2", "3", "pooled"}


def test_probe_table_flags_types_at_chance_and_names_the_block_read(script_record):
    table_probe = load("table_probe")
    record = json.loads(json.dumps(script_record))
    record["types"]["relation_flip"]["at_chance_every_layer"] = True
    record["at_chance_types"] = ["relation_flip"]
    table = table_probe.probe_table({"image_text": record}, {"image": 2, "audio": "probe"},
                                    {"image": "image_text", "audio": "audio_text"}, {"image_text": "last"}, "Probe")
    rows = {row[1]: row for row in table.rows}
    assert "relation_flip †" in rows and "attribute_swap" in rows
    assert rows["attribute_swap"][3] == "2" and rows["attribute_swap"][table.columns.index("Text block read")] == "3"
    assert table.columns[4:8] == ["block 1", "block 2", "block 3", "block 4"]
    assert "image_text: relation_flip" in table.notes[-1]
