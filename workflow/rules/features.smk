# Stage 3: frozen-encoder features of every split the methods use (through the feature cache),
# and the BNS candidate pools from the coarse-aligned index over the training split.


rule extract_features:
    input:
        data=f"{RESULTS}/data/{{benchmark}}/{{split}}",
        encoders=pipeline_encoder_weights,
    output:
        f"{RESULTS}/features/{{benchmark}}/{{split}}.safetensors",
    params:
        encoders=lambda w: {f: (config["encoders"][f], encoder_weights(f)) for f in ENCODER_FAMILIES[w.benchmark]},
        cache=f"{RESULTS}/cache",
        batch_size=config["features"]["batch_size"],
    threads: 1  # jobs run side by side, one core each (see THREADS_NOTE in common.smk)
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/features/{{benchmark}}_{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{benchmark}}_{{split}}.tsv"
    script:
        "../scripts/extract_features.py"


rule candidate_index:
    input:
        f"{RESULTS}/features/{{benchmark}}/train.safetensors",
    output:
        f"{RESULTS}/features/{{benchmark}}/train_pools.safetensors",
    params:
        pool_size=config["index"]["pool_size"],
        kind=config["index"]["kind"],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/index/{{benchmark}}.log",
    script:
        "../scripts/candidate_index.py"
