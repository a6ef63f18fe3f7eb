"""Test-side checks of the synthetic benchmarks, written independently of the generator: parsing
captions, deciding their truth from a scene's metadata, and the word pattern of each edit type."""

from collections import Counter

from bacl.data.synthetic.grammar import COLOURS, DIRECTIONS, OPPOSITE, PITCHES, RELATIONS, SHAPES, SIZES, TIMBRES, Thing
from bacl.data.synthetic.image_text import ImageCaption

CATEGORY = {**{w: "size" for w in SIZES}, **{w: "colour" for w in COLOURS}, **{w: "shape" for w in SHAPES},
            **{w: "pitch" for w in PITCHES}, **{w: "timbre" for w in TIMBRES}}


def parse_image_caption(text: str) -> ImageCaption:
    """Inverse of ImageCaption.words for captions of this grammar (test-side, independent of the generator)."""
    things, relations = [], []
    for clause in text.split(" and "):
        words = clause.split()
        things.append(Thing(*words[1:4]))
        if len(words) > 4:
            relations.append(words[4])
            things.append(Thing(*words[-3:]))
    return ImageCaption(tuple(things), tuple(relations))


def image_caption_true(caption: ImageCaption, centres: dict) -> bool:
    """Test-side truth: the caption names exactly the scene's objects and every relation points the right way."""
    if sorted(caption.things) != sorted(centres):
        return False
    for p, relation in enumerate(caption.relations):
        (ax, ay), (bx, by) = centres[caption.things[2 * p]], centres[caption.things[2 * p + 1]]
        offset = {"left": (bx - ax, by - ay), "right": (ax - bx, by - ay), "above": (by - ay, bx - ax),
                  "below": (ay - by, bx - ax)}[relation]
        if not offset[0] >= abs(offset[1]) or offset[0] <= 0:
            return False
    return True


def visible_colour_shape_pairs(text: str) -> set:
    """(colour, shape) pairs an image / video / audio-video caption shows, before and after changes."""
    pairs = set()
    for phrase in text.replace(" and ", " then ").split(" then "):
        words = phrase.split()
        for i in range(len(words) - 1):
            if words[i] in COLOURS and words[i + 1] in SHAPES:
                colour, shape = words[i], words[i + 1]
                pairs.add((colour, shape))
                if "turns" in words:
                    pairs.add((words[words.index("turns") + 1], shape))
                if "becomes" in words:
                    pairs.add((colour, words[words.index("becomes") + 2]))
    return pairs


def check_negative_shape(truth: list[str], negative: list[str], kind: str, wrong: list[int]) -> None:
    """Each type changes the words it claims to, and only those."""
    if kind in ("attribute_swap", "pitch_swap", "timbre_swap"):
        (w,) = wrong
        expected = {"pitch_swap": "pitch", "timbre_swap": "timbre"}.get(kind, CATEGORY[truth[w]])
        assert CATEGORY[truth[w]] == CATEGORY[negative[w]] == expected and expected in CATEGORY.values()
    elif kind in ("relation_flip", "direction_flip"):
        (w,) = wrong
        assert truth[w] in (RELATIONS if kind == "relation_flip" else DIRECTIONS) and negative[w] == OPPOSITE[truth[w]]
    elif kind == "change_swap":
        (w,) = wrong
        assert truth[w - 1] == "turns" and CATEGORY[truth[w]] == CATEGORY[negative[w]] == "colour" or (
            truth[w - 2] == "becomes" and CATEGORY[truth[w]] == CATEGORY[negative[w]] == "shape")
    elif kind == "object_replacement":
        assert 2 <= len(wrong) <= 3 and wrong[-1] - wrong[0] <= 2  # inside one "a <size> <colour> <shape>"
        assert {"colour", "shape"} <= {CATEGORY[truth[w]] for w in wrong}
    elif kind == "binding_swap":
        assert Counter(truth) == Counter(negative) and len(wrong) >= 2  # values exchanged, none invented
        assert len({CATEGORY[truth[w]] for w in wrong} - {"pitch", "timbre"}) <= 1
    elif kind == "order_swap":
        assert Counter(truth) == Counter(negative) and len(wrong) >= 2
    else:
        raise AssertionError(f"unknown negative type {kind}")


def scene_pairs(modality: str, scene: dict) -> set:
    """The held-out-relevant attribute pairs a scene shows (colour-shape before and after changes; pitch-timbre)."""
    if modality == "audio":
        return {(t["pitch"], t["timbre"]) for t in scene["tones"]}
    items = scene["objects"] if modality == "image" else scene["events"]
    pairs = {(o["colour"], o["shape"]) for o in items}
    for o in items if modality != "image" else []:
        end_colour = o["value"] if o["kind"] == "turns" else o["colour"]
        pairs.add((end_colour, o["end_shape"]))
    return pairs


def told_caption(modality: str, scene: dict) -> str:
    """The caption a video, audio or audio-video scene's metadata tells (its only true caption)."""
    tone = lambda t: " ".join(["a", *([t["duration"]] if "duration" in t else []), t["pitch"], t["timbre"], "tone"])
    if modality == "audio":
        return " then ".join(tone(t) for t in sorted(scene["tones"], key=lambda t: t["onset"]))
    phrases, events = [], scene["events"]
    for k in sorted(range(len(events)), key=lambda k: events[k]["frames"]):  # tones[k] goes with events[k]
        event = events[k]
        verb = {"moves": "moves", "turns": "turns", "becomes": "becomes a"}[event["kind"]]
        phrase = f"a {event['size']} {event['colour']} {event['shape']} {verb} {event['value']}"
        phrases.append(phrase + (f" with {tone(scene['tones'][k])}" if modality == "audio_video" else ""))
    return " then ".join(phrases)


def named_items(modality: str, caption: str, words: list[int]) -> dict[str, set[int]]:
    """Which items the words at ``words`` name: {"picture": object / event indices (in mention order),
    "sound": tone indices}. An image relation word names both objects of its pair."""
    named = {"picture": set(), "sound": set()}
    if modality == "image":
        tokens = caption.split()
        for w in words:
            k = tokens[: w + 1].count("a") - 1  # "a" opens every object phrase, and only those
            named["picture"] |= {k, k + 1} if tokens[w] in {*RELATIONS, "of"} else {k}
        return named
    offset = 0
    for k, phrase in enumerate(caption.split(" then ")):
        tokens = phrase.split()
        split = tokens.index("with") if "with" in tokens else (0 if modality == "audio" else len(tokens))
        for w in words:
            if offset <= w < offset + len(tokens):
                named["picture" if w - offset < split else "sound"].add(k)
        offset += len(tokens) + 1
    return named
