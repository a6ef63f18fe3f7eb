"""Audio-video-text benchmark: every visual event comes with a tone played during it.

    "a small red circle moves left with a high pure tone then a large blue square turns green with a low bright tone"

The frames are those of the video benchmark; the sound track has one tone per event, inside
the event's time window (frames and samples cover the same ``clip_seconds``). Negatives edit the
picture side (attribute, direction, change), the sound side (pitch, timbre), the order of the
events, or exchange the tones of two events (binding swap: both streams right on their own,
wrong together). The task is a multiple choice between the true caption and its negatives
(:func:`bacl.data.synthetic.dataset.multiple_choice`).

Sibling variants edit the base clip as the video and audio benchmarks do; in an order swap each
event takes its tone along into its new window, in a binding swap two tones exchange pitch and
timbre and keep their timing.
"""

from __future__ import annotations

from itertools import product
from typing import NamedTuple

import numpy as np

from .audio import synthesize_clips
from .audio_text import retuned, tone_edit, tone_metadata, tone_proposals, tone_specs
from .config import AudioVideoTextConfig
from .dataset import AudioVideoTextDataset, assign_caption_ids
from .grammar import Event, NegativeType, Tone, join_phrases
from .negatives import item_difference, order_swaps, select_negatives, value_exchanges
from .sampling import split_streams
from .siblings import sample_groups, sibling_records
from .video_text import (
    colour_shape_pools,
    edited_events,
    event_edit,
    event_proposals,
    events_acceptable,
    render_clips,
    sample_event_scene,
    shows_heldout,
)

__all__ = ["AudioVisualEvent", "audio_visual_edit", "generate_audio_video_split"]

_MAX_TONE_FILL = 0.9  # a tone ends before its event's window does, so the next tone starts after a gap


class AudioVisualEvent(NamedTuple):
    event: Event
    tone: Tone

    def words(self) -> list[str]:
        return self.event.words() + ["with"] + self.tone.words()


def caption_words(items: tuple[AudioVisualEvent, ...]) -> list[str]:
    return join_phrases((item.words() for item in items), "then")


def caption_text(items: tuple[AudioVisualEvent, ...]) -> str:
    """One wording per event sequence, so the caption text is its own canonical form."""
    return " ".join(caption_words(items))


def _proposals(items: tuple[AudioVisualEvent, ...], palette) -> dict[NegativeType, list]:
    events, tones = tuple(i.event for i in items), tuple(i.tone for i in items)
    picture = {kind: [tuple(map(AudioVisualEvent, variant, tones)) for variant in variants]
               for kind, variants in event_proposals(events, palette).items()}
    sound = {kind: [tuple(map(AudioVisualEvent, events, variant)) for variant in variants]
             for kind, variants in tone_proposals(tones, palette).items()}
    return {**picture, **sound, NegativeType.ORDER_SWAP: order_swaps(items),
            NegativeType.BINDING_SWAP: value_exchanges(items, "tone")}


def audio_visual_edit(a: tuple[AudioVisualEvent, ...], b: tuple[AudioVisualEvent, ...]) -> NegativeType | None:
    """The boundary edit that turns ``a`` into ``b``, or None."""
    difference = item_difference(a, b)
    if difference is None:
        return None
    if difference.kind == "order":
        return NegativeType.ORDER_SWAP
    if difference.kind == "exchange":
        return NegativeType.BINDING_SWAP if difference.fields == ("tone",) else None
    k = difference.positions[0]
    if difference.fields == ("event",):
        return event_edit((a[k].event,), (b[k].event,))
    return tone_edit((a[k].tone,), (b[k].tone,)) if difference.fields == ("tone",) else None


