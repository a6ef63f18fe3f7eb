"""Audio-video-text benchmark: every visual event comes with a tone played during it.

    "a small red circle moves left with a high pure tone then a large blue square turns green with a low bright tone"

The frames are those of the video benchmark; the sound track has one tone per event, inside
the event's time window (frames and samples cover the same ``clip_seconds``). Negatives edit the
picture side (attribute, direction, change), the sound side (pitch, timbre), the order of the
events, or exchange the tones of two events (binding swap: both streams right on their own,
wrong together). The task is a multiple choice between the true caption and its negatives
(:func:`bacl.data.synthetic.dataset.multiple_choice`).
"""

from __future__ import annotations

from itertools import product
from typing import NamedTuple

import numpy as np

from .audio import synthesize_clips
from .audio_text import tone_metadata, tone_proposals, tone_specs
from .config import AudioVideoTextConfig
from .dataset import AudioVideoTextDataset, assign_caption_ids
from .grammar import Event, NegativeType, Tone, join_phrases
from .negatives import order_swaps, select_negatives, value_exchanges
from .sampling import split_streams
from .video_text import (
    colour_shape_pools,
    event_proposals,
    events_acceptable,
    render_clips,
    sample_event_scene,
    shows_heldout,
)

__all__ = ["AudioVisualEvent", "generate_audio_video_split"]

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
    captions, negatives, scenes = [], [], []
    for _ in range(config.split_size(split)):
        events, event_metadata = sample_event_scene(config, palette, pools, heldout, heldout_split, streams.scenes)
        tones, tone_meta = _sample_tones(event_metadata, config, palette, streams.scenes)
        items = tuple(map(AudioVisualEvent, events, tones))
        captions.append(caption_text(items))
        negatives.append(select_negatives(items, _proposals(items, palette), caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"events": event_metadata, "tones": tone_meta,
                       "heldout": shows_heldout(events, heldout)})
    frames = render_clips([s["events"] for s in scenes], config, streams.render)
    audio = synthesize_clips([tone_specs(s["tones"]) for s in scenes], config.n_samples, config.sample_rate,
                             config.audio_noise_level, streams.render)
    return AudioVideoTextDataset(split=split, config=config.to_dict(), captions=captions,
                                 caption_ids=assign_caption_ids(captions), negatives=negatives, scenes=scenes,
                                 frames=frames, audio=audio)
