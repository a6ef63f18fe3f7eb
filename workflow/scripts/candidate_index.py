"""BNS candidate pools: nearest neighbours of the frozen training embeddings (the coarse index).

On sibling-structured data the pools' metadata also records how many pool entries are the
anchor's group members and one-edit siblings (``sibling_shares``, per direction): whether the
boundary negatives the paper is about reach the sampler at all.
"""

import logging
import time

from bacl.data.features import candidate_pools
from bacl.featureset import FeatureSet
from bacl.metrics.siblings import sibling_shares
from joblog import redirect_to_log

redirect_to_log(snakemake.log[0])  # noqa: F821
started = time.perf_counter()
features = FeatureSet.load(snakemake.input[0])  # noqa: F821
pools = candidate_pools(features.tensors, snakemake.params.pool_size, snakemake.params.kind)  # noqa: F821
meta = {"pool_size": snakemake.params.pool_size, "index": snakemake.params.kind}  # noqa: F821
if "sibling_index" in features:
    meta["sibling_shares"] = {name: sibling_shares(pools[name], features["group"], features["sibling_index"])
                              for name in ("text_neighbours", "x_neighbours")}
FeatureSet.write(snakemake.output[0], pools, meta)  # noqa: F821
logging.info("pools %s in %.1f s; sibling shares %s", {k: tuple(v.shape) for k, v in pools.items()},
             time.perf_counter() - started, meta.get("sibling_shares"))
