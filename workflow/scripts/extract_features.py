"""Frozen-encoder features of one split (through the feature cache) as a feature set file."""

import logging

import torch

from bacl.data.features import synthetic_feature_set
from bacl.data.synthetic import load_dataset
from bacl.encoders import load_encoder
from bacl.featureset import FeatureSet
from joblog import redirect_to_log

rule = snakemake  # noqa: F821 (Snakemake injects the object)
redirect_to_log(rule.log[0])
torch.set_num_threads(rule.threads)
encoders = {family: load_encoder(settings["model"], weights) for family, (settings, weights) in rule.params.encoders.items()}
dataset = load_dataset(rule.input.data)
tensors, meta = synthetic_feature_set(dataset, encoders, rule.params.cache, rule.params.batch_size, progress=False)
FeatureSet(tensors, meta, source=rule.output[0])  # validates shapes and finiteness before writing
FeatureSet.write(rule.output[0], tensors, meta)
logging.info("wrote %s: %s", rule.output[0], {k: tuple(v.shape) for k, v in tensors.items()})
