"""Vocabulary and caption grammar shared by the synthetic boundary benchmarks.

Every word is a plain lowercase English word that open_clip's ``SimpleTokenizer`` (the
``ViT-B-32`` tokenizer) keeps as one BPE token, so a wrong word is a wrong token and the
longest caption (four objects, two relations) is 21 tokens: it fits the 32-token context of the
CPU-scale text tower with the start and end markers.

Phrases (each a list of words; captions are the words joined by single spaces):

* object: ``a <size> <colour> <shape>``                         e.g. "a small red circle"
* relation between two objects: ``left of`` / ``right of`` / ``above`` / ``below``
* event (video): ``<object> moves <direction>`` / ``<object> turns <colour>`` /
  ``<object> becomes a <shape>``
* tone (audio): ``a [<duration>] <pitch> <timbre> tone``          e.g. "a short high pure tone"

A caption is exhaustive: it mentions every object (event, tone) of its scene exactly once, so its
truth can be decided from the scene's structured description alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

__all__ = [
    "COLOURS",
    "COLOUR_RGB",
    "DIRECTIONS",
    "DURATIONS",
    "OPPOSITE",
    "PITCHES",
    "PITCH_HZ",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "TIMBRES",
    "Event",
    "NegativeType",
    "Palette",
    "Thing",
    "Tone",
    "join_phrases",
    "relation_words",
]

# Colours far apart in RGB (and from the grey background), so noise cannot turn one into another.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 220, 50),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "pink": (245, 130, 190),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS = tuple(COLOUR_RGB)
# Shapes that all contain their own centre (no ring), so the centre pixel shows the object's colour.
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
SIZES = ("small", "large")
RELATIONS = ("left", "right", "above", "below")
DIRECTIONS = ("left", "right", "up", "down")
# About 0.67 octave apart (E3, C4, G#4, E5, C6): each level lands in its own mel bins at n_mels=64.
PITCH_HZ: dict[str, float] = {"bass": 165.0, "low": 262.0, "mid": 415.0, "high": 659.0, "treble": 1047.0}
PITCHES = tuple(PITCH_HZ)
# pure = sine, hollow = odd harmonics (square-ish), bright = all harmonics (saw-ish).
TIMBRES = ("pure", "hollow", "bright")
DURATIONS = ("short", "long")
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above", "up": "down", "down": "up"}
_RELATION_WORDS = {"left": ("left", "of"), "right": ("right", "of"), "above": ("above",), "below": ("below",)}


class NegativeType(str, Enum):
    """Kinds of half-true captions; the value is what datasets store."""

    ATTRIBUTE_SWAP = "attribute_swap"  # one size / colour / shape word changed to another value
    BINDING_SWAP = "binding_swap"  # an attribute (or a tone) exchanged between two objects (events)
    RELATION_FLIP = "relation_flip"  # left of <-> right of, above <-> below
    OBJECT_REPLACEMENT = "object_replacement"  # one object replaced by one of another colour and shape
    DIRECTION_FLIP = "direction_flip"  # moves left <-> right, up <-> down
    ORDER_SWAP = "order_swap"  # two events (tones) told in the wrong order
    CHANGE_SWAP = "change_swap"  # an object turns into / becomes another value than it does
    PITCH_SWAP = "pitch_swap"  # one tone's pitch changed
    TIMBRE_SWAP = "timbre_swap"  # one tone's timbre changed


@dataclass(frozen=True)
class Palette:
    """The attribute values in use (prefixes of the full vocabularies, set by the config)."""

    colours: tuple[str, ...] = COLOURS
    shapes: tuple[str, ...] = SHAPES
    sizes: tuple[str, ...] = SIZES
    pitches: tuple[str, ...] = PITCHES
    timbres: tuple[str, ...] = TIMBRES
    durations: tuple[str, ...] = DURATIONS

    def values(self, field: str) -> tuple[str, ...]:
        """The values of the object attribute ``field`` ("size", "colour" or "shape")."""
        if field not in ("size", "colour", "shape"):
            raise ValueError(f"field={field!r} is not an object attribute (size, colour, shape)")
        return getattr(self, field + "s")


class Thing(NamedTuple):
    """A visual object as a caption describes it."""

    size: str
    colour: str
    shape: str

    def words(self) -> list[str]:
        return ["a", self.size, self.colour, self.shape]


class Event(NamedTuple):
    """A visual event: ``kind`` is "moves" (value: direction), "turns" (colour) or "becomes" (shape)."""

    thing: Thing
    kind: str
    value: str

    def words(self) -> list[str]:
        tail = ["becomes", "a", self.value] if self.kind == "becomes" else [self.kind, self.value]
        return self.thing.words() + tail

    def end_thing(self) -> Thing:
        """The object as it looks after the event."""
        if self.kind == "turns":
            return self.thing._replace(colour=self.value)
        if self.kind == "becomes":
            return self.thing._replace(shape=self.value)
        return self.thing

    def is_valid(self) -> bool:
        """A change event must end in a value other than the one it starts from."""
        return self.kind == "moves" or self.end_thing() != self.thing


class Tone(NamedTuple):
    """A tone; ``duration`` is None where the grammar leaves it out (audio-video captions)."""

    pitch: str
    timbre: str
    duration: str | None = None

    def words(self) -> list[str]:
        return ["a", *([self.duration] if self.duration else []), self.pitch, self.timbre, "tone"]


def relation_words(relation: str) -> list[str]:
    """Words of a relation name ("left" -> ["left", "of"])."""
    return list(_RELATION_WORDS[relation])


def join_phrases(phrases: Iterable[Sequence[str]], conjunction: str) -> list[str]:
    """Concatenate word lists with ``conjunction`` between consecutive ones."""
    words: list[str] = []
    for phrase in phrases:
        words.extend(([conjunction] if words else []) + list(phrase))
    return words
