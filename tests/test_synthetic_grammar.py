"""Synthetic benchmarks: captions, caption equivalence, boundary negatives and token positions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from open_clip.tokenizer import SimpleTokenizer

from bacl.data.synthetic import MODALITIES, NegativeType, generate, word_to_token_positions, word_token_spans
from bacl.data.synthetic.grammar import COLOURS, DIRECTIONS, DURATIONS, PITCHES, RELATIONS, SHAPES, SIZES, TIMBRES, Thing
from bacl.data.synthetic.image_text import ImageCaption, caption_holds
from bacl.data.synthetic.sampling import choose_heldout_pairs
from synthetic_checks import check_negative_shape, image_caption_true, parse_image_caption, visible_colour_shape_pairs

SIZES_PER_SPLIT = {"n_pretrain": 3, "n_train": 6, "n_val": 0, "n_test": 3, "n_test_heldout": 4}
TOKENIZER = SimpleTokenizer()


def tiny(seed: int) -> dict:
    return {modality: generate(modality, {"seed": seed, **SIZES_PER_SPLIT}) for modality in MODALITIES}


@given(st.integers(0, 2**32 - 1))
def test_negatives_are_half_true_and_wrong_exactly_at_recorded_words(seed):
    for modality, splits in tiny(seed).items():
        heldout = choose_heldout_pairs(seed, "colour_shape", COLOURS, SHAPES, 6)
        for split, dataset in splits.items():
            for i, (caption, negatives) in enumerate(zip(dataset.captions, dataset.negatives)):
                assert negatives, f"{modality} {split} sample {i} has no negative"
                if modality == "image":
                    objects = dataset.scenes[i]["objects"]
                    truth = {Thing(o["size"], o["colour"], o["shape"]): (o["x"], o["y"]) for o in objects}
                    assert image_caption_true(parse_image_caption(caption), truth)
                texts = [n["caption"] for n in negatives]
                assert caption not in texts and len(set(texts)) == len(texts)
                for record in negatives:
                    truth, negative = caption.split(), record["caption"].split()
                    assert len(negative) == len(truth)  # every edit here keeps the word count
                    assert record["wrong_words"] == [k for k, (a, b) in enumerate(zip(truth, negative)) if a != b]
                    check_negative_shape(truth, negative, record["type"], record["wrong_words"])
                    if modality == "image":  # false for the scene, and not merely another wording of the truth
                        scene = dataset.scenes[i]["objects"]
                        centres = {Thing(o["size"], o["colour"], o["shape"]): (o["x"], o["y"]) for o in scene}
                        parsed = parse_image_caption(record["caption"])
                        assert not image_caption_true(parsed, centres) and not caption_holds(parsed, centres)
                        assert parsed.canonical() != dataset.scenes[i]["canonical_caption"]
                    if split != "test_heldout" and modality != "audio":
                        assert not visible_colour_shape_pairs(record["caption"]) & heldout


def test_every_modality_produces_every_negative_type():
    kinds = {m: {r["type"] for d in s.values() for n in d.negatives for r in n} for m, s in tiny(3).items()}
    assert kinds["image"] == {"attribute_swap", "binding_swap", "relation_flip", "object_replacement"}
    assert kinds["video"] == {"attribute_swap", "direction_flip", "change_swap", "order_swap"}
    assert kinds["audio"] == {"pitch_swap", "timbre_swap", "order_swap"}
    assert kinds["audio_video"] == kinds["video"] | {"pitch_swap", "timbre_swap", "binding_swap"}
    assert {t.value for t in NegativeType} == set().union(*kinds.values())


def test_equivalent_image_captions_share_canonical_text_and_id():
    a, b, c = Thing("small", "red", "circle"), Thing("large", "blue", "square"), Thing("small", "green", "star")
    one = ImageCaption((a, b, c), ("left",))
    assert " ".join(one.words()) == "a small red circle left of a large blue square and a small green star"
    assert ImageCaption((b, a, c), ("right",)).canonical() == one.canonical()
    assert ImageCaption((c, a), ("above",)).canonical() == ImageCaption((a, c), ("below",)).canonical()
    assert ImageCaption((a, b, c), ("right",)).canonical() != one.canonical()
    assert ImageCaption((a, c, b), ("left",)).canonical() != one.canonical()  # other pairs: other facts
    dataset = generate("image", {"seed": 1, **SIZES_PER_SPLIT, "n_train": 300, "min_objects": 1, "max_objects": 1})["train"]
    canonical = [s["canonical_caption"] for s in dataset.scenes]
    assert dataset.num_distinct_captions == len(set(canonical)) < len(dataset)  # one-object captions repeat
    for i in range(len(dataset)):
        for j in range(len(dataset)):
            assert (dataset.caption_ids[i] == dataset.caption_ids[j]) == (canonical[i] == canonical[j])


def test_vocabulary_words_are_single_tokens_and_captions_fit_the_tiny_context():
    vocabulary = {*COLOURS, *SHAPES, *SIZES, *RELATIONS, *DIRECTIONS, *PITCHES, *TIMBRES, *DURATIONS,
                  "a", "of", "and", "then", "moves", "turns", "becomes", "with", "tone"}
    assert all(len(TOKENIZER.encode(word)) == 1 for word in vocabulary)
    texts = [t for s in tiny(5).values() for d in s.values() for i, c in enumerate(d.captions)
             for t in [c, *(n["caption"] for n in d.negatives[i])]]
    longest = max(len(TOKENIZER.encode(t)) + 2 for t in texts)  # + start and end tokens
    assert longest <= 32, f"a caption needs {longest} tokens; the CPU text towers have 32"


@given(st.integers(0, 2**32 - 1))
def test_token_positions_point_at_the_wrong_words(seed):
    for splits in tiny(seed).values():
        for negatives in splits["train"].negatives:
            for record in negatives:
                ids = TOKENIZER(record["caption"], context_length=32)[0].tolist()
                words = record["caption"].split()
                for w in record["wrong_words"]:
                    positions = word_to_token_positions(record["caption"], [w], TOKENIZER.encode, context_length=32)
                    assert TOKENIZER.decode([ids[p] for p in positions]).strip() == words[w]


def test_token_positions_cover_words_that_bpe_splits():
    caption = "a cyan hexagon left of a sawtooth star"
    ids = TOKENIZER(caption, context_length=32)[0].tolist()
    spans = word_token_spans(caption, TOKENIZER.encode)
    assert [len(s) for s in spans] == [1, 2, 2, 1, 1, 1, 2, 1]
    assert ids[0] == TOKENIZER.sot_token_id and ids[spans[-1].stop] == TOKENIZER.eot_token_id
    positions = word_to_token_positions(caption, [2, 6], TOKENIZER.encode)
    assert positions == [4, 5, 9, 10]  # <start> a cy an hex agon left of a saw tooth star
    assert TOKENIZER.decode([ids[p] for p in positions]).split() == ["hexagon", "sawtooth"]
    with pytest.raises(ValueError, match="word_positions"):
        word_to_token_positions(caption, [8], TOKENIZER.encode)
    with pytest.raises(ValueError, match="context_length=8"):
        word_to_token_positions(caption, [0], TOKENIZER.encode, context_length=8)
    with pytest.raises(ValueError, match="caption"):
        word_token_spans("  ", TOKENIZER.encode)
