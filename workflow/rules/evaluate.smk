# Stage 5: evaluation of every run on every evaluation split.


rule evaluate:
    input:
        config=f"{RESULTS}/config.yaml",
        features=f"{RESULTS}/features/{{benchmark}}/{{split}}.safetensors",
        weights=trained_weights,
    output:
        f"{RESULTS}/eval/{{benchmark}}/{{split}}/{{method}}/seed{{seed}}.json",
    params:
        python=PYTHON,
        weights=lambda w, input: f"--weights {input.weights}" if input.weights else "",
    threads: 1
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/eval/{{benchmark}}/{{split}}/{{method}}/seed{{seed}}.log",
    shell:
        "{params.python} -m bacl evaluate --config {input.config} --method {wildcards.method} --test {input.features}"
        " {params.weights} --out {output} --threads {threads} --quiet > {log} 2>&1"
