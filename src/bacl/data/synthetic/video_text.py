"""Video-text benchmark: objects that move or change, one event after another.

A clip has ``min_events``..``max_events`` events, one per object (objects pairwise different),
told in temporal order and joined by "then":

    "a small red circle moves left then a large blue square turns green"

The clip's frames are split into equal windows, one per event: the event's object moves over
its window (first frame at the start, last frame at the end) or switches colour / shape halfway
through it; outside its window it stays still, as it was before or after. Objects' swept boxes
never overlap. A caption is true of a clip iff it tells exactly its events, so any edited caption
is false. Held-out colour-shape pairs are judged on what is visible: before and after a change.

Sibling variants edit the base clip where the edit says: an attribute swap restyles the object,
a direction flip runs the move's path backwards (same swept box), a change swap ends the change in
another value, an order swap exchanges the time windows of two events (objects and paths stay).
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .config import VideoTextConfig
from .dataset import VideoTextDataset, assign_caption_ids
from .grammar import COLOUR_RGB, DIRECTIONS, OPPOSITE, Event, NegativeType, Palette, Thing, join_phrases
from .image_text import object_radius, restyled, shifted_rgb
from .negatives import item_difference, order_swaps, select_negatives, sequence_edit, value_changes, with_item
from .render import Sprite, render_canvases
from .sampling import Pools, choose_heldout_pairs, draw_items, split_pool, split_streams
from .siblings import group_backgrounds, sample_groups, sibling_records

__all__ = [
    "colour_shape_pools", "edited_events", "event_edit", "event_frame_sprites", "event_proposals", "events_acceptable",
    "generate_video_split", "render_clips", "sample_event_scene", "shows_heldout", "video_proposals",
]

_GAP = 2  # pixels between the swept boxes of two objects
_CANDIDATES = 64
_RESTARTS = 200
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_ATTRIBUTES = ("size", "colour", "shape")


def caption_words(events: tuple[Event, ...]) -> list[str]:
    return join_phrases((event.words() for event in events), "then")


def caption_text(events: tuple[Event, ...]) -> str:
    """Events have one wording each, so the caption text is its own canonical form."""
    return " ".join(caption_words(events))


def _visible_pairs(event: Event) -> set[tuple[str, str]]:
    return {(event.thing.colour, event.thing.shape), (event.end_thing().colour, event.end_thing().shape)}


def shows_heldout(events: tuple[Event, ...], heldout: frozenset) -> bool:
    """Whether any object shows a held-out colour-shape pair, before or after its change."""
    return any(_visible_pairs(event) & heldout for event in events)


def events_acceptable(events: tuple[Event, ...], heldout: frozenset, heldout_split: bool) -> bool:
    """Well-formed (changes change something, objects differ) and, outside the held-out split,
    showing no held-out pair."""
    if not all(event.is_valid() for event in events) or len({e.thing for e in events}) != len(events):
        return False
    return heldout_split or not shows_heldout(events, heldout)


def _choose_event(thing: Thing, config, palette: Palette, allowed, rng: np.random.Generator) -> Event:
    """A random event for ``thing`` whose end state passes ``allowed((colour, shape))``."""
    if rng.random() >= config.move_probability:
        kind = "turns" if rng.random() < 0.5 else "becomes"
        ends = palette.colours if kind == "turns" else palette.shapes
        options = [v for v in ends if Event(thing, kind, v).is_valid() and allowed(_visible_pairs(Event(thing, kind, v)))]
        if options:
            return Event(thing, kind, options[int(rng.integers(len(options)))])
    return Event(thing, "moves", DIRECTIONS[int(rng.integers(len(DIRECTIONS)))])


def _place_swept(rng: np.random.Generator, radii: list[int], steps: list[tuple[int, int]], size: int):
    """(start, end) centres such that every object's box swept from start to end stays inside the
    canvas and apart from every other's by ``_GAP``."""
    for _ in range(_RESTARTS):
        boxes, placed = [], []
        for r, (sx, sy) in zip(radii, steps):
            low_x, high_x = r + max(0, -sx), size - r - max(0, sx)  # start range keeping the end inside
            low_y, high_y = r + max(0, -sy), size - r - max(0, sy)
            x, y = rng.integers(low_x, high_x, _CANDIDATES), rng.integers(low_y, high_y, _CANDIDATES)
            x0, x1 = np.minimum(x, x + sx) - r, np.maximum(x, x + sx) + r
            y0, y1 = np.minimum(y, y + sy) - r, np.maximum(y, y + sy) + r
            ok = np.ones(_CANDIDATES, dtype=bool)
            for bx0, bx1, by0, by1 in boxes:
                ok &= (x1 + _GAP <= bx0) | (bx1 + _GAP <= x0) | (y1 + _GAP <= by0) | (by1 + _GAP <= y0)
            hits = np.flatnonzero(ok)
            if not hits.size:
                break
            k = hits[0]
            boxes.append((x0[k], x1[k], y0[k], y1[k]))
            placed.append(((int(x[k]), int(y[k])), (int(x[k] + sx), int(y[k] + sy))))
        else:
            return placed
    raise RuntimeError(f"could not place {len(radii)} moving objects on a {size}-px canvas; lower move_distance or the radii")


