"""Frozen-encoder features of one split of a real dataset (paper scale), as a feature set.

The split is read by its reader (``bacl.data.readers_webdataset`` / ``_video`` / ``_audio`` /
``_audio_video``:
unreadable samples are skipped, counted, and checked against ``max_bad_fraction``), each image or
frame resized to cover the encoder's input size and centre-cropped as it arrives (open_clip's eval
transform, so only model-size uint8 is held), audio turned into the synthetic path's log-mels, and
the whole encoded chunk by chunk through the feature cache (``bacl.data.cache``). A chunk's cache
entry is keyed by the encoder's weights and the exact encoder input, so a rerun re-reads and
re-decodes the data (that is how the key is known) but encodes nothing twice.

The output has the tensors of the synthetic path (``bacl.featureset``) except the boundary
negatives, which real data does not have: evaluation then reports retrieval only. On audio-video
data, x is the video and audio embeddings side by side (GRAM sees them apart, as
``modality_video`` / ``modality_audio``), the token context is the T frame embeddings followed by
the sound track's embedding (one token: the audio tower's patch tokens are wider than the frame
embeddings at ViT-B-16), and an evaluated split gets multiple-choice options
(:func:`distractor_negatives`) in the negative slots, without wrong-token positions. Captions
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
from bacl.data.features import _trim_text_padding
from bacl.data.readers import ReadReport
from bacl.data.readers_audio import iter_audio_text
from bacl.data.readers_audio_video import iter_audio_video_text
from bacl.data.readers_video import iter_video_text
from bacl.data.readers_webdataset import iter_image_text_shards
from bacl.data.synthetic import BENCHMARK_MODALITY, log_mel_spectrogram
from bacl.encoders import load_encoder
from bacl.featureset import FeatureSet
from joblog import redirect_to_log

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
    if source == "audio_video":
        columns = data["columns"]
        return iter_audio_video_text(split_data["metadata"], data["root"], data["num_frames"], data["sample_rate"],
                                     data["duration_s"], data["crop"], data["max_bad_fraction"], report=report,
                                     key_column=columns["key"], caption_columns=tuple(columns["captions"]),
                                     folder_column=columns["folder"], path_column=columns["path"])
    raise ValueError(f"source {source!r} is not one of 'webdataset', 'video', 'audio', 'audio_video'")


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


# The frozen encoder families each reader's media go through (the text tower is the image one's,
# except on audio-only data, as on the synthetic benchmarks).
SOURCE_FAMILIES = {"webdataset": ("image",), "video": ("image",), "audio": ("audio",),
                   "audio_video": ("image", "audio")}


def _fitter(source: str, encoders: dict):
    """The per-sample step from decoded media to encoder-size media (images and frames resized and
    centre-cropped as they arrive, so a chunk holds model-size media only)."""
    if source == "audio":
        return lambda wave: wave
    size, interpolation = encoders["image"].input_spec.size, encoders["image"].input_spec.interpolation.value
    image = lambda picture: fit_image(picture, size, interpolation)  # noqa: E731
    clip = lambda frames: np.stack([image(frame) for frame in frames])  # noqa: E731
    if source == "video":
        return clip
    if source == "audio_video":
        return lambda media: (clip(media[0]), media[1])
    return image


def _non_text(source: str, media: list, encoders: dict, data: dict, encode) -> tuple[dict, list[str]]:
    """x, x_tokens, x_token_mask (and modality_video / modality_audio on audio-video data) of one
    chunk of fitted media, with the content hashes of what was encoded. ``encode(family, inputs,
    kind, role, frames_per_item)`` runs one family's encoder through the cache."""
    if source in ("webdataset", "video"):
        kind, frames = ("image", 1) if source == "webdataset" else ("video", data["num_frames"])
        out, digest = encode("image", np.stack(media), kind, "x", frames)
        return {"x": out["global"], "x_tokens": out["tokens"].half(), "x_token_mask": out["token_mask"]}, [digest]
    waves = np.stack([item[1] for item in media]) if source == "audio_video" else np.stack(media)
    audio, audio_digest = encode("audio", log_mel_spectrogram(waves, sample_rate=data["sample_rate"]), "audio",
                                 "x" if source == "audio" else "audio", 1)
    if source == "audio":
        return {"x": audio["global"], "x_tokens": audio["tokens"].half(), "x_token_mask": audio["token_mask"]}, \
            [audio_digest]
    video, video_digest = encode("image", np.stack([item[0] for item in media]), "video", "video", data["num_frames"])
    if video["tokens"].shape[-1] != audio["global"].shape[-1]:
        raise ValueError(f"frame embeddings ({video['tokens'].shape[-1]} wide) and the sound track's embedding "
                         f"({audio['global'].shape[-1]}) must have one width to share a token context: give "
                         "encoders.image and encoders.audio the same embedding width")
    n = len(media)
    return {"x": torch.cat([video["global"], audio["global"]], dim=-1),
            "x_tokens": torch.cat([video["tokens"], audio["global"][:, None]], dim=1).half(),
            "x_token_mask": torch.cat([video["token_mask"], torch.ones(n, 1, dtype=torch.bool)], dim=1),
            "modality_video": video["global"], "modality_audio": audio["global"]}, [video_digest, audio_digest]


