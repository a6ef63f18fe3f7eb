# Stage 4: every trainable method x benchmark x seed, through the CLI. An interrupted job
# resumes from its checkpoint in the run directory (not a declared output, so Snakemake keeps it).
# With the benchmark's val split the run also logs its validation curve (train.validate_every).


rule train:
    input:
        config=f"{RESULTS}/config.yaml",
        features=f"{RESULTS}/features/{{benchmark}}/train.safetensors",
        pools=f"{RESULTS}/features/{{benchmark}}/train_pools.safetensors",
        val=val_split_features,
    output:
        weights=f"{RESULTS}/runs/{{benchmark}}/{{method}}/seed{{seed}}/weights.safetensors",
        metrics=f"{RESULTS}/runs/{{benchmark}}/{{method}}/seed{{seed}}/metrics.jsonl",
        summary=f"{RESULTS}/runs/{{benchmark}}/{{method}}/seed{{seed}}/summary.json",
    params:
        python=PYTHON,
        run_dir=lambda w: run_dir(w.benchmark, w.method, w.seed),
        val=lambda w, input: f" --val {input.val}" if input.val else "",
    threads: 1
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/train/{{benchmark}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{benchmark}}/{{method}}/seed{{seed}}.tsv"
    shell:
        "{params.python} -m bacl train --config {input.config} --method {wildcards.method} --train {input.features}"
        " --pools {input.pools}{params.val} --out {params.run_dir} --seed {wildcards.seed}"
        " --benchmark {wildcards.benchmark} --threads {threads} --quiet"
        " > {log} 2>&1"
