"""Frozen-encoder features of one split of a real dataset (paper scale), as a feature set.

The split is read by its reader (``bacl.data.readers_webdataset`` / ``_video`` / ``_audio``:
unreadable samples are skipped, counted, and checked against ``max_bad_fraction``), each image or
frame resized to cover the encoder's input size and centre-cropped as it arrives (open_clip's eval
transform, so only model-size uint8 is held), audio turned into the synthetic path's log-mels, and
the whole encoded chunk by chunk through the feature cache (``bacl.data.cache``). A chunk's cache
entry is keyed by the encoder's weights and the exact encoder input, so a rerun re-reads and
re-decodes the data (that is how the key is known) but encodes nothing twice.

The output has the tensors of the synthetic path (``bacl.featureset``) except the boundary
negatives, which real data does not have: evaluation then reports retrieval only. Captions
longer than the text context are truncated (CLIP's tokenizer does the same); ``caption_id`` groups
identical caption strings, the caption equivalence the synthetic benchmarks use.
"""

import hashlib
import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bacl.data.cache import cache_key, content_sha256, extract_and_cache
from bacl.data.features import BENCHMARK_MODALITY, _trim_text_padding
from bacl.data.readers import ReadReport
from bacl.data.readers_audio import iter_audio_text
from bacl.data.readers_video import iter_video_text
from bacl.data.readers_webdataset import iter_image_text_shards
from bacl.data.synthetic import log_mel_spectrogram
from bacl.encoders import load_encoder
from bacl.featureset import FeatureSet

logger = logging.getLogger("extract_real_features")

# The encoder's resize interpolation (an open_clip preprocess setting) as PIL's filter.
_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "nearest": Image.Resampling.NEAREST}


