"""Video-text benchmark: objects that move or change, one event after another.

A clip has ``min_events``..``max_events`` events, one per object (objects pairwise different),
told in temporal order and joined by "then":

    "a small red circle moves left then a large blue square turns green"

The clip's frames are split into equal windows, one per event: the event's object moves over
its window (first frame at the start, last frame at the end) or switches colour / shape halfway
through it; outside its window it stays still, as it was before or after. Objects' swept boxes
never overlap. A caption is true of a clip iff it tells exactly its events, so any edited caption
is false. Held-out colour-shape pairs are judged on what is visible: before and after a change.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .config import VideoTextConfig
from .dataset import VideoTextDataset, assign_caption_ids
from .grammar import COLOUR_RGB, DIRECTIONS, OPPOSITE, Event, NegativeType, Palette, Thing, join_phrases
from .image_text import object_radius
from .negatives import order_swaps, select_negatives, value_changes, with_item
from .render import Sprite, render_canvases
from .sampling import Pools, choose_heldout_pairs, draw_items, split_pool, split_streams

__all__ = [
    "colour_shape_pools", "event_frame_sprites", "event_proposals", "events_acceptable", "generate_video_split",
    "render_clips", "sample_event_scene", "shows_heldout",
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


def colour_shape_pools(config, palette: Palette) -> tuple[frozenset, Pools]:
    """The held-out colour-shape pairs of ``config`` and the object pools they induce."""
    heldout = choose_heldout_pairs(config.seed, "colour_shape", palette.colours, palette.shapes, config.heldout_pairs)
    things = (Thing(*v) for v in product(palette.sizes, palette.colours, palette.shapes))
    return heldout, split_pool(things, lambda thing: (thing.colour, thing.shape) in heldout)


def render_clips(all_metadata: list[list[dict]], config, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, T, H, W, 3): one grey level per clip, fresh noise per frame."""
    sprites = [frame for metadata in all_metadata for frame in event_frame_sprites(metadata, config.n_frames)]
    backgrounds = np.repeat(0.5 + rng.uniform(-config.background_jitter, config.background_jitter, len(all_metadata)),
                            config.n_frames)
    frames = render_canvases(sprites, backgrounds, config.image_size, config.noise_level, rng)
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
    captions, negatives, scenes = [], [], []
    for _ in range(config.split_size(split)):
        events, metadata = sample_event_scene(config, palette, pools, heldout, heldout_split, streams.scenes)
        proposals = {**event_proposals(events, palette), NegativeType.ORDER_SWAP: order_swaps(events)}
        captions.append(caption_text(events))
        negatives.append(select_negatives(events, proposals, caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"events": metadata, "heldout": shows_heldout(events, heldout)})
    frames = render_clips([s["events"] for s in scenes], config, streams.render)
    return VideoTextDataset(split=split, config=config.to_dict(), captions=captions, caption_ids=assign_caption_ids(captions),
                            negatives=negatives, scenes=scenes, frames=frames)
