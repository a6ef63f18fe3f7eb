"""Synthetic benchmarks: determinism, held-out pairs, save / load with content hash, multiple choice."""

import numpy as np
import pytest

from bacl.data.synthetic import (
    MODALITIES,
    SPLITS,
    ImageTextDataset,
    VideoTextDataset,
    generate,
    generate_split,
    load_dataset,
    multiple_choice,
    read_content_hash,
)
from bacl.data.synthetic.grammar import COLOURS, PITCHES, SHAPES, TIMBRES
from bacl.data.synthetic.sampling import choose_heldout_pairs
from synthetic_checks import scene_pairs

SMALL = {"n_pretrain": 20, "n_train": 30, "n_val": 5, "n_test": 10, "n_test_heldout": 12}


@pytest.fixture(scope="module")
def small():
    return {modality: generate(modality, {"seed": 11, **SMALL}) for modality in MODALITIES}


@pytest.mark.parametrize("modality", MODALITIES)
def test_same_seed_same_bytes_other_seed_other_bytes(modality, small, tmp_path):
    again = generate(modality, {"seed": 11, **SMALL})
    other = generate(modality, {"seed": 12, **SMALL})
    for split in SPLITS:
        first, second = small[modality][split], again[split]
        assert first.content_hash() == second.content_hash()
        assert first.captions == second.captions and first.negatives == second.negatives
        for name, array in first.arrays().items():
            assert array.tobytes() == second.arrays()[name].tobytes()
            assert array.tobytes() != other[split].arrays()[name].tobytes()
        assert first.content_hash() != other[split].content_hash()
        first.save(tmp_path / "a" / split)
        second.save(tmp_path / "b" / split)
        for file in sorted((tmp_path / "a" / split).iterdir()):
            assert file.read_bytes() == (tmp_path / "b" / split / file.name).read_bytes(), file.name


def test_a_split_does_not_depend_on_the_size_of_another():
    one = generate_split("image", {"seed": 2, **SMALL}, "test")
    two = generate_split("image", {"seed": 2, **SMALL, "n_train": 31, "negatives_per_type": 2}, "test")
    assert one.captions == two.captions and np.array_equal(one.images, two.images)
    assert one.content_hash() != two.content_hash()  # the config is part of the hash


@pytest.mark.parametrize("modality", MODALITIES)
def test_heldout_pairs_only_in_test_heldout(modality, small):
    if modality == "audio":
        heldout = choose_heldout_pairs(11, "pitch_timbre", PITCHES, TIMBRES, 2)
    else:
        heldout = choose_heldout_pairs(11, "colour_shape", COLOURS, SHAPES, 6)
    assert len(heldout) == (2 if modality == "audio" else 6)
    assert len({a for a, _ in heldout}) == len({b for _, b in heldout}) == len(heldout)  # each value kept in training
    for split, dataset in small[modality].items():
        for scene in dataset.scenes:
            shows = bool(scene_pairs(modality, scene) & heldout)
            assert shows == scene["heldout"]
            assert shows == (split == "test_heldout"), f"{modality} {split}: held-out pair misplaced"


@pytest.mark.parametrize("modality", MODALITIES)
def test_save_load_round_trip_and_hash(modality, small, tmp_path):
    dataset = small[modality]["val"]
    stored = dataset.save(tmp_path / "val")
    assert stored == read_content_hash(tmp_path / "val") == dataset.content_hash()
    loaded = load_dataset(tmp_path / "val")
    assert type(loaded) is type(dataset) and loaded.content_hash() == stored
    assert loaded.captions == dataset.captions and loaded.negatives == dataset.negatives
    assert loaded.scenes == dataset.scenes and loaded.config == dataset.config
    assert np.array_equal(loaded.caption_ids, dataset.caption_ids)
    for name, array in dataset.arrays().items():
        assert np.array_equal(loaded.arrays()[name], array)
        changed = array.copy()
        changed.reshape(-1)[-1] += 1  # the last value: the hash must cover every byte
        setattr(loaded, name, changed)
        assert loaded.content_hash() != stored
        setattr(loaded, name, array)
    loaded.captions = [*loaded.captions[:-1], loaded.captions[-1] + " x"]
    assert loaded.content_hash() != stored


def test_load_refuses_changed_or_foreign_directories(small, tmp_path):
    dataset = small["image"]["test"]
    dataset.save(tmp_path / "d")
    with pytest.raises(ValueError, match="holds a 'image' dataset"):
        VideoTextDataset.load(tmp_path / "d")
    assert isinstance(ImageTextDataset.load(tmp_path / "d"), ImageTextDataset)
    images = dataset.images.copy()
    images[0, 0, 0, 0] ^= 1
    np.save(tmp_path / "d" / "images.npy", images)
    with pytest.raises(ValueError, match="content_hash"):
        load_dataset(tmp_path / "d")
    assert load_dataset(tmp_path / "d", verify=False).images[0, 0, 0, 0] == images[0, 0, 0, 0]
    with pytest.raises(ValueError, match="no dataset.json"):
        load_dataset(tmp_path / "missing")


def test_container_validates_its_fields(small):
    dataset = small["image"]["val"]
    fields = {"split": "val", "config": dataset.config, "captions": dataset.captions, "caption_ids": dataset.caption_ids,
              "negatives": dataset.negatives, "scenes": dataset.scenes, "groups": dataset.groups,
              "siblings": dataset.siblings, "images": dataset.images}
    with pytest.raises(ValueError, match="images must be a uint8 array"):
        ImageTextDataset(**{**fields, "images": dataset.images.astype(np.float32)})
    with pytest.raises(ValueError, match="negatives has"):
        ImageTextDataset(**{**fields, "negatives": dataset.negatives[:-1]})
    with pytest.raises(ValueError, match="groups must be contiguous"):
        ImageTextDataset(**{**fields, "groups": dataset.groups[::-1]})
    outside = [[{**record, "index": len(dataset) - 1 if record["index"] < 4 else 0} for record in sample]
               for sample in dataset.siblings]
    with pytest.raises(ValueError, match="another sample of the same group"):
        ImageTextDataset(**{**fields, "siblings": outside})
    assert ImageTextDataset(**fields).content_hash() == dataset.content_hash()


def test_multiple_choice_holds_the_truth_at_a_random_place(small):
    dataset = small["audio_video"]["test"]
    choices, answers = multiple_choice(dataset, seed=0)
    for options, answer, caption, negatives in zip(choices, answers, dataset.captions, dataset.negatives):
        assert options[answer] == caption and sorted(options) == sorted([caption, *(n["caption"] for n in negatives)])
    assert len(set(answers.tolist())) > 1
    again, _ = multiple_choice(dataset, seed=0)
    assert again == choices


@pytest.mark.parametrize("modality", MODALITIES)
def test_an_empty_split_saves_and_loads(modality, tmp_path):
    empty = generate_split(modality, {"n_val": 0}, "val")
    assert len(empty) == 0 and all(len(a) == 0 for a in empty.arrays().values())
    empty.save(tmp_path / "empty")
    assert load_dataset(tmp_path / "empty").content_hash() == empty.content_hash()
