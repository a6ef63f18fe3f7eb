"""What the real-data readers share: the read report, the quality gate and caption/metadata parsing.

The paper-scale readers (:mod:`.readers_webdataset` for LAION-style image-text shards,
:mod:`.readers_video` for WebVid-style video-text sets, :mod:`.readers_audio` for
WavText5K-style audio-text sets) all follow one rule: a sample that cannot be read is skipped,
never silently. Each skip is counted by reason, per source (shard or metadata file), with a few
example keys, in a :class:`ReadReport` the caller may pass in and inspect afterwards. When the
read ends the report is logged, and :meth:`ReadReport.raise_if_too_bad` raises
:class:`DataQualityError` if the bad share of samples (or of broken sources) exceeds
``max_bad_fraction``, or if nothing at all was readable. The check runs after the last sample,
so a consumer that writes a cache only on completion (:func:`bacl.data.cache.extract_and_cache`)
never stores a read that failed the gate. The report lives in the iterating process: under
DataLoader workers each worker fills its own copy, so read in the main process (as feature
extraction does) or give each worker its own shards and report.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = [
    "CAPTION_EMPTY",
    "CAPTION_MISSING",
    "CAPTION_NOT_UTF8",
    "KEY_MISSING",
    "DataQualityError",
    "ReadReport",
    "UnreadableSample",
    "check_column_names",
    "check_max_bad_fraction",
    "check_media_root",
    "decode_caption",
    "first_caption",
    "iter_metadata_samples",
    "read_metadata_rows",
]

logger = logging.getLogger(__name__)

Media = TypeVar("Media")

# Reasons shared by every reader; each reader module defines its own media-specific ones.
CAPTION_MISSING = "caption missing"
CAPTION_EMPTY = "caption empty"
CAPTION_NOT_UTF8 = "caption not UTF-8"
KEY_MISSING = "key missing"  # a metadata row with an empty id / file name column

_METADATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


class DataQualityError(ValueError):
    """Too many unreadable samples (or broken sources) in one read; ``report`` holds the counts."""

    def __init__(self, message: str, report: ReadReport):
        super().__init__(message)
        self.report = report


class UnreadableSample(Exception):
    """Raised by a reader's per-sample decoder: the sample is skipped and counted under ``reason``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes kept as escapes) written as ``\\udc..``, safe to log."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class ReadReport:
    """Counts of one read: good and bad samples, by reason and by source, with example keys.

    ``description`` names the read in messages (e.g. "image-text shards"); ``max_examples``
    bounds the example keys kept per reason (5: enough to find the files, short enough to log).
    """

    description: str = "read"
    max_examples: int = 5
    n_good: int = 0
    bad_by_reason: Counter = field(default_factory=Counter)
    bad_by_source: Counter = field(default_factory=Counter)
    total_by_source: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)

    def start_source(self, source: str) -> None:
        """Register a shard or metadata file before reading it (the denominator of broken sources)."""
        self.sources.append(source)

    def add_good(self, source: str) -> None:
        self.n_good += 1
        self.total_by_source[source] += 1

    def add_bad(self, source: str, key: str, reason: str, detail: str = "") -> None:
        """Count one skipped sample; ``detail`` (e.g. the decoder's message) goes with its example."""
        self.bad_by_reason[reason] += 1
        self.bad_by_source[source] += 1
        self.total_by_source[source] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.max_examples:
            kept.append(_printable(f"{key} @ {source}" + (f": {detail}" if detail else "")))

    def add_source_error(self, source: str, message: str) -> None:
        """A source that broke while being read (e.g. a truncated tar): its remaining samples are unknown.

        Only the first message per source is kept: later ones are usually its consequences.
        """
        self.source_errors.setdefault(source, message)

    @property
    def n_bad(self) -> int:
        return sum(self.bad_by_reason.values())

    @property
    def n_total(self) -> int:
        return self.n_good + self.n_bad

    @property
    def bad_fraction(self) -> float:
        """Share of bad samples among all samples seen; 0.0 before any sample."""
        return self.n_bad / self.n_total if self.n_total else 0.0

    @property
    def broken_source_fraction(self) -> float:
        return len(self.source_errors) / len(self.sources) if self.sources else 0.0

    def summary(self) -> str:
        """One paragraph: totals, then reasons, worst sources and examples, for logs and errors."""
        lines = [(f"{self.description}: {self.n_good} good, {self.n_bad} bad of {self.n_total} samples "
                  f"({self.bad_fraction:.2%}) from {len(self.sources)} source(s)")]
        for reason, count in self.bad_by_reason.most_common():
            lines.append(f"  {reason}: {count} (e.g. {'; '.join(self.examples.get(reason, []))})")
        # The ten worst sources are enough to find a bad shard among thousands.
        for source, count in self.bad_by_source.most_common(10):
            lines.append(f"  {_printable(source)}: {count} of {self.total_by_source[source]} bad")
        for source, message in self.source_errors.items():
            lines.append(f"  broken source {_printable(source)}: {_printable(message)}")
        return "\n".join(lines)

    def log(self) -> None:
        """Log :meth:`summary`: WARNING if anything was skipped, else INFO."""
        clean = self.n_bad == 0 and not self.source_errors
        logger.log(logging.INFO if clean else logging.WARNING, "%s", self.summary())

    def raise_if_too_bad(self, max_bad_fraction: float) -> None:
        """Raise :class:`DataQualityError` if the bad share of samples or of sources exceeds the bound.

        Also raises when no sample was readable: an empty read is never what a caller wants.
        """
        check_max_bad_fraction(max_bad_fraction)
        problems = []
        if self.bad_fraction > max_bad_fraction:
            problems.append(f"bad sample share {self.bad_fraction:.2%} > max_bad_fraction {max_bad_fraction:.2%}")
        if self.broken_source_fraction > max_bad_fraction:
            problems.append(f"broken source share {self.broken_source_fraction:.2%} "
                            f"> max_bad_fraction {max_bad_fraction:.2%}")
        if self.n_good == 0:
            problems.append("no readable sample")
        if problems:
            raise DataQualityError(f"{'; '.join(problems)}\n{self.summary()}", self)