def sample_event_scene(config, palette: Palette, pools: Pools, heldout: frozenset, heldout_split: bool, rng: np.random.Generator):
    """A clip's events and per-event JSON metadata (object, radius, colours, start/end centres, frames)."""
    count = int(rng.integers(config.min_events, config.max_events + 1))
    things = draw_items(rng, pools, count, heldout_split, distinct=True)
    allowed = lambda pairs: heldout_split or not (pairs & heldout)
    events = tuple(_choose_event(thing, config, palette, allowed, rng) for thing in things)
    radii = [object_radius(config, thing.size, rng) for thing in things]
    distance = round(config.move_distance * config.image_size)
    steps = [tuple(distance * s for s in _STEP[e.value]) if e.kind == "moves" else (0, 0) for e in events]
    placed = _place_swept(rng, radii, steps, config.image_size)
    jitter = rng.uniform(-config.colour_jitter, config.colour_jitter, (count, 3)) * 255.0
    bounds = np.linspace(0, config.n_frames, count + 1).round().astype(int)
    rgb = lambda colour, j: np.clip(np.rint(np.add(COLOUR_RGB[colour], j)), 0, 255).astype(int).tolist()
    metadata = [
        {**event.thing._asdict(), "kind": event.kind, "value": event.value, "radius": r,
         "rgb": rgb(event.thing.colour, j), "end_rgb": rgb(event.end_thing().colour, j), "end_shape": event.end_thing().shape,
         "start": list(start), "end": list(end), "frames": [int(bounds[i]), int(bounds[i + 1])]}
        for i, (event, r, (start, end), j) in enumerate(zip(events, radii, placed, jitter))
    ]
    return events, metadata


def event_frame_sprites(metadata: list[dict], n_frames: int) -> list[list[Sprite]]:
    """Per frame, the sprites of every event's object in its state at that frame."""
    frames = []
    for f in range(n_frames):
        sprites = []
        for m in metadata:
            f0, f1 = m["frames"]
            progress = min(max((f - f0) / max(f1 - f0 - 1, 1), 0.0), 1.0)  # 0 before / at start, 1 at end / after
            changed = f >= f0 + (f1 - f0) / 2  # a change shows from the middle of its window on
            x, y = (round(a + progress * (b - a)) for a, b in zip(m["start"], m["end"]))
            shape, colour = (m["end_shape"], m["end_rgb"]) if changed else (m["shape"], m["rgb"])
            sprites.append(Sprite(shape, x, y, m["radius"], tuple(colour)))
        frames.append(sprites)
    return frames


def event_proposals(events: tuple[Event, ...], palette: Palette) -> dict[NegativeType, list[tuple[Event, ...]]]:
    """Attribute swaps of the objects, direction flips of moves and end-value swaps of changes."""
    things = [event.thing for event in events]
    with_things = lambda variants: [tuple(e._replace(thing=t) for e, t in zip(events, v)) for v in variants]
    changes = []
    for i, event in enumerate(events):
        if event.kind != "moves":
            ends = palette.colours if event.kind == "turns" else palette.shapes
            changes += [with_item(events, i, event._replace(value=v)) for v in ends if v != event.value]
    return {
        NegativeType.ATTRIBUTE_SWAP: with_things(v for f in _ATTRIBUTES for v in value_changes(things, f, palette.values(f))),
        NegativeType.DIRECTION_FLIP: [with_item(events, i, e._replace(value=OPPOSITE[e.value]))
                                      for i, e in enumerate(events) if e.kind == "moves"],
        NegativeType.CHANGE_SWAP: changes,
    }


def _event_change(old: Event, new: Event, fields: tuple[str, ...]) -> NegativeType | None:
    if fields == ("thing",):
        return NegativeType.ATTRIBUTE_SWAP if len(item_difference((old.thing,), (new.thing,)).fields) == 1 else None
    if fields != ("value",):
        return None
    if old.kind == "moves":
        return NegativeType.DIRECTION_FLIP if new.value == OPPOSITE[old.value] else None
    return NegativeType.CHANGE_SWAP


def event_edit(a: tuple[Event, ...], b: tuple[Event, ...]) -> NegativeType | None:
    """The boundary edit that turns the events ``a`` into ``b``, or None."""
    return sequence_edit(a, b, _event_change)


def _event_state(m: dict, old: Event, new: Event, config) -> dict:
    """Metadata ``m`` of event ``old`` made to show ``new`` in the same place and window."""
    if new.kind != old.kind or (new.kind == "moves" and new.value not in (old.value, OPPOSITE[old.value])):
        raise ValueError(f"no scene edit turns {old} into {new}")
    out = restyled(m, new.thing, config) if new.thing != old.thing else dict(m)
    out.update(kind=new.kind, value=new.value, end_shape=new.end_thing().shape,
               end_rgb=shifted_rgb(out["rgb"], new.thing.colour, new.end_thing().colour))
    if new.kind == "moves" and new.value != old.value:  # a reversed move: same path and swept box
        out["start"], out["end"] = m["end"], m["start"]
    return out


