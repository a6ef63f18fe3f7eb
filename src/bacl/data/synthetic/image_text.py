"""Image-text benchmark: still scenes of coloured shapes with pairwise relations.

A scene has ``min_objects``..``max_objects`` objects, pairwise different as (size, colour, shape),
mentioned in random order; consecutive mentions form pairs whose relation is read off the
geometry (the dominant axis of their offset), an odd last object stands alone:

    "a small red circle left of a large blue square and a large green star"

Relation words follow the picture, not the mention order, so "left of" and "right of" (and
"above" / "below") are equally frequent and no word order gives a negative away. Captions are
exhaustive (every object, each once), so a caption is true of a scene iff its objects are the
scene's objects and each stated relation holds (:func:`caption_holds`). Equivalent captions
("A left of B" / "B right of A", clauses in another order) share one canonical text.

Sibling variants edit the base scene in place: an attribute swap, binding swap or object
replacement restyles the objects it names where they stand (radius and colour keep their jitter),
a relation flip reverses the pair's offset (the two exchange places or, where that does not fit,
one moves to its mirror image through the other); nothing else moves.
"""

from __future__ import annotations

from functools import partial
from itertools import product
from typing import NamedTuple

import numpy as np

from .config import ImageTextConfig
from .dataset import ImageTextDataset, assign_caption_ids
from .grammar import COLOUR_RGB, OPPOSITE, NegativeType, Palette, Thing, join_phrases, relation_words
from .negatives import item_difference, select_negatives, value_changes, value_exchanges, with_item
from .render import Sprite, render_canvases
from .sampling import Pools, choose_heldout_pairs, draw_items, split_pool, split_streams
from .siblings import group_backgrounds, sample_groups, sibling_records

__all__ = [
    "ImageCaption", "caption_holds", "generate_image_split", "image_edit", "object_radius", "relation_holds",
    "relation_of", "restyled", "shifted_rgb",
]

_GAP = 2  # pixels of background between the boxes of any two objects
_CANDIDATES = 64  # positions tried at once per object (vectorised rejection sampling)
_RESTARTS = 200  # whole-scene retries before giving up (never reached at the default sizes)
_REPLACEMENTS_PER_OBJECT = 3  # random replacement objects proposed per mentioned object
_ATTRIBUTES = ("size", "colour", "shape")


class ImageCaption(NamedTuple):
    """``things`` in mention order; ``relations[p]`` relates ``things[2p]`` to ``things[2p + 1]``."""

    things: tuple[Thing, ...]
    relations: tuple[str, ...]

    def pairs(self) -> list[tuple[Thing, str, Thing]]:
        """(first, relation, second) of each described pair."""
        return [(self.things[2 * p], rel, self.things[2 * p + 1]) for p, rel in enumerate(self.relations)]

    def clauses(self) -> list[tuple]:
        """The pairs, then the odd last object alone as a 1-tuple."""
        return self.pairs() + [(self.things[-1],)] if len(self.things) % 2 else self.pairs()

    def words(self) -> list[str]:
        return join_phrases((_clause_words(clause) for clause in self.clauses()), "and")

    def canonical(self) -> str:
        """The text shared by all equivalent captions: relations as left of / above, clauses sorted."""
        normal = [(b, OPPOSITE[r], a) if r in ("right", "below") else (a, r, b) for a, r, b in self.pairs()]
        clauses = sorted(normal + self.clauses()[len(self.relations) :])
        return " ".join(join_phrases((_clause_words(clause) for clause in clauses), "and"))


def _clause_words(clause: tuple) -> list[str]:
    if len(clause) == 1:
        return clause[0].words()
    first, relation, second = clause
    return first.words() + relation_words(relation) + second.words()


