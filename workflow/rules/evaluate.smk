# Stage 5: evaluation of every run on every evaluation split, all splits of a run in one job (one
# process start and one weights load instead of one per split).


rule evaluate:
    input:
        config=f"{RESULTS}/config.yaml",
        features=expand(f"{RESULTS}/features/{{{{benchmark}}}}/{{split}}.safetensors", split=EVAL_SPLITS),
        weights=trained_weights,
    output:
        [eval_file("{benchmark}", split, "{method}", "{seed}") for split in EVAL_SPLITS],
    params:
        python=PYTHON,
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
    threads: 1
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/eval/{{benchmark}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{benchmark}}/{{method}}/seed{{seed}}.tsv"
    shell:
        "{params.python} -m bacl evaluate --config {input.config} --method {wildcards.method} --test {input.features}"
        " {params.weights} --seed {wildcards.seed} --out {output} --threads {threads} --quiet > {log} 2>&1"
