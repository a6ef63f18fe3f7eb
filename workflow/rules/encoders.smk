# Stage 2: the small frozen encoders, pre-trained with the plain CLIP loss (skipped when the
# config names pretrained weights, as at paper scale).


rule pretrain_encoder:
    """CLIP pre-training of one encoder family on its benchmark's pre-training split."""
    input:
        data=lambda w: f"{RESULTS}/data/{PRETRAIN_SOURCE[w.family]}/pretrain",
    output:
        weights=f"{RESULTS}/encoders/{{family}}.safetensors",
        report=f"{RESULTS}/encoders/{{family}}.json",
    params:
        encoder=lambda w: config["encoders"][w.family],
    threads: 1  # jobs run side by side, one core each (see THREADS_NOTE in common.smk)
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/encoders/{{family}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encoders/{{family}}.tsv"
    script:
        "../scripts/pretrain_encoder.py"
