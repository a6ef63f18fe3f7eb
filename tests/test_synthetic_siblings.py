"""Sibling groups of the synthetic benchmarks: a base scene and one-edit variants of it, in every split."""

from collections import Counter
from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bacl.data.synthetic import MODALITIES, NegativeType, generate_split, load_dataset
from bacl.data.synthetic.grammar import COLOURS, PITCHES, SHAPES, SIZES, TIMBRES, Thing
from bacl.data.synthetic.negatives import item_difference, order_swaps, value_changes, value_exchanges
from bacl.data.synthetic.sampling import choose_heldout_pairs, keyed_noise
from bacl.data.synthetic.siblings import choose_variants
from synthetic_checks import (
    check_negative_shape,
    image_caption_true,
    named_items,
    parse_image_caption,
    scene_pairs,
    told_caption,
)

SPLIT_SIZES = {"n_pretrain": 0, "n_train": 14, "n_val": 0, "n_test": 0, "n_test_heldout": 10}
SEEDS = st.integers(0, 2**32 - 1)
FEW = settings(max_examples=10)  # each example generates every modality: about 0.25 s


def centres(scene: dict) -> dict:
    return {Thing(o["size"], o["colour"], o["shape"]): (o["x"], o["y"]) for o in scene["objects"]}


def group_members(dataset) -> list[list[int]]:
    return [np.flatnonzero(dataset.groups == g).tolist() for g in range(dataset.num_groups)]


def check_group_captions(modality: str, dataset, size: int) -> None:
    """Group layout, truth of every caption for its own scene, and exact one-edit sibling records."""
    for members in group_members(dataset):
        assert 1 <= len(members) <= size and members == list(range(members[0], members[-1] + 1))
        assert [dataset.scenes[i]["edit"] is None for i in members] == [True] + [False] * (len(members) - 1)
        assert len({int(dataset.caption_ids[i]) for i in members}) == len(members)  # never equivalent captions
        for i in members:
            caption, scene = dataset.captions[i], dataset.scenes[i]
            if modality == "image":
                assert image_caption_true(parse_image_caption(caption), centres(scene))
            else:
                assert told_caption(modality, scene) == caption
            recorded = {r["index"]: r for r in dataset.siblings[i]}
            assert sorted(recorded) == [r["index"] for r in dataset.siblings[i]] and (len(members) == 1 or recorded)
            if i != members[0]:  # a variant is its edit away from the base
                assert recorded[members[0]]["type"] == scene["edit"]
            for j in members:
                words, other = caption.split(), dataset.captions[j].split()
                differing = [k for k, (a, b) in enumerate(zip(words, other)) if a != b]
                if j not in recorded:  # unrecorded: not a one-word edit (every one-word edit is a boundary edit)
                    assert j == i or len(words) != len(other) or len(differing) != 1
                    continue
                record = recorded[j]
                assert len(other) == len(words) and record["wrong_words"] == differing
                check_negative_shape(words, other, record["type"], differing)
                assert {**record, "index": i} in dataset.siblings[j]  # the relation is symmetric
                if modality == "image":  # the sibling's caption is false of this picture
                    assert not image_caption_true(parse_image_caption(dataset.captions[j]), centres(scene))


@FEW
@given(SEEDS, st.integers(1, 6))
def test_sibling_captions_are_true_of_their_own_scene_and_one_edit_from_each_other(seed, size):
    for modality, split in product(MODALITIES, ("train", "test_heldout")):
        dataset = generate_split(modality, {"seed": seed, **SPLIT_SIZES, "siblings_per_group": size}, split)
        assert len(dataset) == SPLIT_SIZES[f"n_{split}"]
        check_group_captions(modality, dataset, size)
        if size == 1:
            assert dataset.groups.tolist() == list(range(len(dataset))) and not any(dataset.siblings)