def relation_of(a: tuple[int, int], b: tuple[int, int]) -> str:
    """Relation of centre ``a`` to centre ``b`` (image coordinates, y down) along the dominant axis."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "left" if dx > 0 else "right"
    return "above" if dy > 0 else "below"


def relation_holds(relation: str, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether "a <relation> b" is true: the offset points that way at least as much as across."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    along, across = {"left": (dx, dy), "right": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along > 0 and along >= abs(across)


def caption_holds(caption: ImageCaption, centres: dict[Thing, tuple[int, int]]) -> bool:
    """Whether ``caption`` is true of a scene whose (distinct) objects sit at ``centres``."""
    if len(set(caption.things)) != len(caption.things) or set(caption.things) != set(centres):
        return False
    return all(relation_holds(r, centres[a], centres[b]) for a, r, b in caption.pairs())


def _other(rng: np.random.Generator, values: tuple[str, ...], current: str) -> str:
    """A uniformly drawn value of ``values`` other than ``current``."""
    index = int(rng.integers(len(values) - 1))
    return values[index + (index >= values.index(current))]


def _radius_fraction(config, size: str) -> float:
    return config.small_radius if size == "small" else config.large_radius


def object_radius(config, size: str, rng: np.random.Generator) -> int:
    """Radius in pixels of a "small" or "large" object, jittered by ``config.radius_jitter``."""
    jitter = rng.uniform(-config.radius_jitter, config.radius_jitter)
    return max(2, round(_radius_fraction(config, size) * config.image_size * (1 + jitter)))


def shifted_rgb(rgb, colour: str, new_colour: str) -> list[int]:
    """``rgb`` (``colour`` plus its jitter) moved to ``new_colour`` with the same jitter."""
    return np.clip(np.add(COLOUR_RGB[new_colour], np.subtract(rgb, COLOUR_RGB[colour])), 0, 255).astype(int).tolist()


def restyled(obj: dict, thing: Thing, config) -> dict:
    """Scene metadata ``obj`` of an object, drawn as ``thing`` instead where it stands: another size
    scales the radius (keeping its jitter), another colour keeps the colour's jitter."""
    out = {**obj, **thing._asdict()}
    if thing.size != obj["size"]:
        ratio = _radius_fraction(config, thing.size) / _radius_fraction(config, obj["size"])
        out["radius"] = max(2, round(obj["radius"] * ratio))
    if thing.colour != obj["colour"]:
        out["rgb"] = shifted_rgb(obj["rgb"], obj["colour"], thing.colour)
    return out


def _place(rng: np.random.Generator, radii: list[int], size: int, margin: float) -> list[tuple[int, int]]:
    """Centres for objects of ``radii``: inside the canvas, boxes apart by ``_GAP``, and each pair
    (0, 1), (2, 3) offset along one axis at least ``margin`` times as much as along the other."""
    for _ in range(_RESTARTS):
        centres: list[tuple[int, int]] = []
        for i, r in enumerate(radii):
            x, y = rng.integers(r, size - r, _CANDIDATES), rng.integers(r, size - r, _CANDIDATES)
            ok = np.ones(_CANDIDATES, dtype=bool)
            for (px, py), pr in zip(centres, radii):
                ok &= (np.abs(x - px) >= r + pr + _GAP) | (np.abs(y - py) >= r + pr + _GAP)
            if i % 2:  # second of a described pair: its relation must be clear
                dx, dy = np.abs(x - centres[i - 1][0]), np.abs(y - centres[i - 1][1])
                ok &= np.maximum(dx, dy) >= margin * np.minimum(dx, dy)
            hits = np.flatnonzero(ok)
            if not hits.size:
                break
            centres.append((int(x[hits[0]]), int(y[hits[0]])))
        else:
            return centres
    raise RuntimeError(f"could not place {len(radii)} objects on a {size}-px canvas; lower the radii or max_objects")


def _fits(objects: list[dict], size: int) -> bool:
    """Whether every object lies inside the canvas with its box ``_GAP`` apart from the others' (as
    :func:`_place` leaves them)."""
    for i, a in enumerate(objects):
        r = a["radius"]
        if not (r <= a["x"] < size - r and r <= a["y"] < size - r):
            return False
        for b in objects[:i]:
            apart = r + b["radius"] + _GAP
            if abs(a["x"] - b["x"]) < apart and abs(a["y"] - b["y"]) < apart:
                return False
    return True


