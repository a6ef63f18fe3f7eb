"""Per-type linear probes of the frozen towers' token layers on one synthetic benchmark (bacl.probe):
which block's tokens carry what each kind of boundary negative tests, against chance and against
the untrained (seeded-init) towers; the best block per token source; and how far the text tower
keeps a caption and its negatives apart. Writes one JSON file."""

import json
import logging
import time

import torch

from bacl.atomic import atomic_path
from bacl.data.features import word_encoder
from bacl.data.synthetic import config_from_mapping, load_dataset, log_mel_spectrogram, word_to_token_positions
from bacl.encoders import load_encoder
from bacl.probe import probe_summary, run_probe, text_separability
from bacl.probe_tasks import probe_spec
from joblog import redirect_to_log


def token_sources(dataset, modality: str, n: int, encoders: dict, batch_size: int) -> dict[str, torch.Tensor]:
    """name -> tokens (samples, layers, tokens, D) of the first n samples, as the feature sets hold them."""
    sources = {}
    if modality == "image":
        sources["image"] = encoders["image"].encode_all_layers(dataset.images[:n], "image", batch_size)["tokens"]
    if modality in ("video", "audio_video"):  # frame embeddings: one "layer"
        frames = encoders["image"].encode_video(dataset.frames[:n], max(1, batch_size // dataset.frames.shape[1]))
        sources["frames"] = frames["tokens"].half()[:, None]
    if modality in ("audio", "audio_video"):
        log_mels = log_mel_spectrogram(dataset.audio[:n], sample_rate=dataset.sample_rate)
        sources["audio"] = encoders["audio"].encode_all_layers(log_mels, "audio", batch_size)["tokens"]
    return sources


def text_record(dataset, n: int, encoder, batch_size: int, seed: int) -> dict:
    negatives = [(i, negative) for i in range(n) for negative in dataset.negatives[i]]
    caption = encoder.encode_all_layers(list(dataset.captions[:n]), "text", batch_size)
    negative = encoder.encode_all_layers([neg["caption"] for _, neg in negatives], "text", batch_size)
    encode_word = word_encoder(encoder)
    wrong = [word_to_token_positions(neg["caption"], neg["wrong_words"], encode_word) for _, neg in negatives]
    owner = torch.tensor([i for i, _ in negatives]).numpy()
    return text_separability(caption, negative, owner, [neg["type"] for _, neg in negatives], wrong, seed)


def main(rule) -> None:
    redirect_to_log(rule.log[0])
    torch.set_num_threads(rule.threads)
    started = time.perf_counter()
    settings, batch_size = rule.params.probe, rule.params.batch_size
    dataset = load_dataset(rule.input.data)
    modality, n = dataset.config["modality"], min(len(dataset), settings["samples"])
    config = config_from_mapping(modality, dataset.config)
    trained = {f: load_encoder(s["model"], weights) for f, (s, weights) in rule.params.encoders.items()}
    # The untrained reference: the seeded init CLIP pre-training starts from.
    untrained = {f: load_encoder(s["model"], None, init_seed=s.get("pretrain", {}).get("seed", 0))
                 for f, (s, _) in rule.params.encoders.items()}
    grids = {family: tuple(e.model.visual.grid_size) for family, e in trained.items()}  # family = token source
    spec = probe_spec(modality, dataset.scenes[:n], config.palette, grids, image_size=getattr(config, "image_size", None),
                      n_samples=getattr(config, "n_samples", None))
    fit = {k: settings[k] for k in ("seed", "test_fraction", "l2", "max_iter")}
    sources = token_sources(dataset, modality, n, trained, batch_size)
    results = run_probe(spec, sources, **fit)
    reference = run_probe(spec, token_sources(dataset, modality, n, untrained, batch_size), **fit)
    summary = probe_summary(spec, results, reference, {name: tokens.shape[1] for name, tokens in sources.items()})
    text_encoder = trained["audio" if modality == "audio" else "image"]
    record = {
        "benchmark": rule.wildcards.benchmark, "modality": modality, "split": dataset.split, "samples": n, **fit,
        "encoders": {f: {"model": e.name, "weights_id": e.weights_id, "layers": e.num_layers} for f, e in trained.items()},
        **summary,
        "text": text_record(dataset, n, text_encoder, batch_size, settings["seed"]),
        "seconds": time.perf_counter() - started,
    }
    with atomic_path(rule.output[0]) as tmp:
        with open(tmp, "w") as handle:
            json.dump(record, handle, indent=2)
    logging.info("probed %s on %d samples in %.0f s: best layers %s, at chance %s", rule.wildcards.benchmark, n,
                 record["seconds"], record["best_layer"], record["at_chance_types"])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
