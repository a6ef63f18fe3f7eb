"""Pre-train a small open_clip encoder with the plain CLIP loss; it is frozen from then on."""

import json
import logging

import torch

from bacl.data.synthetic import load_dataset, log_mel_spectrogram
from bacl.pretrain import pretrain_clip
from joblog import redirect_to_log

redirect_to_log(snakemake.log[0])  # noqa: F821
family, settings = snakemake.wildcards.family, snakemake.params.encoder  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
dataset = load_dataset(snakemake.input.data)  # noqa: F821
if family == "image":
    inputs = dataset.images
else:
    inputs = log_mel_spectrogram(dataset.audio, sample_rate=dataset.sample_rate)
pretraining = settings["pretrain"]
report = pretrain_clip(settings["model"], inputs, list(dataset.captions), steps=pretraining["steps"],
                       batch_size=pretraining["batch_size"], lr=pretraining["lr"], seed=pretraining["seed"],
                       out_path=snakemake.output.weights, progress=False, modality=family)  # noqa: F821
report.update(model=settings["model"], family=family, pretrain_samples=len(dataset),
              distinct_captions=int(dataset.num_distinct_captions))
with open(snakemake.output.report, "w") as out:  # noqa: F821
    json.dump(report, out, indent=2)
logging.info("pre-trained %s: loss %.3f -> %.3f in %.0f s", settings["model"], report["loss_initial"],
             report["loss_final"], report["seconds"])