def _centres(objects: list[dict]) -> dict[Thing, tuple[int, int]]:
    return {Thing(o["size"], o["colour"], o["shape"]): (o["x"], o["y"]) for o in objects}


def _flips(a: dict, b: dict) -> list[tuple[dict, dict]]:
    """Placements of a described pair with its relation reversed (offset negated, margin kept): the two
    exchange places, or one of them moves to its mirror image through the other."""
    mirror = lambda o, centre: {**o, "x": 2 * centre["x"] - o["x"], "y": 2 * centre["y"] - o["y"]}
    return [({**a, "x": b["x"], "y": b["y"]}, {**b, "x": a["x"], "y": a["y"]}), (a, mirror(b, a)), (mirror(a, b), b)]


def _edited_scene(objects: list[dict], caption: ImageCaption, candidate: ImageCaption, config) -> list[dict] | None:
    """``objects`` (the scene of ``caption``) edited so that ``candidate`` describes it: each changed
    object restyled in place, each flipped relation's pair placed by the first of :func:`_flips`
    that fits; nothing else moves. None if no placement fits the canvas."""
    things = zip(objects, caption.things, candidate.things)
    placements = [[o if old == new else restyled(o, new, config) for o, old, new in things]]
    for p, (old, new) in enumerate(zip(caption.relations, candidate.relations)):
        if old != new:
            placements = [[*e[: 2 * p], *pair, *e[2 * p + 2 :]] for e in placements for pair in _flips(e[2 * p], e[2 * p + 1])]
    return next((edited for edited in placements if _fits(edited, config.image_size)), None)


def image_edit(a: ImageCaption, b: ImageCaption) -> NegativeType | None:
    """The boundary edit that turns caption ``a`` into ``b`` (same mention order), or None."""
    if a.things == b.things:
        flipped = [p for p, (r, s) in enumerate(zip(a.relations, b.relations)) if r != s]
        single_flip = len(flipped) == 1 and b.relations[flipped[0]] == OPPOSITE[a.relations[flipped[0]]]
        return NegativeType.RELATION_FLIP if single_flip else None
    difference = item_difference(a.things, b.things)
    if a.relations != b.relations or difference is None:
        return None
    if difference.kind == "change" and len(difference.fields) == 1:
        return NegativeType.ATTRIBUTE_SWAP
    if difference.kind == "change":
        return NegativeType.OBJECT_REPLACEMENT if {"colour", "shape"} <= set(difference.fields) else None
    # An exchange, or two objects that differ in one attribute trading places (the same caption).
    return NegativeType.BINDING_SWAP if len(difference.fields) == 1 else None


