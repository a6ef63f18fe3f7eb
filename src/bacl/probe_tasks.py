"""Probe tasks of the synthetic benchmarks: scene descriptions -> :class:`bacl.probe.ProbeSpec`.

Each negative type gets the readout and the comparisons that decide it, grounded the way a
caption grounds it (which tokens belong to the named object, event or tone), never by giving the
probe a token's position:

* image tokens (source "image", a (rows, cols) patch grid): an object is the token of the patch
  under its centre. attribute_swap: its size / colour / shape against every other value;
  binding_swap: two objects' differing values exchanged (two terms); object_replacement: the
  object against every other (size, colour != , shape !=); relation_flip: the 4-way relation
  read from (first-named object, second-named object), against the opposite relation.
* video frame embeddings (source "frames", one token per frame): an event is the mean of the
  frames of its time window. attribute_swap: the acting object's attributes; change_swap: the
  end colour / shape against every other valid end; order_swap: "named first comes first", read
  from (event, event) in caption order against the swapped order. direction_flip has two parts,
  both needed (a type "X/part" is a part of X, see :func:`bacl.probe.probe_summary`): the
  direction read from (first frame, last frame) of the move, in time order, against its
  opposite; and "time": which of the two frames comes first, read from their content as
  order_swap is (a frame token is a set member: nothing else tells the reader which is which).
* audio tokens (source "audio", (mel rows, time columns)): a tone is the mean of the tokens in
  the time columns it sounds in. pitch_swap / timbre_swap: against every other value;
  order_swap: as for video, on (tone, tone).
* audio-video: the video types on the frames, pitch / timbre on the audio; binding_swap (tones
  exchanged between events, whose order the caption states) is the order of the two tones;
  order_swap reads (frames, tone) of each item.
"""

from __future__ import annotations

from itertools import combinations, product

import numpy as np

from .data.synthetic.grammar import DIRECTIONS, OPPOSITE, RELATIONS
from .probe import ProbeSpec, ProbeTask, Terms

__all__ = ["probe_spec"]

FIELDS = ("size", "colour", "shape")


class _Builder:
    """Collects examples per task and comparisons per negative type, then packs them as arrays."""

    def __init__(self):
        self.tasks: dict[str, dict] = {}
        self.terms: dict[str, list[tuple]] = {}
        self.samples: dict[str, list[int]] = {}

    def example(self, task: str, classes: int, label: int, sample: int, slots: list[tuple[str, list[int]]]) -> int:
        entry = self.tasks.setdefault(task, {"classes": classes, "labels": [], "sample": [], "slots": []})
        entry["labels"].append(label)
        entry["sample"].append(sample)
        entry["slots"].append(slots)
        return len(entry["labels"]) - 1

    def compare(self, kind: str, sample: int, terms: list[tuple[str, int, int, int]]) -> None:
        """One comparison: terms (task, example, true class, alternative class)."""
        comparisons = self.samples.setdefault(kind, [])
        self.terms.setdefault(kind, []).extend((task, len(comparisons), *rest) for task, *rest in terms)
        comparisons.append(sample)

    def build(self) -> ProbeSpec:
        tasks = {}
        for name, entry in self.tasks.items():
            slots = []
            for s, source in enumerate(entry["slots"][0]):
                lists = [example[s][1] for example in entry["slots"]]
                width = max(map(len, lists))
                index = np.array([tokens + [0] * (width - len(tokens)) for tokens in lists])
                weight = np.array([[1 / len(tokens)] * len(tokens) + [0.0] * (width - len(tokens)) for tokens in lists])
                slots.append((source[0], index, weight))
            tasks[name] = ProbeTask(entry["classes"], np.array(entry["labels"]), np.array(entry["sample"]), slots)
        types = {}
        for kind, rows in self.terms.items():
            types[kind] = []
            for task in dict.fromkeys(row[0] for row in rows):
                mine = np.array([row[1:] for row in rows if row[0] == task])
                types[kind].append(Terms(task, *mine.T))
        return ProbeSpec(tasks, types, {k: np.array(v) for k, v in self.samples.items()})


def _attributes(b: _Builder, kind_values: dict, thing: dict, sample: int, slots: list) -> dict[str, tuple[int, int]]:
    """Examples of an object's size / colour / shape: field -> (example, label)."""
    out = {}
    for field in FIELDS:
        values = kind_values[field]
        out[field] = (b.example(field, len(values), values.index(thing[field]), sample, slots),
                      values.index(thing[field]))
    return out


def _against_every_value(b: _Builder, kind: str, task: str, example: int, label: int, count: int, sample: int,
                         excluded: tuple[int, ...] = ()) -> None:
    for alt in range(count):
        if alt != label and alt not in excluded:
            b.compare(kind, sample, [(task, example, label, alt)])


def _order(b: _Builder, kind: str, task: str, first: list, second: list, sample: int) -> None:
    """Named-first-comes-first from (first, second) in caption order, against the swapped order."""
    forward = b.example(task, 2, 1, sample, first + second)
    backward = b.example(task, 2, 0, sample, second + first)
    b.compare(kind, sample, [(task, forward, 1, 0), (task, backward, 0, 1)])


def _patch(x: float, y: float, image_size: int, grid: tuple[int, int]) -> int:
    rows, cols = grid
    return min(int(y * rows / image_size), rows - 1) * cols + min(int(x * cols / image_size), cols - 1)


