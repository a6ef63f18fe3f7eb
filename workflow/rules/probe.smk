# Stage 3b: per-type linear probes of the frozen towers' token blocks (bacl.probe): which block's
# tokens carry what each kind of boundary negative tests. A family whose token_layer is "probe"
# keeps the block its pre-training benchmark's probe chose (features.smk), and the table reports
# every synthetic benchmark's probe, flagging the types at chance at every block.

include: "probe_common.smk"

# Settings (config key `probe`; each default's reason in paper/ASSUMPTIONS.md, Token features):
PROBE = {
    "split": "train",  # the split the heads train on; every config has it (smoke has no val split)
    "samples": 2000,  # samples probed: ~1000 held out for testing gives ~1-2 pp standard errors per type
    "test_fraction": 0.5,  # half fit the readouts, half score them (a seeded split by sample)
    "seed": 0,
    "l2": 1e-3,  # ridge on standardised features: fixed, never tuned per layer or type
    "max_iter": 100,  # L-BFGS iterations per readout: the same small budget for every fit
    **config.get("probe", {}),
}
# Every synthetic benchmark that runs, and the pre-training benchmarks of the families whose
# token block the probe chooses (their probe is needed even when they do not run).
# Real data has no scene descriptions to probe (its feature sets keep the last block).
_SYNTHETIC = [b for b in BENCHMARKS if b not in REAL_BENCHMARKS]
PROBE_BENCHMARKS = list(dict.fromkeys(
    _SYNTHETIC + [PRETRAIN_SOURCE[f] for b in _SYNTHETIC for f in TOKEN_FAMILIES[b] if token_layer_setting(f) == "probe"]
))
PROBE_OUTPUTS = [path for path in table_files("probe").values()] if PROBE_BENCHMARKS else []
PROBE_TABLE_TITLE = "Linear probes of the frozen towers' token blocks, per kind of boundary negative"


rule probe_layers:
    """Probe every token block of the benchmark's towers (and of their untrained init) per negative type."""
    input:
        data=f"{RESULTS}/data/{{benchmark}}/{PROBE['split']}",
        encoders=pipeline_encoder_weights,
    output:
        probe_file("{benchmark}"),
    params:
        encoders=lambda w: {f: (config["encoders"][f], encoder_weights(f)) for f in ENCODER_FAMILIES[w.benchmark]},
        probe=PROBE,
        batch_size=config["features"]["batch_size"],
    threads: 1  # jobs run side by side, one core each (see THREADS_NOTE in common.smk)
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/probe/{{benchmark}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/probe/{{benchmark}}.tsv"
    script:
        "../scripts/probe_layers.py"


if PROBE_BENCHMARKS:

    rule paper_table_probe:
        input:
            [probe_file(b) for b in PROBE_BENCHMARKS],
        output:
            **table_outputs("probe"),
        params:
            benchmarks=PROBE_BENCHMARKS,
            token_layers={f: token_layer_setting(f) for f in PRETRAIN_SOURCE},
            pretrain_source=PRETRAIN_SOURCE,
            text_layers={b: text_layer_setting(b) for b in PROBE_BENCHMARKS},
            title=PROBE_TABLE_TITLE,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_probe.log",
        script:
            "../scripts/table_probe.py"