def picture_region(modality: str, scenes: list[dict], items: set[int], size: int) -> np.ndarray:
    """(size, size) mask of where the named objects are, in any frame of any of ``scenes``."""
    mask = np.zeros((size, size), dtype=bool)
    for scene, k in product(scenes, items):
        if modality == "image":
            o = scene["objects"][k]
            (x0, x1), (y0, y1) = (o["x"], o["x"]), (o["y"], o["y"])
        else:
            o = scene["events"][k]
            (x0, x1), (y0, y1) = sorted((o["start"][0], o["end"][0])), sorted((o["start"][1], o["end"][1]))
        r = o["radius"]
        mask[y0 - r : y1 + r + 1, x0 - r : x1 + r + 1] = True
    return mask


def sound_region(scenes: list[dict], items: set[int], n_samples: int) -> np.ndarray:
    """(S,) mask from the first start to the last end of the named tones in any of ``scenes``."""
    tones = [scene["tones"][k] for scene, k in product(scenes, items)]
    mask = np.zeros(n_samples, dtype=bool)
    if tones:
        mask[min(t["onset"] for t in tones) : max(t["onset"] + t["length"] for t in tones)] = True
    return mask


@FEW
@given(SEEDS)
def test_siblings_signals_differ_exactly_where_their_edit_names(seed):
    """Siblings share background and noise: outside the objects / tones their wrong words name,
    the signals are identical; inside, they differ. Objects not named keep their metadata."""
    for modality in MODALITIES:
        dataset = generate_split(modality, {"seed": seed, **SPLIT_SIZES}, "train")
        for members in group_members(dataset):
            base = members[0]
            for record in dataset.siblings[base]:
                j, scenes = record["index"], [dataset.scenes[base], dataset.scenes[record["index"]]]
                named = named_items(modality, dataset.captions[base], record["wrong_words"])
                if record["type"] == "order_swap":  # events move with their tones, even equal ones (no wrong word)
                    named["sound"] |= named["picture"] if modality == "audio_video" else set()
                if modality != "audio":
                    pictures = dataset.images[[base, j]] if modality == "image" else dataset.frames[[base, j]]
                    changed = (pictures[0] != pictures[1]).any(axis=-1)  # (H, W) or (T, H, W)
                    region = picture_region(modality, scenes, named["picture"], pictures.shape[-2])
                    assert not (changed & ~region).any(), (modality, record)
                    assert changed.any() == bool(named["picture"]), (modality, record)
                    key = "objects" if modality == "image" else "events"
                    for k in set(range(len(scenes[0][key]))) - named["picture"]:
                        assert scenes[0][key][k] == scenes[1][key][k]
                if modality in ("audio", "audio_video"):
                    changed = dataset.audio[base] != dataset.audio[j]
                    region = sound_region(scenes, named["sound"], dataset.audio.shape[1])
                    assert not (changed & ~region).any() and changed.any() == bool(named["sound"]), (modality, record)


@FEW
@given(SEEDS)
def test_heldout_pairs_never_leak_through_siblings(seed):
    heldout = {"audio": choose_heldout_pairs(seed, "pitch_timbre", PITCHES, TIMBRES, 2)}
    heldout.update(dict.fromkeys(("image", "video", "audio_video"),
                                 choose_heldout_pairs(seed, "colour_shape", COLOURS, SHAPES, 6)))
    for modality, split in product(MODALITIES, ("train", "test_heldout")):
        dataset = generate_split(modality, {"seed": seed, **SPLIT_SIZES}, split)
        for scene in dataset.scenes:  # every sibling is a sample of its split: test_heldout only, and all there
            assert bool(scene_pairs(modality, scene) & heldout[modality]) == (split == "test_heldout") == scene["heldout"]


@FEW
@given(SEEDS, st.integers(1, 5))
def test_same_config_same_groups_and_bytes(seed, size):
    config = {"seed": seed, **SPLIT_SIZES, "siblings_per_group": size}
    for modality in MODALITIES:
        first, second = (generate_split(modality, config, "train") for _ in range(2))
        assert first.content_hash() == second.content_hash() and first.siblings == second.siblings
        assert np.array_equal(first.groups, second.groups)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(first.arrays().values(), second.arrays().values()))