def _sample_scene(config: ImageTextConfig, pools: Pools, heldout_split: bool, rng: np.random.Generator):
    """One scene: its true caption and JSON metadata of the objects, in mention order."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    things = draw_items(rng, pools, count, heldout_split, distinct=True)
    radii = [object_radius(config, thing.size, rng) for thing in things]
    centres = _place(rng, radii, config.image_size, config.relation_margin)
    relations = tuple(relation_of(centres[2 * p], centres[2 * p + 1]) for p in range(count // 2))
    jitter = rng.uniform(-config.colour_jitter, config.colour_jitter, (count, 3)) * 255.0
    objects = [
        {**thing._asdict(), "x": x, "y": y, "radius": r,
         "rgb": np.clip(np.rint(np.add(COLOUR_RGB[thing.colour], j)), 0, 255).astype(int).tolist()}
        for thing, (x, y), r, j in zip(things, centres, radii, jitter)
    ]
    return ImageCaption(tuple(things), relations), objects


def _proposals(caption: ImageCaption, palette: Palette, rng: np.random.Generator) -> dict:
    things, relations = caption.things, caption.relations
    as_caption = lambda variants: [ImageCaption(t, relations) for t in variants]
    replacements = [
        with_item(things, i, Thing(str(rng.choice(palette.sizes)), _other(rng, palette.colours, thing.colour),
                                   _other(rng, palette.shapes, thing.shape)))
        for i, thing in enumerate(things) for _ in range(_REPLACEMENTS_PER_OBJECT)
    ]
    flips = [ImageCaption(things, with_item(relations, p, OPPOSITE[r])) for p, r in enumerate(relations)]
    return {
        NegativeType.ATTRIBUTE_SWAP: as_caption(v for f in _ATTRIBUTES for v in value_changes(things, f, palette.values(f))),
        NegativeType.BINDING_SWAP: as_caption(v for f in _ATTRIBUTES for v in value_exchanges(things, f)),
        NegativeType.RELATION_FLIP: flips,
        NegativeType.OBJECT_REPLACEMENT: as_caption(replacements),
    }


def _acceptable(candidate: ImageCaption, centres: dict, is_heldout, heldout_split: bool) -> bool:
    """A negative must name different objects, be false for the scene and, outside the held-out
    split, show no held-out pair."""
    if not heldout_split and any(map(is_heldout, candidate.things)):
        return False
    return len(set(candidate.things)) == len(candidate.things) and not caption_holds(candidate, centres)


def generate_image_split(config: ImageTextConfig, split: str) -> ImageTextDataset:
    """One split of the image-text benchmark (deterministic in ``config`` and ``split``)."""
    if not isinstance(config, ImageTextConfig):
        raise ValueError(f"config must be an ImageTextConfig, got {type(config).__name__}")
    streams = split_streams(config.seed, "image", split)
    palette = config.palette
    heldout = choose_heldout_pairs(config.seed, "colour_shape", palette.colours, palette.shapes, config.heldout_pairs)
    is_heldout = lambda thing: (thing.colour, thing.shape) in heldout
    pools = split_pool((Thing(*v) for v in product(palette.sizes, palette.colours, palette.shapes)), is_heldout)
    heldout_split = split == "test_heldout"
    acceptable = partial(_acceptable, is_heldout=is_heldout, heldout_split=heldout_split)

    def realise(caption: ImageCaption, objects: list[dict], candidate: ImageCaption) -> list[dict] | None:
        if not acceptable(candidate, _centres(objects)) or (heldout_split and not any(map(is_heldout, candidate.things))):
            return None  # a variant is a negative of its base, and in test_heldout it keeps a held-out pair
        return _edited_scene(objects, caption, candidate, config)

    sample_base = lambda: _sample_scene(config, pools, heldout_split, streams.scenes)
    members = sample_groups(config.split_size(split), config, sample_base, lambda caption, rng: _proposals(caption, palette, rng),
                            realise, ImageCaption.canonical, streams.scenes)
    captions, canonical, negatives, scenes, sprites = [], [], [], [], []
    for member in members:
        caption, objects = member.structure, member.scene
        captions.append(" ".join(caption.words()))
        canonical.append(caption.canonical())
        negatives.append(select_negatives(caption, _proposals(caption, palette, streams.negatives), ImageCaption.words,
                                          ImageCaption.canonical, partial(acceptable, centres=_centres(objects)),
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"objects": objects, "relations": list(caption.relations), "canonical_caption": canonical[-1],
                       "heldout": any(map(is_heldout, caption.things)), "edit": member.edit and member.edit.value})
        sprites.append([Sprite(o["shape"], o["x"], o["y"], o["radius"], tuple(o["rgb"])) for o in objects])
    groups = np.array([member.group for member in members], dtype=np.int64)
    siblings = sibling_records(members, ImageCaption.words, image_edit,
                               lambda caption, objects: caption_holds(caption, _centres(objects)))
    # One grey level and one noise pattern per group: siblings' pictures differ only where their scenes do.
    backgrounds = group_backgrounds(groups, config.background_jitter, streams.render)
    images = render_canvases(sprites, backgrounds, config.image_size, config.noise_level, streams.render,
                             noise_keys=groups)
    return ImageTextDataset(split=split, config=config.to_dict(), captions=captions,
                            caption_ids=assign_caption_ids(canonical), negatives=negatives, scenes=scenes, groups=groups, siblings=siblings, images=images)