def _image(b: _Builder, scenes: list[dict], palette, image_size: int, grid: tuple[int, int]) -> None:
    values = {"size": palette.sizes, "colour": palette.colours, "shape": palette.shapes}
    for i, scene in enumerate(scenes):
        objects = scene["objects"]
        slots = [[("image", [_patch(o["x"], o["y"], image_size, grid)])] for o in objects]
        examples = [_attributes(b, values, o, i, slot) for o, slot in zip(objects, slots)]
        for ex in examples:
            for field, (example, label) in ex.items():
                _against_every_value(b, "attribute_swap", field, example, label, len(values[field]), i)
            labels = {field: label for field, (_, label) in ex.items()}
            for alt in product(*(range(len(values[f])) for f in FIELDS)):
                if alt[1] != labels["colour"] and alt[2] != labels["shape"]:
                    b.compare("object_replacement", i, [(f, ex[f][0], ex[f][1], a) for f, a in zip(FIELDS, alt)
                                                        if a != ex[f][1]])
        for first, second in combinations(examples, 2):
            for field in FIELDS:
                (e1, l1), (e2, l2) = first[field], second[field]
                if l1 != l2:
                    b.compare("binding_swap", i, [(field, e1, l1, l2), (field, e2, l2, l1)])
        for p, relation in enumerate(scene["relations"]):
            label = RELATIONS.index(relation)
            example = b.example("relation", len(RELATIONS), label, i, slots[2 * p] + slots[2 * p + 1])
            b.compare("relation_flip", i, [("relation", example, label, RELATIONS.index(OPPOSITE[relation]))])


def _window(event: dict) -> list[tuple[str, list[int]]]:
    return [("frames", list(range(*event["frames"])))]


def _video(b: _Builder, scenes: list[dict], palette, with_order: bool) -> None:
    values = {"size": palette.sizes, "colour": palette.colours, "shape": palette.shapes}
    for i, scene in enumerate(scenes):
        for event in scene["events"]:
            for field, (example, label) in _attributes(b, values, event, i, _window(event)).items():
                _against_every_value(b, "attribute_swap", field, example, label, len(values[field]), i)
            if event["kind"] == "moves":  # where the object is at the start and the end, and which is which
                start, end = [("frames", [event["frames"][0]])], [("frames", [event["frames"][1] - 1])]
                label = DIRECTIONS.index(event["value"])
                example = b.example("direction", len(DIRECTIONS), label, i, start + end)
                b.compare("direction_flip", i, [("direction", example, label, DIRECTIONS.index(OPPOSITE[event["value"]]))])
                _order(b, "direction_flip/time", "frame order", start, end, i)
            else:  # a change may not end where it starts, so the start value is no alternative
                field = "colour" if event["kind"] == "turns" else "shape"
                ends, task = values[field], f"end {field}"
                example = b.example(task, len(ends), ends.index(event["value"]), i, _window(event))
                _against_every_value(b, "change_swap", task, example, ends.index(event["value"]), len(ends), i,
                                     (ends.index(event[field]),))
        if with_order:
            for first, second in combinations(scene["events"], 2):
                _order(b, "order_swap", "order", _window(first), _window(second), i)


def _tone_slot(tone: dict, n_samples: int, grid: tuple[int, int]) -> list[tuple[str, list[int]]]:
    """The tokens of the time columns whose centres the tone covers (else the one at its middle)."""
    rows, cols = grid
    start, stop = tone["onset"] / n_samples, (tone["onset"] + tone["length"]) / n_samples
    columns = [c for c in range(cols) if start <= (c + 0.5) / cols < stop]
    columns = columns or [min(int((start + stop) / 2 * cols), cols - 1)]
    return [("audio", [r * cols + c for r in range(rows) for c in columns])]


def _tones(b: _Builder, scenes: list[dict], palette, n_samples: int, grid: tuple[int, int], order_kind: str) -> None:
    values = {"pitch": palette.pitches, "timbre": palette.timbres}
    for i, scene in enumerate(scenes):
        tones = scene["tones"]
        for tone in tones:
            for field, kind in (("pitch", "pitch_swap"), ("timbre", "timbre_swap")):
                label = values[field].index(tone[field])
                example = b.example(field, len(values[field]), label, i, _tone_slot(tone, n_samples, grid))
                _against_every_value(b, kind, field, example, label, len(values[field]), i)
        for first, second in combinations(tones, 2):
            if [first.get(k) for k in ("pitch", "timbre", "duration")] != [second.get(k) for k in ("pitch", "timbre", "duration")]:
                _order(b, order_kind, "tone order", _tone_slot(first, n_samples, grid),
                       _tone_slot(second, n_samples, grid), i)


def probe_spec(modality: str, scenes: list[dict], palette, grids: dict[str, tuple[int, int]],
               image_size: int | None = None, n_samples: int | None = None) -> ProbeSpec:
    """The probe of one synthetic benchmark. palette: its config's :class:`Palette`; grids: the
    token grid (rows, cols) of the "image" and / or "audio" tower; image_size: the scenes' canvas
    in pixels (image); n_samples: samples per clip (audio, audio-video)."""
    b = _Builder()
    if modality == "image":
        _image(b, scenes, palette, image_size, grids["image"])
    elif modality == "video":
        _video(b, scenes, palette, with_order=True)
    elif modality == "audio":
        _tones(b, scenes, palette, n_samples, grids["audio"], "order_swap")
    elif modality == "audio_video":
        _video(b, scenes, palette, with_order=False)
        _tones(b, scenes, palette, n_samples, grids["audio"], "binding_swap")
        for i, scene in enumerate(scenes):
            items = [_window(e) + _tone_slot(t, n_samples, grids["audio"]) for e, t in zip(scene["events"], scene["tones"])]
            for first, second in combinations(items, 2):
                _order(b, "order_swap", "order", first, second, i)
    else:
        raise ValueError(f"modality={modality!r} is not one of image, video, audio, audio_video")
    if not b.terms:
        raise ValueError("scenes gave no comparison to probe (empty, or no scene with a boundary edit)")
    return b.build()
