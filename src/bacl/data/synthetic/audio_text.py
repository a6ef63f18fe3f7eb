"""Audio-text benchmark: sequences of tones.

A clip holds ``min_tones``..``max_tones`` tones in order, separated by silence, told in order:

    "a short high pure tone then a long low bright tone"

Tones may repeat within a clip. A caption is true of a clip iff it tells exactly its tone
sequence, so any edited caption is false. Held-out pairs are pitch-timbre combinations.

Sibling variants edit the base clip where the edit says: a pitch or timbre swap retunes the tone
in place (timing, gain and phase stay), an order swap exchanges two tones and keeps every silence.
"""

from __future__ import annotations

from itertools import pairwise, product

import numpy as np

from .audio import ToneSpec, synthesize_clips
from .config import AudioTextConfig
from .dataset import AudioTextDataset, assign_caption_ids
from .grammar import PITCH_HZ, NegativeType, Palette, Tone, join_phrases
from .negatives import item_difference, order_swaps, select_negatives, sequence_edit, value_changes
from .sampling import choose_heldout_pairs, draw_items, split_pool, split_streams
from .siblings import sample_groups, sibling_records

__all__ = ["generate_audio_split", "retuned", "tone_edit", "tone_metadata", "tone_proposals"]


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


def tone_edit(a: tuple[Tone, ...], b: tuple[Tone, ...]) -> NegativeType | None:
    """The boundary edit that turns the tones ``a`` into ``b``, or None."""
    kinds = {("pitch",): NegativeType.PITCH_SWAP, ("timbre",): NegativeType.TIMBRE_SWAP}
    return sequence_edit(a, b, lambda old, new, fields: kinds.get(fields))


def retuned(m: dict, old: Tone, new: Tone) -> dict:
    """Metadata ``m`` of tone ``old`` playing ``new`` instead: another pitch scales the frequency
    (keeping its jitter), another timbre changes the wavetable; timing, gain and phase stay."""
    if new.duration != old.duration:
        raise ValueError(f"no scene edit turns {old} into {new}: a duration change moves the other tones")
    return {**m, "pitch": new.pitch, "timbre": new.timbre,
            "frequency": round(m["frequency"] * PITCH_HZ[new.pitch] / PITCH_HZ[old.pitch], 2)}


def _edited_clip(tones: tuple[Tone, ...], metadata: list[dict], candidate: tuple[Tone, ...]) -> list[dict]:
    """The clip ``metadata`` of ``tones`` edited so that ``candidate`` tells it: two tones in the
    other order exchange places with every silence kept, a retuned tone plays in place."""
    difference = item_difference(tones, candidate)
    if difference is None or difference.kind != "order":
        return [m if old == new else retuned(m, old, new) for m, old, new in zip(metadata, tones, candidate)]
    i, j = difference.positions
    order = [j if k == i else i if k == j else k for k in range(len(metadata))]
    silences = [metadata[0]["onset"]] + [b["onset"] - a["onset"] - a["length"] for a, b in pairwise(metadata)]
    edited, time = [], 0
    for silence, k in zip(silences, order):
        edited.append({**metadata[k], "onset": time + silence})
        time += silence + metadata[k]["length"]
    return edited


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

    def realise(tones: tuple[Tone, ...], metadata: list[dict], candidate: tuple[Tone, ...]) -> list[dict] | None:
        if not acceptable(candidate) or (heldout_split and not any(map(is_heldout, candidate))):
            return None  # in test_heldout a variant keeps a held-out pair
        return _edited_clip(tones, metadata, candidate)

    proposals = lambda tones: {**tone_proposals(tones, palette), NegativeType.ORDER_SWAP: order_swaps(tones)}
    sample_base = lambda: _sample_clip(config, pools, heldout_split, streams.scenes)
    members = sample_groups(config.split_size(split), config, sample_base, lambda tones, rng: proposals(tones), realise,
                            caption_text, streams.scenes)
    captions, negatives, scenes = [], [], []
    for member in members:
        tones = member.structure
        captions.append(caption_text(tones))
        negatives.append(select_negatives(tones, proposals(tones), caption_words, caption_text, acceptable,
                                          streams.negatives, config.negatives_per_type))
        scenes.append({"tones": member.scene, "heldout": any(map(is_heldout, tones)),
                       "edit": member.edit and member.edit.value})
    groups = np.array([member.group for member in members], dtype=np.int64)
    audio = synthesize_clips([tone_specs(s["tones"]) for s in scenes], config.n_samples, config.sample_rate,
                             config.audio_noise_level, streams.render, noise_keys=groups)  # siblings share their noise
    return AudioTextDataset(split=split, config=config.to_dict(), captions=captions,
                            caption_ids=assign_caption_ids(captions), negatives=negatives, scenes=scenes, groups=groups,
                            siblings=sibling_records(members, caption_words, tone_edit), audio=audio)
