# Stage 3: frozen-encoder features of every split the methods use (through the feature cache),
# and the BNS candidate pools from the coarse-aligned index over the training split.

# The token blocks (encoders.<family>.token_layer / text_token_layer) come from the helpers in
# probe_common.smk (included by probe.smk; the lambdas below run after every file is read).


rule extract_features:
    input:
        unpack(lambda w: {"data": f"{RESULTS}/data/{w.benchmark}/{w.split}",
                          "encoders": pipeline_encoder_weights(w), **token_layer_probes(w)}),
    output:
        f"{RESULTS}/features/{{benchmark}}/{{split}}.safetensors",
    params:
        encoders=lambda w: {f: (config["encoders"][f], encoder_weights(f)) for f in ENCODER_FAMILIES[w.benchmark]},
        token_layers=lambda w: {f: token_layer_setting(f) for f in TOKEN_FAMILIES[w.benchmark]},
        text_layer=lambda w: (text_family(w.benchmark), text_layer_setting(w.benchmark)),
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
