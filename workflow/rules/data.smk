# Stage 1: the synthetic boundary benchmarks (CPU scale).


rule generate_data:
    """One split of one benchmark, deterministic in the config's data settings."""
    output:
        directory(f"{RESULTS}/data/{{benchmark}}/{{split}}"),
    params:
        settings=lambda w: config["data"].get(w.benchmark, {}),
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/data/{{benchmark}}_{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/{{benchmark}}_{{split}}.tsv"
    script:
        "../scripts/generate_data.py"