def check_max_bad_fraction(max_bad_fraction: float) -> float:
    """Validate the quality bound shared by the readers: a float in [0, 1]."""
    if isinstance(max_bad_fraction, bool) or not isinstance(max_bad_fraction, (int, float)) \
            or not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be a number in [0, 1], got {max_bad_fraction!r}")
    return float(max_bad_fraction)


def check_column_names(key_column: str, caption_columns: tuple[str, ...]) -> tuple[str, ...]:
    """Validate a reader's column arguments; returns ``caption_columns`` as a tuple."""
    if not isinstance(key_column, str) or not key_column:
        raise ValueError(f"key_column must be a non-empty str, got {key_column!r}")
    if isinstance(caption_columns, str) or not caption_columns \
            or not all(isinstance(name, str) and name for name in caption_columns):
        raise ValueError(f"caption_columns must be a non-empty sequence of column names, got {caption_columns!r}")
    return tuple(caption_columns)


def check_media_root(name: str, root: str | Path) -> Path:
    """The folder the media files are relative to; FileNotFoundError naming it if it is not a directory."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name} {root} is not an existing directory")
    return root


def decode_caption(raw: bytes | str | None) -> tuple[str | None, str | None]:
    """Caption text from ``raw`` bytes (UTF-8) or text (undecodable bytes as surrogate escapes).

    Returns ``(caption, None)`` with surrounding whitespace stripped (tokenizers drop it anyway),
    or ``(None, reason)`` with reason :data:`CAPTION_MISSING`, :data:`CAPTION_NOT_UTF8` or
    :data:`CAPTION_EMPTY`.
    """
    if raw is None:
        return None, CAPTION_MISSING
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, CAPTION_NOT_UTF8
    elif any("\ud800" <= ch <= "\udfff" for ch in raw):  # lone surrogates: bytes that were not UTF-8
        return None, CAPTION_NOT_UTF8
    caption = raw.strip()
    if not caption:
        return None, CAPTION_EMPTY
    return caption, None


def read_metadata_rows(path: str | Path, required_columns: tuple[str, ...]) -> list[dict[str, str | None]]:
    """Rows of a metadata table: ``.csv`` / ``.tsv`` (header row), ``.json`` (a list of objects) or ``.jsonl``.

    Text files are read as UTF-8 (a leading BOM is ignored) with undecodable bytes kept as
    surrogate escapes, so one bad caption is a bad sample (:func:`decode_caption`) rather than an
    unreadable file; a JSON file must be valid UTF-8 as a whole. A field absent from a row is
    ``None``. Raises FileNotFoundError naming a missing file, ValueError naming missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in _METADATA_SUFFIXES:
        raise ValueError(f"metadata file {path}: suffix {suffix!r} is not one of {_METADATA_SUFFIXES}")
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            columns = reader.fieldnames or []
            rows = [{name: row.get(name) for name in columns} for row in reader]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
            records = ([json.loads(line) for line in text.splitlines() if line.strip()] if suffix == ".jsonl"
                       else json.loads(text))
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError both
            raise ValueError(f"metadata file {path} is not valid UTF-8 JSON: {error}") from error
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError(f"metadata file {path} must hold a list of objects (one per sample)")
        columns = sorted({name for record in records for name in record})
        rows = [{name: (None if record.get(name) is None else str(record[name])) for name in columns}
                for record in records]
    missing = [name for name in required_columns if name not in columns]
    if missing:
        raise ValueError(f"metadata file {path} lacks column(s) {missing}; it has {list(columns)}")
    return rows


def first_caption(row: dict[str, str | None], columns: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The caption from the first of ``columns`` that is not blank in ``row`` (e.g. description, then title).

    Returns ``(caption, None)`` or ``(None, reason)`` as :func:`decode_caption`; when every column
    is blank the reason is :data:`CAPTION_EMPTY` if any is present, else :data:`CAPTION_MISSING`.
    """
    values = [row.get(name) for name in columns]
    for value in values:
        if value is not None and value.strip():
            return decode_caption(value)
    return None, (CAPTION_MISSING if all(value is None for value in values) else CAPTION_EMPTY)


def iter_metadata_samples(
    rows: list[dict[str, str | None]],
    source: str,
    key_column: str,
    caption_columns: tuple[str, ...],
    load_media: Callable[[str, dict[str, str | None]], Media],
    report: ReadReport,
    max_bad_fraction: float,
) -> Iterator[tuple[str, Media, str]]:
    """Yield ``(key, media, caption)`` for each readable row of a metadata table; count the rest.

    ``load_media(key, row)`` returns the decoded media or raises :class:`UnreadableSample`. A row
    without a key is counted as "record N" (1-based, header excluded). After the last row the
    report is logged and checked against ``max_bad_fraction``.
    """
    report.start_source(source)
    for number, row in enumerate(rows, start=1):
        key = (row.get(key_column) or "").strip()
        if not key:
            report.add_bad(source, f"record {number}", KEY_MISSING)
            continue
        caption, reason = first_caption(row, caption_columns)
        if reason is not None:
            report.add_bad(source, key, reason)
            continue
        try:
            media = load_media(key, row)
        except UnreadableSample as skipped:
            report.add_bad(source, key, skipped.reason, skipped.detail)
            continue
        report.add_good(source)
        yield key, media, caption
    report.log()
    report.raise_if_too_bad(max_bad_fraction)