@pytest.mark.parametrize("modality", MODALITIES)
def test_groups_and_siblings_survive_save_and_load(modality, tmp_path):
    dataset = generate_split(modality, {"seed": 3, **SPLIT_SIZES}, "train")
    stored = dataset.save(tmp_path / "train")
    loaded = load_dataset(tmp_path / "train")
    assert np.array_equal(loaded.groups, dataset.groups) and loaded.groups.dtype == np.int64
    assert loaded.siblings == dataset.siblings and loaded.scenes == dataset.scenes
    assert loaded.num_groups == dataset.num_groups == 4 and loaded.content_hash() == stored
    loaded.groups = np.where(np.arange(len(loaded)) == len(loaded) - 1, loaded.num_groups, loaded.groups)
    assert loaded.content_hash() != stored  # the hash covers the groups


def test_configured_edit_kinds_are_the_only_ones_used():
    dataset = generate_split("image", {"seed": 1, **SPLIT_SIZES, "n_train": 40, "sibling_edits": ["relation_flip"]}, "train")
    assert {s["edit"] for s in dataset.scenes} == {None, "relation_flip"}
    sizes = np.bincount(dataset.groups)  # one flip per described pair: at most two variants
    assert sizes.max() <= 3 and {r["type"] for sample in dataset.siblings for r in sample} == {"relation_flip"}


@given(SEEDS, st.integers(1, 6))
def test_variants_visit_the_kinds_in_turn(seed, count):
    a, b, c = NegativeType.ATTRIBUTE_SWAP, NegativeType.BINDING_SWAP, NegativeType.RELATION_FLIP
    proposals = {a: ["a1", "a2", "a3", "base"], b: ["b1", "b2"], c: ["c-unrealisable"]}
    realise = lambda candidate: None if candidate.startswith("c") else f"scene of {candidate}"
    chosen = choose_variants("base", proposals, [a, b, c], count, realise, str, np.random.default_rng(seed))
    assert len(chosen) == min(count, 5)  # a1-a3, b1, b2: the base and the unrealisable one are never chosen
    kinds = [kind for kind, _, _ in chosen]
    assert set(kinds[:2]) == {a, b} if count >= 2 else len(kinds) == 1  # one of each kind before any repeat
    assert all(scene == f"scene of {candidate}" and candidate[0] == kind.value[0] for kind, candidate, scene in chosen)


THINGS = st.lists(st.tuples(st.sampled_from(SIZES), st.sampled_from(COLOURS), st.sampled_from(SHAPES)),
                  min_size=2, max_size=4, unique=True).map(lambda items: tuple(Thing(*item) for item in items))


@given(THINGS)
def test_item_difference_names_the_edit_that_was_made(things):
    assert item_difference(things, things) is None and item_difference(things, things[:-1]) is None
    for field in Thing._fields:
        for edited in value_changes(things, field, {"size": SIZES, "colour": COLOURS, "shape": SHAPES}[field]):
            assert item_difference(things, edited).kind == "change" and item_difference(things, edited).fields == (field,)
        for edited in value_exchanges(things, field):
            difference = item_difference(things, edited)
            i, j = difference.positions
            differ = [f for f in Thing._fields if getattr(things[i], f) != getattr(things[j], f)]
            assert (difference.kind, difference.fields) == (("order", (field,)) if differ == [field] else ("exchange", (field,)))
    for edited in order_swaps(things):
        difference = item_difference(things, edited)
        assert difference.kind == "order" and Counter(edited) == Counter(things)
        assert [things[k] for k in difference.positions] == [edited[k] for k in difference.positions[::-1]]


@given(st.integers(0, 2**63 - 1), st.lists(st.integers(0, 20), min_size=1, max_size=30))
def test_keyed_noise_is_a_function_of_the_key(seed, keys):
    noise = keyed_noise(seed, np.array(keys), (3, 2))
    assert noise.shape == (len(keys), 3, 2) and noise.dtype == np.float32
    for i, j in product(range(len(keys)), repeat=2):
        assert np.array_equal(noise[i], noise[j]) == (keys[i] == keys[j])
    assert np.array_equal(keyed_noise(seed, np.array(keys[::-1]), (3, 2)), noise[::-1])  # not the order of asking
