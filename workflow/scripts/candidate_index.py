"""BNS candidate pools: nearest neighbours of the frozen training embeddings (the coarse index)."""

import logging
import time

from bacl.data.features import candidate_pools
from bacl.featureset import FeatureSet
from joblog import redirect_to_log

redirect_to_log(snakemake.log[0])  # noqa: F821
started = time.perf_counter()
features = FeatureSet.load(snakemake.input[0])  # noqa: F821
pools = candidate_pools(features.tensors, snakemake.params.pool_size, snakemake.params.kind)  # noqa: F821
FeatureSet.write(snakemake.output[0], pools, {"pool_size": snakemake.params.pool_size,  # noqa: F821
                                              "index": snakemake.params.kind})  # noqa: F821
logging.info("pools %s in %.1f s", {k: tuple(v.shape) for k, v in pools.items()}, time.perf_counter() - started)
