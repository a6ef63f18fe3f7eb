# Stage 3 at paper scale: frozen-encoder features of real datasets. A benchmark whose config
# `data.<benchmark>` has a `source` key is read from local paths by bacl.data.readers_* and
# written in the same feature-set format as the synthetic path's extract_features, to the same
# file, so candidate_index, train, evaluate and the paper rules run on it unchanged.
#
# The data paths are params, not inputs: a dry run works on any machine (the data live on the
# cluster), and the job checks every path first, failing with an error that names the path and
# its config key. Snakemake still reruns the job when a path or setting changes (params are a
# rerun trigger); a dataset changed in place under the same paths is not noticed.

# Which reader serves which benchmark is the schema's business (data.<benchmark>.source).
REAL_BENCHMARKS = [b for b in BENCHMARKS if "source" in config["data"].get(b, {})]


# Stop at parse time (before any job) on a config the real-data jobs could not run.
for _benchmark in REAL_BENCHMARKS:
    _missing = [split for split in FEATURE_SPLITS if split not in config["data"][_benchmark]["splits"]]
    if _missing:
        raise ValueError(f"data.{_benchmark}.splits.{_missing[0]} is missing: the pipeline extracts features of "
                         f"{FEATURE_SPLITS} (train and evaluate.splits); add its paths or drop it from evaluate.splits")
    for _family in ENCODER_FAMILIES[_benchmark]:
        if not config["encoders"][_family]["pretrained"]:  # the pipeline pre-trains on synthetic splits only
            raise ValueError(f"encoders.{_family}.pretrained is null, but data.{_benchmark} is real data: name "
                             "the encoder's weights (a local file or a cached open_clip tag)")


if REAL_BENCHMARKS:

    # Both rules can make features/<benchmark>/<split>.safetensors; for a real benchmark this one.
    ruleorder: extract_real_features > extract_features

    rule extract_real_features:
        """Features of one split of a real dataset, through the feature cache, chunk by chunk."""
        output:
            f"{RESULTS}/features/{{benchmark}}/{{split}}.safetensors",
        params:
            data=lambda w: {key: value for key, value in config["data"][w.benchmark].items() if key != "splits"},
            split_data=lambda w: config["data"][w.benchmark]["splits"][w.split],
            encoders=lambda w: {f: (config["encoders"][f], encoder_weights(f)) for f in ENCODER_FAMILIES[w.benchmark]},
            device=config["device"],
            cache=f"{RESULTS}/cache",
            batch_size=config["features"]["batch_size"],
            chunk_size=config["features"]["chunk_size"],
        wildcard_constraints:
            benchmark="|".join(REAL_BENCHMARKS),
        threads: config["threads"]
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/features/{{benchmark}}_{{split}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/features/{{benchmark}}_{{split}}.tsv"
        script:
            "../scripts/extract_real_features.py"