def fit_image(image, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """uint8 (h, w, 3) of a PIL image or uint8 (H, W, 3) array: resized (aspect kept, antialiased)
    to cover ``size`` = (h, w), then centre-cropped, as open_clip's eval transform does."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    height, width = size
    scale = max(height / image.height, width / image.width)
    covering = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if covering != image.size:
        image = image.resize(covering, _PIL_FILTERS[interpolation])
    left, top = round((covering[0] - width) / 2), round((covering[1] - height) / 2)
    return np.asarray(image.crop((left, top, left + width, top + height)).convert("RGB"))


def open_reader(data: dict, split_data: dict, report: ReadReport):
    """The reader of ``data["source"]`` over one split: an iterator of (key, media, caption).

    Missing local files (shards, metadata table, media root) raise FileNotFoundError naming them now.
    """
    source = data["source"]
    if source == "webdataset":
        return iter_image_text_shards(split_data["shards"], data["max_bad_fraction"], report=report)
    if source == "video":
        columns = data["columns"]
        return iter_video_text(split_data["metadata"], data["root"], data["num_frames"], data["max_bad_fraction"],
                               report=report, key_column=columns["key"], caption_columns=tuple(columns["captions"]),
                               folder_column=columns["folder"], path_column=columns["path"])
    if source == "audio":
        columns = data["columns"]
        return iter_audio_text(split_data["metadata"], data["root"], data["sample_rate"], data["duration_s"],
                               data["crop"], data["max_bad_fraction"], report=report, key_column=columns["key"],
                               caption_columns=tuple(columns["captions"]))
    raise ValueError(f"source {source!r} is not one of 'webdataset', 'video', 'audio'")


def take(samples, max_samples: int | None, report: ReadReport, max_bad_fraction: float):
    """The reader's samples, at most ``max_samples`` (None: all). A reader checks its quality gate
    after its last sample; when the cut ends the read early, the gate is checked here instead."""
    if max_samples is None:
        yield from samples
        return
    for count, sample in enumerate(samples, start=1):
        yield sample
        if count == max_samples:
            samples.close()  # the reader's open shard or table
            report.log()
            report.raise_if_too_bad(max_bad_fraction)
            return


def chunks(samples, size: int):
    """Lists of ``size`` consecutive samples (the last one shorter)."""
    chunk = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _encode(encoder, inputs, kind: str, role: str, split: str, cache_root: Path, batch_size: int,
            **options) -> tuple[dict[str, torch.Tensor], str]:
    """Features of ``inputs`` through the cache, keyed by the inputs' content; also that content hash."""
    digest = content_sha256(inputs)
    settings = {"kind": kind, "role": role, "batch_size": batch_size, "data": "real", **options}
    key = cache_key(encoder.name, encoder.weights_id, digest, split, settings)
    features = extract_and_cache(encoder, inputs, kind, cache_root / key[:16], key, batch_size, progress=False,
                                 **options)
    return features, digest


def real_feature_set(benchmark: str, split: str, data: dict, split_data: dict, encoders: dict, cache_root,
                     batch_size: int, chunk_size: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of the feature set of one real split (see the module docstring).

    ``data``: the benchmark's validated config section without ``splits``; ``split_data``: the
    split's (paths, ``max_samples``). ``encoders``: ``{family: FrozenEncoder}`` of the benchmark's
    one family (image or audio); its text tower encodes the captions, as on synthetic data.
    """
    if len(encoders) != 1:
        raise ValueError(f"{benchmark} needs the encoder of one family, got {sorted(encoders)}")
    ((family, encoder),) = encoders.items()
    report = ReadReport(description=f"{benchmark}/{split} ({data['source']})")
    try:
        reader = open_reader(data, split_data, report)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"data.{benchmark}.splits.{split}: {error}") from error
    samples = take(reader, split_data.get("max_samples"), report, data["max_bad_fraction"])
    size, interpolation = encoder.input_spec.size, encoder.input_spec.interpolation.value
    if data["source"] == "video":
        fit = lambda clip: np.stack([fit_image(frame, size, interpolation) for frame in clip])  # noqa: E731
        kind, media_batch = "video", max(1, batch_size // data["num_frames"])  # batch_size counts frames
    elif data["source"] == "audio":
        fit, kind, media_batch = (lambda wave: wave), "audio", batch_size
    else:
        fit, kind, media_batch = (lambda image: fit_image(image, size, interpolation)), "image", batch_size
    cache_root, parts, captions, digests = Path(cache_root), defaultdict(list), [], []
    started = time.perf_counter()
    # Fit each sample as it arrives: a chunk holds model-size media only, not the decoded originals.
    for index, chunk in enumerate(chunks(((caption, fit(media)) for _, media, caption in samples), chunk_size)):
        chunk_captions = [caption for caption, _ in chunk]
        inputs = np.stack([media for _, media in chunk])
        if kind == "audio":
            inputs = log_mel_spectrogram(inputs, sample_rate=data["sample_rate"])
        x, x_digest = _encode(encoder, inputs, kind, "x", split, cache_root, media_batch)
        text, text_digest = _encode(encoder, chunk_captions, "text", "caption", split, cache_root, batch_size,
                                    truncate=True)
        del inputs
        for name, tensor in (("x", x["global"]), ("x_tokens", x["tokens"].half()), ("x_token_mask", x["token_mask"]),
                             ("text", text["global"]), ("text_tokens", text["tokens"].half()),
                             ("text_token_mask", text["token_mask"])):
            parts[name].append(tensor)
        captions += chunk_captions
        digests += [x_digest, text_digest]
        logger.info("chunk %d: %d samples (%d so far, %.0f s)", index, len(chunk), len(captions),
                    time.perf_counter() - started)
    # One tensor at a time, each list of parts freed once joined: peak memory ~ the set plus one tensor.
    tensors = {name: torch.cat(parts.pop(name)) for name in list(parts)}
    caption_ids: dict[str, int] = {}
    tensors["caption_id"] = torch.as_tensor([caption_ids.setdefault(c, len(caption_ids)) for c in captions],
                                            dtype=torch.long)
    _trim_text_padding(tensors)
    meta = {"modality": BENCHMARK_MODALITY[benchmark], "split": split, "source": data["source"],
            "dataset_sha256": hashlib.sha256("|".join(digests).encode()).hexdigest(),
            "encoders": {family: encoder.weights_id},
            "distinct_captions": len(caption_ids), "boundary_negatives": False,
            "max_samples": split_data.get("max_samples"),
            "read": {"good": report.n_good, "bad": report.n_bad, "bad_by_reason": dict(report.bad_by_reason),
                     "broken_sources": len(report.source_errors)}}
    return tensors, meta


def main(rule) -> None:
    logging.basicConfig(filename=rule.log[0], level=logging.INFO)
    torch.set_num_threads(rule.threads)
    benchmark, split, device = rule.wildcards.benchmark, rule.wildcards.split, rule.params.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("config key 'device' is 'cuda', but this job sees no CUDA device (a GPU node?)")
    encoders = {family: load_encoder(settings["model"], weights, device=device)
                for family, (settings, weights) in rule.params.encoders.items()}
    tensors, meta = real_feature_set(benchmark, split, rule.params.data, rule.params.split_data, encoders,
                                     rule.params.cache, rule.params.batch_size, rule.params.chunk_size)
    FeatureSet(tensors, meta, source=rule.output[0])  # validates shapes and finiteness before writing
    FeatureSet.write(rule.output[0], tensors, meta)
    logger.info("wrote %s: %s", rule.output[0], {k: tuple(v.shape) for k, v in tensors.items()})


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
