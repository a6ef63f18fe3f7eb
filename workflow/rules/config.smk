# Stage 0: the validated config as a file, for the CLI steps.


rule resolved_config:
    """The validated config (defaults filled) as one file: what the CLI steps read."""
    output:
        f"{RESULTS}/config.yaml",
    params:
        config=config,
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/resolved_config.log",
    script:
        "../scripts/write_config.py"
