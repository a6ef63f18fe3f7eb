"""Frozen-encoder features of one split (through the feature cache) as a feature set file."""

import logging

import torch

from bacl.data.features import synthetic_feature_set
from bacl.data.synthetic import load_dataset
from bacl.encoders import load_encoder
from bacl.featureset import FeatureSet

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
encoders = {family: load_encoder(settings["model"], weights)
            for family, (settings, weights) in snakemake.params.encoders.items()}  # noqa: F821
dataset = load_dataset(snakemake.input.data)  # noqa: F821
tensors, meta = synthetic_feature_set(dataset, encoders, snakemake.params.cache, snakemake.params.batch_size,
                                      progress=False)  # noqa: F821
FeatureSet(tensors, meta, source=snakemake.output[0])  # validates shapes and finiteness before writing  # noqa: F821
FeatureSet.write(snakemake.output[0], tensors, meta)  # noqa: F821
logging.info("wrote %s: %s", snakemake.output[0], {k: tuple(v.shape) for k, v in tensors.items()})  # noqa: F821
