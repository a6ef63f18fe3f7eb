"""Configs of the synthetic benchmarks: one frozen dataclass per modality, validated on creation.

Every field has a default sized for the CPU-scale pipeline (a few thousand samples of a modality
in seconds on one core); a bad value raises ``ValueError`` naming the key. Configs come from YAML
as plain mappings through :func:`config_from_mapping`, which also names unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from .grammar import COLOURS, PITCHES, SHAPES, TIMBRES, NegativeType, Palette

__all__ = [
    "SPLITS", "AudioTextConfig", "AudioVideoTextConfig", "ImageTextConfig", "SyntheticConfig", "VideoTextConfig",
    "config_from_mapping",
]

# pretrain: scenes for pre-training the small CLIP encoders; test_heldout: every scene shows at
# least one held-out attribute pair, which no other split (positives or negatives) ever uses.
SPLITS = ("pretrain", "train", "val", "test", "test_heldout")


@dataclass(frozen=True)
class SyntheticConfig:
    """Fields every modality has."""

    MODALITY: ClassVar[str] = ""
    EDIT_TYPES: ClassVar[tuple[str, ...]] = ()  # the modality's boundary edits (negative types), in proposal order
    seed: int = 0  # data seed; each split draws from its own stream, so resizing one leaves the others alone
    n_pretrain: int = 6000
    n_train: int = 3000
    n_val: int = 500
    n_test: int = 1000
    n_test_heldout: int = 500
    # Held-out attribute pairs (colour-shape, or pitch-timbre for audio), each with its own colour
    # and shape so every single value still appears in training.
    heldout_pairs: int = 6
    negatives_per_type: int = 1  # one of each kind keeps boundary accuracy balanced across kinds
    # Samples come in groups: a base scene and variants of it, each one boundary edit away, so that
    # one-edit captions are in every split (training pools, test galleries). 4 = a base and 3
    # variants: 3 of the image benchmark's 4 edit kinds per group, every sample has a one-edit
    # sibling, and a quarter of the samples are still independent scenes. 1 = independent scenes.
    siblings_per_group: int = 4
    sibling_edits: tuple[str, ...] = ()  # edit kinds the variants use; each modality defaults to all of its own

    def __post_init__(self) -> None:
        object.__setattr__(self, "sibling_edits", tuple(self.sibling_edits))  # YAML gives a list
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                self._fail(field.name, "must be an int")
            if field.type == "float" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                self._fail(field.name, "must be a number")
        self._check(self.seed >= 0, "seed", "must be >= 0")
        for split in SPLITS:
            self._check(getattr(self, f"n_{split}") >= 0, f"n_{split}", "must be >= 0")
        self._check(self.negatives_per_type >= 1, "negatives_per_type", "must be >= 1")
        self._check(self.heldout_pairs >= 0, "heldout_pairs", "must be >= 0")
        if self.n_test_heldout > 0:
            self._check(self.heldout_pairs >= 1, "heldout_pairs", "must be >= 1 when n_test_heldout > 0")
        self._check_range("siblings_per_group", 1, 8)  # 8: more variants than most scenes have edit kinds for
        self._check(len(set(self.sibling_edits)) == len(self.sibling_edits) and set(self.sibling_edits) <= set(self.EDIT_TYPES),
                    "sibling_edits", f"must be distinct edit kinds of this modality: {list(self.EDIT_TYPES)}")
        self._check(self.siblings_per_group == 1 or bool(self.sibling_edits), "sibling_edits",
                    "must name at least one edit kind when siblings_per_group > 1")
        self._validate()

    def _validate(self) -> None:
        """Modality-specific checks (overridden)."""

    def _fail(self, key: str, rule: str) -> None:
        raise ValueError(f"{type(self).__name__}.{key}={getattr(self, key)!r} {rule}")

    def _check(self, ok: bool, key: str, rule: str) -> None:
        if not ok:
            self._fail(key, rule)

    def _check_range(self, key: str, low: float, high: float) -> None:
        value = getattr(self, key)
        self._check(low <= value <= high, key, f"must be in [{low}, {high}]")

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        return getattr(self, f"n_{split}")

    def to_dict(self) -> dict:
        """JSON-ready description (with the modality) that identifies the generated data."""
        return {"modality": self.MODALITY, **dataclasses.asdict(self), "sibling_edits": list(self.sibling_edits)}


@dataclass(frozen=True)
class _SceneFields(SyntheticConfig):
    """Rendering of coloured shapes on a noisy grey canvas (image, video, audio-video)."""

    image_size: int = 64  # the CPU-scale vision tower's input size
    n_colours: int = 10  # 10 colours, 6 shapes, 2 sizes left the small CLIP imperfect on binding
    n_shapes: int = 6  # (DESIGN.md: binding-swap accuracy 0.85 with 2-4 objects)
    small_radius: float = 0.09  # half-width of a small object, as a fraction of image_size (6 px at 64)
    large_radius: float = 0.16  # and of a large one (10 px at 64): clearly bigger, four still fit
    radius_jitter: float = 0.1  # relative spread of radii, so size is a category, not an exact width
    colour_jitter: float = 0.04  # per-object RGB offset (fraction of 255); palette colours stay apart
    background_jitter: float = 0.08  # per-image grey level offset around mid-grey
    noise_level: float = 0.05  # per-pixel Gaussian noise std (fraction of 255)

    def _validate(self) -> None:
        super()._validate()
        self._check_range("image_size", 32, 512)
        self._check_range("n_colours", 2, len(COLOURS))
        self._check_range("n_shapes", 2, len(SHAPES))
        self._check(self.heldout_pairs <= min(self.n_colours, self.n_shapes), "heldout_pairs",
                    "must be <= min(n_colours, n_shapes): each held-out pair needs its own colour and shape")
        self._check_range("small_radius", 0.04, 0.25)
        self._check_range("large_radius", 0.04, 0.25)
        self._check(self.small_radius < self.large_radius, "small_radius", "must be < large_radius")
        self._check_range("radius_jitter", 0.0, 0.3)
        self._check_range("colour_jitter", 0.0, 0.2)
        self._check_range("background_jitter", 0.0, 0.2)
        self._check_range("noise_level", 0.0, 0.5)

    @property
    def palette(self) -> Palette:
        return Palette(colours=COLOURS[: self.n_colours], shapes=SHAPES[: self.n_shapes])


@dataclass(frozen=True)
class ImageTextConfig(_SceneFields):
    """Still scenes of several objects with pairwise relations (stands in for LAION-400M)."""

    MODALITY: ClassVar[str] = "image"
    EDIT_TYPES: ClassVar[tuple[str, ...]] = tuple(t.value for t in (
        NegativeType.ATTRIBUTE_SWAP, NegativeType.BINDING_SWAP, NegativeType.RELATION_FLIP, NegativeType.OBJECT_REPLACEMENT))
    sibling_edits: tuple[str, ...] = EDIT_TYPES
    n_pretrain: int = 10000  # pre-training the image tower wants the most data; 12 KB per image
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 2000  # the test size the difficulty calibration in DESIGN.md was measured on
    n_test_heldout: int = 1000
    min_objects: int = 2  # DESIGN.md: 2-4 objects keep the small CLIP clearly imperfect on binding
    max_objects: int = 4
    relation_margin: float = 1.5  # a described relation's axis offset is >= 1.5x the other axis's

    def _validate(self) -> None:
        super()._validate()
        self._check_range("min_objects", 1, 4)
        self._check_range("max_objects", 1, 4)  # 4 objects: 21 words, well inside a 32-token context
        self._check(self.min_objects <= self.max_objects, "min_objects", "must be <= max_objects")
        self._check_range("relation_margin", 1.0, 4.0)
        box = 2 * round(self.large_radius * self.image_size * (1 + self.radius_jitter)) + 1 + 2  # + 2 px apart
        per_side = math.ceil(math.sqrt(self.max_objects))
        if per_side * box > self.image_size:
            self._fail("large_radius", f"is too large: {self.max_objects} large objects need a {per_side * box}-px "
                       f"square, the canvas has image_size={self.image_size}")


@dataclass(frozen=True)
class _VideoFields(_SceneFields):
    """Objects that move or change, one event after another."""

    # Two events with their tones are 25 words (a 32-token context holds 30); and three large objects
    # moving the same way would not fit a 64-px canvas side by side.
    MAX_EVENTS: ClassVar[int] = 2
    n_frames: int = 8  # four frames per event of a two-event clip: before, during and after show
    min_events: int = 1
    max_events: int = 2
    move_probability: float = 0.5  # half the events are moves (direction), half changes (colour or shape)
    # How far a move goes, as a fraction of image_size: 13 px at 64, more than a large object's
    # radius, yet two of the largest objects moving at right angles still fit side by side.
    move_distance: float = 0.2

    def _validate(self) -> None:
        super()._validate()
        self._check_range("min_events", 1, self.MAX_EVENTS)
        self._check_range("max_events", 1, self.MAX_EVENTS)
        self._check(self.min_events <= self.max_events, "min_events", "must be <= max_events")
        self._check_range("n_frames", 2 * self.max_events, 64)
        self._check_range("move_probability", 0.0, 1.0)
        self._check_range("move_distance", 0.05, 0.5)
        box = 2 * round(self.large_radius * self.image_size * (1 + self.radius_jitter)) + 1
        # max_events of the largest objects, one moving across the others' row, with 1 px between boxes.
        needed = self.max_events * box + round(self.move_distance * self.image_size) + self.max_events - 1
        if needed > self.image_size:
            self._fail("move_distance", f"is too long: {self.max_events} {box}-px objects, one moving across the "
                       f"others, need {needed} px, the canvas has image_size={self.image_size}")


@dataclass(frozen=True)
class VideoTextConfig(_VideoFields):
    """Short clips of moving / changing objects (stands in for WebVid); 98 KB per clip."""

    MODALITY: ClassVar[str] = "video"
    EDIT_TYPES: ClassVar[tuple[str, ...]] = tuple(t.value for t in (
        NegativeType.ATTRIBUTE_SWAP, NegativeType.DIRECTION_FLIP, NegativeType.CHANGE_SWAP, NegativeType.ORDER_SWAP))
    sibling_edits: tuple[str, ...] = EDIT_TYPES
    n_pretrain: int = 2000
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    n_test_heldout: int = 500


@dataclass(frozen=True)
class _ToneFields(SyntheticConfig):
    """Synthesized tones (audio, audio-video)."""

    sample_rate: int = 16000  # enough bandwidth for the harmonics of the highest pitch level
    clip_seconds: float = 1.0
    n_pitches: int = 5
    n_timbres: int = 3
    pitch_jitter: float = 0.02  # relative frequency spread; levels are 1.59x apart, so they stay distinct
    audio_noise_level: float = 0.02  # white-noise std; tones have unit RMS times a gain in [0.5, 1]

    def _validate(self) -> None:
        super()._validate()
        self._check_range("sample_rate", 4000, 48000)
        self._check_range("clip_seconds", 0.25, 10.0)
        self._check_range("n_pitches", 2, len(PITCHES))
        self._check_range("n_timbres", 2, len(TIMBRES))
        self._check_range("pitch_jitter", 0.0, 0.1)
        self._check_range("audio_noise_level", 0.0, 1.0)

    @property
    def n_samples(self) -> int:
        return round(self.sample_rate * self.clip_seconds)


@dataclass(frozen=True)
class AudioTextConfig(_ToneFields):
    """Sequences of tones (stands in for WavText5K); 64 KB per clip."""

    MODALITY: ClassVar[str] = "audio"
    EDIT_TYPES: ClassVar[tuple[str, ...]] = tuple(t.value for t in (
        NegativeType.PITCH_SWAP, NegativeType.TIMBRE_SWAP, NegativeType.ORDER_SWAP))
    sibling_edits: tuple[str, ...] = EDIT_TYPES
    n_pretrain: int = 5000
    heldout_pairs: int = 2  # of 15 pitch-timbre pairs
    min_tones: int = 1
    max_tones: int = 3
    short_seconds: float = 0.15
    long_seconds: float = 0.3
    min_gap_seconds: float = 0.04  # silence between tones, so their order is audible

    def _validate(self) -> None:
        super()._validate()
        self._check(self.heldout_pairs <= min(self.n_pitches, self.n_timbres), "heldout_pairs",
                    "must be <= min(n_pitches, n_timbres): each held-out pair needs its own pitch and timbre")
        self._check_range("min_tones", 1, 4)
        self._check_range("max_tones", 1, 4)  # four tones are 23 words
        self._check(self.min_tones <= self.max_tones, "min_tones", "must be <= max_tones")
        self._check_range("short_seconds", 0.03, self.clip_seconds)
        self._check_range("long_seconds", 0.03, self.clip_seconds)
        self._check(self.short_seconds < self.long_seconds, "short_seconds", "must be < long_seconds")
        self._check_range("min_gap_seconds", 0.0, self.clip_seconds)
        busiest = self.max_tones * self.long_seconds + (self.max_tones - 1) * self.min_gap_seconds
        self._check(busiest <= self.clip_seconds, "clip_seconds",
                    f"must hold max_tones long tones and their gaps ({busiest:.3f} s)")

    @property
    def palette(self) -> Palette:
        return Palette(pitches=PITCHES[: self.n_pitches], timbres=TIMBRES[: self.n_timbres])


@dataclass(frozen=True)
class AudioVideoTextConfig(_VideoFields, _ToneFields):
    """Clips whose every event comes with a tone (stands in for VAST-27M); 162 KB per clip."""

    MODALITY: ClassVar[str] = "audio_video"
    EDIT_TYPES: ClassVar[tuple[str, ...]] = VideoTextConfig.EDIT_TYPES + tuple(t.value for t in (
        NegativeType.PITCH_SWAP, NegativeType.TIMBRE_SWAP, NegativeType.BINDING_SWAP))
    sibling_edits: tuple[str, ...] = EDIT_TYPES
    n_pretrain: int = 1000  # the towers pre-train on the image and audio benchmarks; this is extra
    n_train: int = 1500
    n_val: int = 300
    n_test: int = 1000
    n_test_heldout: int = 500
    tone_fill: float = 0.6  # a tone lasts between this fraction and 90 % of its event's time window

    def _validate(self) -> None:
        super()._validate()
        self._check_range("tone_fill", 0.1, 0.9)

    @property
    def palette(self) -> Palette:
        return Palette(colours=COLOURS[: self.n_colours], shapes=SHAPES[: self.n_shapes],
                       pitches=PITCHES[: self.n_pitches], timbres=TIMBRES[: self.n_timbres])


CONFIG_CLASSES: dict[str, type[SyntheticConfig]] = {
    cls.MODALITY: cls for cls in (ImageTextConfig, VideoTextConfig, AudioTextConfig, AudioVideoTextConfig)
}


def config_from_mapping(modality: str, mapping: Mapping) -> SyntheticConfig:
    """The config of ``modality`` with the values in ``mapping`` (e.g. a YAML section) over the defaults."""
    if modality not in CONFIG_CLASSES:
        raise ValueError(f"modality={modality!r} is not one of {tuple(CONFIG_CLASSES)}")
    cls = CONFIG_CLASSES[modality]
    if not isinstance(mapping, Mapping):
        raise ValueError(f"config for {modality!r} must be a mapping, got {type(mapping).__name__}")
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - known - {"modality"})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
    if mapping.get("modality", modality) != modality:
        raise ValueError(f"modality={mapping['modality']!r} in the mapping does not match modality={modality!r}")
    return cls(**{key: value for key, value in mapping.items() if key != "modality"})
