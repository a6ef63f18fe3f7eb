# Stage 6, figures: one rule per figure of the report (PNG and PDF, figure_outputs), and the
# attention maps the CLA figure draws. Their titles (_FIGURES) and settings are in paper.smk.


rule paper_fig_training_curves:
    input:
        f"{PAPER}/data/training.json",
    output:
        **figure_outputs("training_curves"),
    params:
        methods={label: m for label, m in TABLES.get("main", {}).items() if is_trained(m)},
        key="loss",  # the total training loss every method logs
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/fig_training_curves.log",
    script:
        "../scripts/fig_training_curves.py"


if _BNS_METHODS:

    rule paper_fig_schedule_alpha:
        input:
            f"{PAPER}/data/training.json",
        output:
            **figure_outputs("schedule_alpha"),
        params:
            methods=_BNS_METHODS,
            benchmark=FIGURE_BENCHMARK,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/fig_schedule_alpha.log",
        script:
            "../scripts/fig_schedule.py"


    rule paper_fig_boundary_scores:
        input:
            f"{PAPER}/data/training.json",
        output:
            **figure_outputs("boundary_scores"),
        params:
            methods=_BNS_METHODS,
            benchmark=FIGURE_BENCHMARK,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/fig_boundary_scores.log",
        script:
            "../scripts/fig_boundary_scores.py"


if "schedule_r1" in _FIGURES:

    rule paper_fig_schedule_r1:
        input:
            f"{PAPER}/data/results.json",
        output:
            **figure_outputs("schedule_r1"),
        params:
            group=TABLES["schedules"],
            split=PAPER_SPLIT,
            direction=PAPER_DIRECTION,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/fig_schedule_r1.log",
        script:
            "../scripts/fig_schedule_r1.py"


if _HAS_ATTENTION:

    rule paper_attention_maps:
        """A+ / A- of the full BACL run (first seed) on a few test boundary negatives."""
        input:
            config=f"{RESULTS}/config.yaml",
            features=f"{RESULTS}/features/{FIGURE_BENCHMARK}/test.safetensors",
            data=f"{RESULTS}/data/{FIGURE_BENCHMARK}/test",
            weights=f"{run_dir(FIGURE_BENCHMARK, _ATTENTION_METHOD, seeds_for(_ATTENTION_METHOD)[0])}/weights.safetensors",
        output:
            f"{PAPER}/data/attention_maps.json",
        params:
            method=_ATTENTION_METHOD,
            benchmark=FIGURE_BENCHMARK,
            seed=seeds_for(_ATTENTION_METHOD)[0],
            tokenizer=config["encoders"][ENCODER_FAMILIES[FIGURE_BENCHMARK][0]]["model"],
            max_examples=MAX_ATTENTION_EXAMPLES,
        threads: 1
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/attention_maps.log",
        script:
            "../scripts/attention_maps.py"


    rule paper_fig_attention:
        input:
            f"{PAPER}/data/attention_maps.json",
        output:
            **figure_outputs("attention_maps"),
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/fig_attention.log",
        script:
            "../scripts/fig_attention.py"
