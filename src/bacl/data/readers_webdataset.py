"""Image-caption pairs from webdataset tar shards in the LAION / open_clip layout.

A shard is a tar whose members are grouped into samples by key: ``KEY.jpg`` (or ``.jpeg``,
``.png``, ``.webp``) holds the image bytes, ``KEY.txt`` the UTF-8 caption, an optional
``KEY.json`` the crawl metadata (not parsed here: nothing downstream uses it). Tar reading and
grouping are webdataset's (:func:`webdataset.tariterators.tar_file_expander`,
:func:`~webdataset.tariterators.group_by_keys`); decoding is done here, per sample, so each
failure can be counted under its reason (see :mod:`.readers`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import webdataset as wds
from PIL import Image
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from .readers import ReadReport, check_max_bad_fraction, decode_caption

__all__ = ["IMAGE_SUFFIXES", "IMAGE_UNDECODABLE", "NAMELESS_MEMBER", "NO_IMAGE", "expand_shard_urls",
           "iter_image_text_shards"]

# Image members in order of preference when a sample has more than one.
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")

# Reasons a sample is skipped (besides the caption reasons of .readers).
NO_IMAGE = "no image member"
IMAGE_UNDECODABLE = "image undecodable"
NAMELESS_MEMBER = "tar member without extension"

_TAR_BLOCK = 512  # bytes; a tar is a sequence of such blocks


def expand_shard_urls(urls: str | list[str]) -> list[str]:
    """Shard URLs from a brace pattern (``"data/{000000..000099}.tar"``), a ``::``-joined string or a list.

    Expansion is webdataset's (:func:`webdataset.shardlists.expand_urls`), applied to each entry.
    """
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, (list, tuple)) or not all(isinstance(url, str) and url for url in urls):
        raise ValueError(f"urls must be a non-empty str or a list of non-empty str, got {urls!r}")
    expanded = [shard for url in urls for shard in wds.shardlists.expand_urls(url)]
    if not expanded:
        raise ValueError(f"urls {urls!r} name no shard")
    return expanded


def _local_path(url: str) -> Path | None:
    """The file a local URL (plain path or ``file:``) names; None for remote or ``pipe:`` URLs."""
    parsed = urlparse(url)
    if parsed.scheme == "":
        return Path(url)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return None


def _missing_end_marker(path: Path) -> bool:
    """True if a plain ``.tar`` does not end in the two zero blocks every tar writer appends.

    A shard cut short at a member boundary reads without any error, so this is the only sign
    that its remaining samples were lost. Compressed shards (``.tar.gz``...) are not checked.
    """
    size = path.stat().st_size
    if size < 2 * _TAR_BLOCK or size % _TAR_BLOCK:
        return True
    with path.open("rb") as handle:
        handle.seek(size - 2 * _TAR_BLOCK)
        return any(handle.read())


def iter_image_text_shards(
    urls: str | list[str],
    max_bad_fraction: float = 0.01,  # a few corrupt samples are normal in web-crawled shards; more means a bad copy
    *,
    report: ReadReport | None = None,
) -> Iterator[tuple[str, Image.Image, str]]:
    """Yield ``(key, image, caption)`` from each shard in order: image a PIL RGB image, caption stripped text.

    urls: shard path(s) or URL(s); see :func:`expand_shard_urls`. Local shards are checked
    before anything is read: a missing one raises FileNotFoundError naming it. Remote URLs are
    opened by webdataset's ``gopen`` when reached. A local ``.tar`` without the end-of-archive
    marker counts as a broken shard (truncated), though its readable samples are still yielded.
    max_bad_fraction: after the last shard, :class:`~.readers.DataQualityError` is raised if the
    share of skipped samples, or of shards that broke mid-read (e.g. a truncated tar), exceeds it.
    report: a :class:`~.readers.ReadReport` to fill (a fresh one if None); it is logged at the end.

    A sample is skipped and counted when it has no image member, no ``.txt``, an empty or
    non-UTF-8 caption, or image bytes PIL cannot decode. Images are converted with
    ``Image.convert("RGB")`` (alpha dropped, as open_clip's ``_convert_to_rgb`` does).
    """
    max_bad_fraction = check_max_bad_fraction(max_bad_fraction)
    shard_urls = expand_shard_urls(urls)
    missing = [url for url in shard_urls if (path := _local_path(url)) is not None and not path.is_file()]
    if missing:
        shown = ", ".join(missing[:10])  # ten names are enough to see the pattern of what is missing
        raise FileNotFoundError(f"{len(missing)} of {len(shard_urls)} shard(s) do not exist: {shown}")
    if report is None:
        report = ReadReport(description="image-text shards")
    return _read_shards(shard_urls, max_bad_fraction, report)


def _read_shards(shard_urls: list[str], max_bad_fraction: float,
                 report: ReadReport) -> Iterator[tuple[str, Image.Image, str]]:
    for url in shard_urls:
        report.start_source(url)
        for key, image, caption in _read_shard(url, report):
            report.add_good(url)
            yield key, image, caption
    report.log()
    report.raise_if_too_bad(max_bad_fraction)


def _read_shard(url: str, report: ReadReport) -> Iterator[tuple[str, Image.Image, str]]:
    """Samples of one shard; tar-level failures are recorded as the shard's error, not raised."""

    def record_error(error: Exception) -> bool:  # webdataset handler: True means carry on
        message = error.args[0] if error.args else ""
        report.add_source_error(url, f"{type(error).__name__}: {message}")
        return True

    def keep_member(name: str) -> bool:  # group_by_keys would drop such a member without a word
        if base_plus_ext(name)[0] is None:
            report.add_bad(url, name, NAMELESS_MEMBER)
            return False
        return True

    local = _local_path(url)
    if local is not None and local.name.endswith(".tar") and _missing_end_marker(local):
        report.add_source_error(url, "no end-of-archive marker: truncated (samples after the cut are lost)")
    try:
        stream = wds.gopen(url)
    except Exception as error:  # noqa: BLE001 - any opener failure (pipe, network): a broken shard
        record_error(error)
        return
    with stream:
        members = tar_file_expander([{"url": url, "stream": stream}], handler=record_error, select_files=keep_member)
        for sample in group_by_keys(members, handler=record_error):
            key = sample["__key__"]
            image_suffix = next((suffix for suffix in IMAGE_SUFFIXES if suffix in sample), None)
            if image_suffix is None:
                report.add_bad(url, key, NO_IMAGE, f"members {sorted(k for k in sample if not k.startswith('__'))}")
                continue
            caption, reason = decode_caption(sample.get("txt"))
            if reason is not None:
                report.add_bad(url, key, reason)
                continue
            try:
                with Image.open(io.BytesIO(sample[image_suffix])) as opened:
                    image = opened.convert("RGB")  # convert loads every pixel, so truncation shows here
            except Exception as error:  # noqa: BLE001 - PIL: OSError, SyntaxError, DecompressionBombError...
                report.add_bad(url, key, IMAGE_UNDECODABLE, f"{type(error).__name__}: {error}")
                continue
            yield key, image, caption