def _swept_fit(metadata: list[dict], size: int) -> bool:
    """Whether every object's swept box lies inside the canvas, ``_GAP`` apart from the others'."""
    boxes = []
    for m in metadata:
        (x0, y0), (x1, y1), r = m["start"], m["end"], m["radius"]
        box = (min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r)
        if box[0] < 0 or box[2] < 0 or box[1] >= size or box[3] >= size:
            return False
        if any(not (box[1] + _GAP <= b[0] or b[1] + _GAP <= box[0] or box[3] + _GAP <= b[2] or b[3] + _GAP <= box[2])
               for b in boxes):
            return False
        boxes.append(box)
    return True


def edited_events(events: tuple[Event, ...], metadata: list[dict], candidate: tuple[Event, ...], config) -> list[dict] | None:
    """The clip ``metadata`` of ``events`` edited so that ``candidate`` tells it: two events told in
    the other order exchange their time windows, any other edit changes the events it names in place;
    None if an object no longer fits."""
    difference = item_difference(events, candidate)
    if difference is not None and difference.kind == "order":
        i, j = difference.positions
        edited = list(metadata)
        edited[i] = {**metadata[j], "frames": metadata[i]["frames"]}
        edited[j] = {**metadata[i], "frames": metadata[j]["frames"]}
        return edited
    edited = [m if old == new else _event_state(m, old, new, config) for m, old, new in zip(metadata, events, candidate)]
    return edited if _swept_fit(edited, config.image_size) else None


def video_proposals(events: tuple[Event, ...], palette: Palette) -> dict[NegativeType, list[tuple[Event, ...]]]:
    """Every one-edit proposal of the video benchmark: :func:`event_proposals` and order swaps."""
    return {**event_proposals(events, palette), NegativeType.ORDER_SWAP: order_swaps(events)}


def colour_shape_pools(config, palette: Palette) -> tuple[frozenset, Pools]:
    """The held-out colour-shape pairs of ``config`` and the object pools they induce."""
    heldout = choose_heldout_pairs(config.seed, "colour_shape", palette.colours, palette.shapes, config.heldout_pairs)
    things = (Thing(*v) for v in product(palette.sizes, palette.colours, palette.shapes))
    return heldout, split_pool(things, lambda thing: (thing.colour, thing.shape) in heldout)


def render_clips(all_metadata: list[list[dict]], config, rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """uint8 (N, T, H, W, 3): one grey level per group, fresh noise per frame, the same for every clip
    of a group (siblings differ only where their events do)."""
    sprites = [frame for metadata in all_metadata for frame in event_frame_sprites(metadata, config.n_frames)]
    backgrounds = np.repeat(group_backgrounds(groups, config.background_jitter, rng), config.n_frames)
    keys = (np.asarray(groups)[:, None] * config.n_frames + np.arange(config.n_frames)).reshape(-1)
    frames = render_canvases(sprites, backgrounds, config.image_size, config.noise_level, rng, noise_keys=keys)
    return frames.reshape(len(all_metadata), config.n_frames, *frames.shape[1:])


def generate_video_split(config: VideoTextConfig, split: str) -> VideoTextDataset:
    """One split of the video-text benchmark (deterministic in ``config`` and ``split``)."""
    if not isinstance(config, VideoTextConfig):
        raise ValueError(f"config must be a VideoTextConfig, got {type(config).__name__}")
    streams = split_streams(config.seed, "video", split)
    palette = config.palette
    heldout, pools = colour_shape_pools(config, palette)
    heldout_split = split == "test_heldout"
    acceptable = lambda events: events_acceptable(events, heldout, heldout_split)

    def realise(events: tuple[Event, ...], metadata: list[dict], candidate: tuple[Event, ...]) -> list[dict] | None:
        if not acceptable(candidate) or (heldout_split and not shows_heldout(candidate, heldout)):
            return None  # in test_heldout a variant keeps a held-out pair
        return edited_events(events, metadata, candidate, config)

    members = sample_groups(config.split_size(split), config,
                            lambda: sample_event_scene(config, palette, pools, heldout, heldout_split, streams.scenes),
                            lambda events, rng: video_proposals(events, palette), realise, caption_text, streams.scenes)
    captions, negatives, scenes = [], [], []
    for member in members:
        events = member.structure
        captions.append(caption_text(events))
        negatives.append(select_negatives(events, video_proposals(events, palette), caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"events": member.scene, "heldout": shows_heldout(events, heldout),
                       "edit": member.edit and member.edit.value})
    groups = np.array([member.group for member in members], dtype=np.int64)
    frames = render_clips([s["events"] for s in scenes], config, streams.render, groups)
    return VideoTextDataset(split=split, config=config.to_dict(), captions=captions, caption_ids=assign_caption_ids(captions),
                            negatives=negatives, scenes=scenes, groups=groups,
                            siblings=sibling_records(members, caption_words, event_edit), frames=frames)
