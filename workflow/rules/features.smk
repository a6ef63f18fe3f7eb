# Stage 3: frozen-encoder features of every split the methods use (through the feature cache),
# and the BNS candidate pools from the coarse-aligned index over the training split.

# The families whose patch tokens a benchmark's feature sets keep (video frames are frame
# embeddings, whatever the block), and the setting of their token block: "probe" (default: the
# block the probe of the family's pre-training benchmark chose, rule probe_layers), "last" or a
# block number (config key encoders.<family>.token_layer).
TOKEN_FAMILIES = {"image_text": ["image"], "video_text": [], "audio_text": ["audio"], "audio_video_text": ["audio"]}


def token_layer_setting(family):
    return config["encoders"][family].get("token_layer", "probe")


def text_family(benchmark):
    """The family whose text tower encodes the benchmark's captions (as bacl.data.features does)."""
    return "audio" if benchmark == "audio_text" else "image"


def text_layer_setting(benchmark):
    """The block of the text tokens: encoders.<family>.text_token_layer, "last" (default) or a block."""
    return config["encoders"][text_family(benchmark)].get("text_token_layer", "last")


def probe_file(benchmark):
    return f"{RESULTS}/probe/{benchmark}.json"


def token_layer_probes(wildcards):
    """The probe records that choose the benchmark's token blocks (none for fixed settings)."""
    return {f: probe_file(PRETRAIN_SOURCE[f]) for f in TOKEN_FAMILIES[wildcards.benchmark]
            if token_layer_setting(f) == "probe"}


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