def distractor_negatives(tensors: dict[str, torch.Tensor], distractors: int, seed: int) -> dict[str, torch.Tensor]:
    """Multiple-choice options of every row: ``distractors`` captions of other rows with another
    caption, drawn uniformly without replacement by a generator seeded with ``seed`` (the same
    options for every method), in the feature set's negative slots (N, K, ...); ``negative_type``
    is 0 ("distractor") everywhere, and there are no wrong-token positions (no AEL).

    Needs ``text`` (N, E), ``text_tokens`` (N, Lt, Dt), ``text_token_mask`` and ``text_token_ids`` (N, Lt),
    ``caption_id`` (N,).
    """
    ids = tensors["caption_id"].numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for row in range(len(ids)):
        others = np.flatnonzero(ids != ids[row])
        if len(others) < distractors:
            raise ValueError(f"multiple_choice.distractors={distractors}, but row {row} has only {len(others)} "
                             "rows with another caption in its split: lower it or evaluate on more clips")
        rows.append(rng.choice(others, distractors, replace=False))
    picked = torch.as_tensor(np.stack(rows), dtype=torch.long)  # (N, K)
    return {"negative_text": tensors["text"][picked], "negative_text_tokens": tensors["text_tokens"][picked],
            "negative_text_token_mask": tensors["text_token_mask"][picked],
            "negative_text_token_ids": tensors["text_token_ids"][picked],
            "negative_mask": torch.ones(picked.shape, dtype=torch.bool),
            "negative_type": torch.zeros(picked.shape, dtype=torch.long)}


def real_feature_set(benchmark: str, split: str, data: dict, split_data: dict, encoders: dict, cache_root,
                     batch_size: int, chunk_size: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of the feature set of one real split (see the module docstring).

    ``data``: the benchmark's validated config section without ``splits``; ``split_data``: the
    split's (paths, ``max_samples``). ``encoders``: ``{family: FrozenEncoder}`` of the families the
    source needs (``SOURCE_FAMILIES``); the text tower encodes the captions, as on synthetic data.
    ``batch_size`` counts images, frames or clips per encoder call.
    """
    source = data["source"]
    if set(encoders) != set(SOURCE_FAMILIES[source]):
        raise ValueError(f"{benchmark} ({source}) needs the encoders {SOURCE_FAMILIES[source]}, got {sorted(encoders)}")
    report = ReadReport(description=f"{benchmark}/{split} ({source})")
    try:
        reader = open_reader(data, split_data, report)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"data.{benchmark}.splits.{split}: {error}") from error
    samples = take(reader, split_data.get("max_samples"), report, data["max_bad_fraction"])
    text_encoder = encoders["image" if "image" in encoders else "audio"]
    cache_root, parts, captions, digests = Path(cache_root), defaultdict(list), [], []

    def encode(family, inputs, kind, role, frames_per_item):
        return _encode(encoders[family], inputs, kind, role, split, cache_root, max(1, batch_size // frames_per_item))

    started, fit = time.perf_counter(), _fitter(source, encoders)
    for index, chunk in enumerate(chunks(((caption, fit(media)) for _, media, caption in samples), chunk_size)):
        chunk_captions = [caption for caption, _ in chunk]
        x, x_digests = _non_text(source, [media for _, media in chunk], encoders, data, encode)
        text, text_digest = _encode(text_encoder, chunk_captions, "text", "caption", split, cache_root, batch_size,
                                    truncate=True)
        x.update(text=text["global"], text_tokens=text["tokens"].half(), text_token_mask=text["token_mask"],
                 text_token_ids=text["token_ids"].long())
        for name, tensor in x.items():
            parts[name].append(tensor)
        captions += chunk_captions
        digests += [*x_digests, text_digest]
        logger.info("chunk %d: %d samples (%d so far, %.0f s)", index, len(chunk), len(captions),
                    time.perf_counter() - started)
    # One tensor at a time, each list of parts freed once joined: peak memory ~ the set plus one tensor.
    tensors = {name: torch.cat(parts.pop(name)) for name in list(parts)}
    caption_ids: dict[str, int] = {}
    tensors["caption_id"] = torch.as_tensor([caption_ids.setdefault(c, len(caption_ids)) for c in captions],
                                            dtype=torch.long)
    meta = {"modality": BENCHMARK_MODALITY[benchmark], "split": split, "source": source,
            "dataset_sha256": hashlib.sha256("|".join(digests).encode()).hexdigest(),
            "encoders": {family: encoder.weights_id for family, encoder in encoders.items()},
            "distinct_captions": len(caption_ids), "boundary_negatives": False,
            "max_samples": split_data.get("max_samples"),
            "read": {"good": report.n_good, "bad": report.n_bad, "bad_by_reason": dict(report.bad_by_reason),
                     "broken_sources": len(report.source_errors)}}
    if source == "audio_video" and split != "train":  # the audio-video column's multiple choice
        choice = data["multiple_choice"]
        tensors.update(distractor_negatives(tensors, choice["distractors"], choice["seed"]))
        meta.update(negative_types=["distractor"], multiple_choice=dict(choice))
    _trim_text_padding(tensors)
    return tensors, meta


def main(rule) -> None:
    redirect_to_log(rule.log[0])
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
