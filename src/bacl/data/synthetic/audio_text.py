"""Audio-text benchmark: sequences of tones.

A clip holds ``min_tones``..``max_tones`` tones in order, separated by silence, told in order:

    "a short high pure tone then a long low bright tone"

Tones may repeat within a clip. A caption is true of a clip iff it tells exactly its tone
sequence, so any edited caption is false. Held-out pairs are pitch-timbre combinations.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .audio import ToneSpec, synthesize_clips
from .config import AudioTextConfig
from .dataset import AudioTextDataset, assign_caption_ids
from .grammar import PITCH_HZ, NegativeType, Palette, Tone, join_phrases
from .negatives import order_swaps, select_negatives, value_changes
from .sampling import choose_heldout_pairs, draw_items, split_pool, split_streams

__all__ = ["generate_audio_split", "tone_metadata", "tone_proposals"]


def caption_words(tones: tuple[Tone, ...]) -> list[str]:
    return join_phrases((tone.words() for tone in tones), "then")


def caption_text(tones: tuple[Tone, ...]) -> str:
    """Tone sequences have one wording each, so the caption text is its own canonical form."""
    return " ".join(caption_words(tones))


def tone_metadata(tone: Tone, onset_seconds: float, seconds: float, config, rng: np.random.Generator) -> dict:
    """JSON description of one tone as it is synthesized (jittered frequency, gain, start phase)."""
    frequency = PITCH_HZ[tone.pitch] * (1.0 + rng.uniform(-config.pitch_jitter, config.pitch_jitter))
    return {
        **{k: v for k, v in tone._asdict().items() if v is not None},
        "onset": round(onset_seconds * config.sample_rate), "length": round(seconds * config.sample_rate),
        "frequency": round(float(frequency), 2), "gain": round(float(rng.uniform(0.5, 1.0)), 4),  # gain: loudness varies
        "phase": round(float(rng.uniform(0.0, 1.0)), 4),
    }


def tone_specs(metadata: list[dict]) -> list[ToneSpec]:
    return [ToneSpec(m["onset"], m["length"], m["frequency"], m["timbre"], m["gain"], m["phase"]) for m in metadata]


def tone_proposals(tones: tuple[Tone, ...], palette: Palette) -> dict[NegativeType, list[tuple[Tone, ...]]]:
    """One tone's pitch changed; one tone's timbre changed."""
    return {
        NegativeType.PITCH_SWAP: value_changes(tones, "pitch", palette.pitches),
        NegativeType.TIMBRE_SWAP: value_changes(tones, "timbre", palette.timbres),
    }


def _sample_clip(config: AudioTextConfig, pools, heldout_split: bool, rng: np.random.Generator):
    count = int(rng.integers(config.min_tones, config.max_tones + 1))
    tones = tuple(draw_items(rng, pools, count, heldout_split, distinct=False))
    lengths = [config.short_seconds if tone.duration == "short" else config.long_seconds for tone in tones]
    slack = config.clip_seconds - sum(lengths) - (count - 1) * config.min_gap_seconds
    spare = rng.dirichlet(np.ones(count + 1)) * max(slack, 0.0)  # silence before, between and after the tones
    metadata, time = [], float(spare[0])
    for tone, seconds, extra in zip(tones, lengths, spare[1:]):
        metadata.append(tone_metadata(tone, time, seconds, config, rng))
        time += seconds + config.min_gap_seconds + float(extra)
    for m in metadata:  # rounding to samples must not push the last tone past the end
        m["onset"] = min(m["onset"], config.n_samples - m["length"])
    return tones, metadata


def generate_audio_split(config: AudioTextConfig, split: str) -> AudioTextDataset:
    """One split of the audio-text benchmark (deterministic in ``config`` and ``split``)."""
    if not isinstance(config, AudioTextConfig):
        raise ValueError(f"config must be an AudioTextConfig, got {type(config).__name__}")
    streams = split_streams(config.seed, "audio", split)
    palette = config.palette
    heldout = choose_heldout_pairs(config.seed, "pitch_timbre", palette.pitches, palette.timbres, config.heldout_pairs)
    is_heldout = lambda tone: (tone.pitch, tone.timbre) in heldout
    pools = split_pool((Tone(p, t, d) for d, p, t in product(palette.durations, palette.pitches, palette.timbres)), is_heldout)
    heldout_split = split == "test_heldout"
    acceptable = lambda tones: heldout_split or not any(map(is_heldout, tones))
    captions, negatives, scenes = [], [], []
    for _ in range(config.split_size(split)):
        tones, metadata = _sample_clip(config, pools, heldout_split, streams.scenes)
        proposals = {**tone_proposals(tones, palette), NegativeType.ORDER_SWAP: order_swaps(tones)}
        captions.append(caption_text(tones))
        negatives.append(select_negatives(tones, proposals, caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"tones": metadata, "heldout": any(map(is_heldout, tones))})
    audio = synthesize_clips([tone_specs(s["tones"]) for s in scenes], config.n_samples, config.sample_rate,
                             config.audio_noise_level, streams.render)
    return AudioTextDataset(split=split, config=config.to_dict(), captions=captions, caption_ids=assign_caption_ids(captions),
                            negatives=negatives, scenes=scenes, audio=audio)