def _edited_clip(items: tuple[AudioVisualEvent, ...], scene: dict, candidate: tuple[AudioVisualEvent, ...],
                 config: AudioVideoTextConfig) -> dict | None:
    """The clip ``scene`` of ``items`` edited so that ``candidate`` tells it; None if it does not fit."""
    events = edited_events(tuple(i.event for i in items), scene["events"], tuple(i.event for i in candidate), config)
    if events is None:
        return None
    difference = item_difference(items, candidate)
    if difference is None or difference.kind != "order":
        tones = [m if old.tone == new.tone else retuned(m, old.tone, new.tone)
                 for m, old, new in zip(scene["tones"], items, candidate)]
        return {"events": events, "tones": tones}
    window = lambda k: [round(f / config.n_frames * config.n_samples) for f in scene["events"][k]["frames"]]
    tones = list(scene["tones"])
    for a, b in (difference.positions, difference.positions[::-1]):  # tone a moves into b's window with its event
        (start, stop), shift = window(b), window(b)[0] - window(a)[0]
        tone = {**scene["tones"][a], "onset": scene["tones"][a]["onset"] + shift}
        if not start <= tone["onset"] <= tone["onset"] + tone["length"] <= stop:
            return None  # windows of unequal length (n_frames not a multiple of the event count)
        tones[b] = tone
    return {"events": events, "tones": tones}


def _sample_tones(events_metadata: list[dict], config: AudioVideoTextConfig, palette, rng: np.random.Generator):
    """One tone per event, placed inside the event's time window."""
    choices = list(product(palette.pitches, palette.timbres))
    tones, metadata = [], []
    for event in events_metadata:
        tone = Tone(*choices[int(rng.integers(len(choices)))])
        window_start, window_end = (f / config.n_frames * config.clip_seconds for f in event["frames"])
        seconds = (window_end - window_start) * rng.uniform(config.tone_fill, _MAX_TONE_FILL)
        onset = window_start + rng.uniform(0.0, window_end - window_start - seconds)
        tones.append(tone)
        metadata.append(tone_metadata(tone, onset, seconds, config, rng))
    return tones, metadata


def generate_audio_video_split(config: AudioVideoTextConfig, split: str) -> AudioVideoTextDataset:
    """One split of the audio-video-text benchmark (deterministic in ``config`` and ``split``)."""
    if not isinstance(config, AudioVideoTextConfig):
        raise ValueError(f"config must be an AudioVideoTextConfig, got {type(config).__name__}")
    streams = split_streams(config.seed, "audio_video", split)
    palette = config.palette
    heldout, pools = colour_shape_pools(config, palette)
    heldout_split = split == "test_heldout"
    acceptable = lambda items: events_acceptable(tuple(i.event for i in items), heldout, heldout_split)

    def realise(items: tuple[AudioVisualEvent, ...], scene: dict, candidate: tuple[AudioVisualEvent, ...]) -> dict | None:
        if not acceptable(candidate) or (heldout_split and not shows_heldout(tuple(i.event for i in candidate), heldout)):
            return None  # in test_heldout a variant keeps a held-out pair
        return _edited_clip(items, scene, candidate, config)

    def sample_base() -> tuple[tuple[AudioVisualEvent, ...], dict]:
        events, event_metadata = sample_event_scene(config, palette, pools, heldout, heldout_split, streams.scenes)
        tones, tone_metadata = _sample_tones(event_metadata, config, palette, streams.scenes)
        return tuple(map(AudioVisualEvent, events, tones)), {"events": event_metadata, "tones": tone_metadata}

    members = sample_groups(config.split_size(split), config, sample_base, lambda items, rng: _proposals(items, palette),
                            realise, caption_text, streams.scenes)
    captions, negatives, scenes = [], [], []
    for member in members:
        items = member.structure
        captions.append(caption_text(items))
        negatives.append(select_negatives(items, _proposals(items, palette), caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({**member.scene, "heldout": shows_heldout(tuple(i.event for i in items), heldout),
                       "edit": member.edit and member.edit.value})
    groups = np.array([member.group for member in members], dtype=np.int64)
    frames = render_clips([s["events"] for s in scenes], config, streams.render, groups)
    audio = synthesize_clips([tone_specs(s["tones"]) for s in scenes], config.n_samples, config.sample_rate,
                             config.audio_noise_level, streams.render, noise_keys=groups)  # siblings share their noise
    return AudioVideoTextDataset(split=split, config=config.to_dict(), captions=captions,
                                 caption_ids=assign_caption_ids(captions), negatives=negatives, scenes=scenes,
                                 groups=groups, siblings=sibling_records(members, caption_words, audio_visual_edit),
                                 frames=frames, audio=audio)
