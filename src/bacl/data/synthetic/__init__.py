"""Procedural boundary benchmarks (CPU scale): image-, video-, audio- and audio-video-text.

Every sample has a caption from a small grammar, a ``caption_id`` shared by equivalent captions
(retrieval ground truth is caption equivalence), boundary negatives (half-true captions with
the positions of their wrong words), a structured scene description and a sibling ``group``:
samples come in groups of a base scene and variants of it, each one boundary edit away and
rendered from the edited scene, and each sample lists the group members whose caption is a
one-edit boundary negative of it (``siblings``). Splits: ``pretrain``
(for pre-training the small encoders), ``train``, ``val``, ``test`` and ``test_heldout`` (scenes
with held-out attribute pairs that no other split uses, not even in a negative). Output is a
deterministic function of the config: same seed, same bytes.

    datasets = generate("image", ImageTextConfig(n_pretrain=2000))
    datasets["test"].save("results/data/image/test")
"""

from __future__ import annotations

from collections.abc import Mapping

from .audio import log_mel_spectrogram
from .audio_text import generate_audio_split
from .audio_video_text import generate_audio_video_split
from .config import (
    SPLITS,
    AudioTextConfig,
    AudioVideoTextConfig,
    ImageTextConfig,
    SyntheticConfig,
    VideoTextConfig,
    config_from_mapping,
)
from .dataset import (
    AudioTextDataset,
    AudioVideoTextDataset,
    ImageTextDataset,
    SyntheticDataset,
    VideoTextDataset,
    load_dataset,
    multiple_choice,
    read_content_hash,
)
from .grammar import NegativeType
from .image_text import generate_image_split
from .tokens import word_to_token_positions, word_token_spans
from .video_text import generate_video_split

__all__ = [
    "BENCHMARK_MODALITY", "MODALITIES", "SPLITS", "AudioTextConfig", "AudioTextDataset", "AudioVideoTextConfig", "AudioVideoTextDataset",
    "ImageTextConfig", "ImageTextDataset", "NegativeType", "SyntheticConfig", "SyntheticDataset", "VideoTextConfig",
    "VideoTextDataset", "config_from_mapping", "generate", "generate_split", "load_dataset", "log_mel_spectrogram",
    "multiple_choice", "read_content_hash", "word_to_token_positions", "word_token_spans",
]

_GENERATORS = {
    "image": (ImageTextConfig, generate_image_split),
    "video": (VideoTextConfig, generate_video_split),
    "audio": (AudioTextConfig, generate_audio_split),
    "audio_video": (AudioVideoTextConfig, generate_audio_video_split),
}
MODALITIES = tuple(_GENERATORS)
# Benchmark names in configs and tables -> generator modality.
BENCHMARK_MODALITY = {"image_text": "image", "video_text": "video", "audio_text": "audio",
                      "audio_video_text": "audio_video"}


def _resolve(modality: str, config: SyntheticConfig | Mapping | None) -> SyntheticConfig:
    if modality not in _GENERATORS:
        raise ValueError(f"modality={modality!r} is not one of {MODALITIES}")
    config_class = _GENERATORS[modality][0]
    if config is None:
        return config_class()
    if isinstance(config, Mapping):
        return config_from_mapping(modality, config)
    if type(config) is not config_class:
        raise ValueError(f"config for modality {modality!r} must be a {config_class.__name__} (or a mapping), "
                         f"got {type(config).__name__}")
    return config


def generate_split(modality: str, config: SyntheticConfig | Mapping | None, split: str) -> SyntheticDataset:
    """One split of ``modality`` ("image", "video", "audio", "audio_video"); ``config`` None = defaults."""
    config = _resolve(modality, config)
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    return _GENERATORS[modality][1](config, split)


def generate(modality: str, config: SyntheticConfig | Mapping | None = None) -> dict[str, SyntheticDataset]:
    """Every split of ``modality``, keyed by split name in the order of ``SPLITS``."""
    config = _resolve(modality, config)
    return {split: _GENERATORS[modality][1](config, split) for split in SPLITS}
