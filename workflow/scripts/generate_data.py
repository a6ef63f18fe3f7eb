"""Generate one split of one synthetic benchmark (deterministic in the config's data settings)."""

import logging
import time

from bacl.data.synthetic import BENCHMARK_MODALITY, generate_split
from joblog import redirect_to_log

redirect_to_log(snakemake.log[0])  # noqa: F821
benchmark, split = snakemake.wildcards.benchmark, snakemake.wildcards.split  # noqa: F821
started = time.perf_counter()
dataset = generate_split(BENCHMARK_MODALITY[benchmark], snakemake.params.settings, split)  # noqa: F821
content_hash = dataset.save(snakemake.output[0])  # noqa: F821
logging.info("%s/%s: %d samples, %d distinct captions, hash %s, %.1f s", benchmark, split, len(dataset),
             dataset.num_distinct_captions, content_hash, time.perf_counter() - started)
