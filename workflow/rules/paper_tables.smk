# Stage 6, tables: one rule per table of the report, in .md, .csv, .tex and .html (table_outputs).
# Their titles (_TABLES), settings and ablation groups (_ABLATIONS) are in paper.smk.


rule paper_table_main:
    input:
        results=f"{PAPER}/data/results.json",
        probes=_PROBE_FILES,
    output:
        **table_outputs("main"),
    params:
        rows=TABLES.get("main", {}),
        floor=TABLES.get("floor", {}),
        split=PAPER_SPLIT,
        direction=PAPER_DIRECTION,
        with_paper=True,
        title=_TABLES["main"],
        real_benchmarks=REAL_BENCHMARKS,
        beyond_paper=_BEYOND_PAPER,
        probe_benchmarks=_PROBED,
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/table_main.log",
    script:
        "../scripts/table_main.py"


if "heldout" in _TABLES:

    rule paper_table_heldout:
        input:
            results=f"{PAPER}/data/results.json",
            probes=_PROBE_FILES,
        output:
            **table_outputs("heldout"),
        params:
            rows=TABLES.get("main", {}),
            floor=TABLES.get("floor", {}),
            split="test_heldout",
            direction=PAPER_DIRECTION,
            with_paper=False,
            title=_TABLES["heldout"],
            real_benchmarks=REAL_BENCHMARKS,
            beyond_paper=_BEYOND_PAPER,
            probe_benchmarks=_PROBED,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_heldout.log",
        script:
            "../scripts/table_main.py"


if _HEAD_ROWS:

    rule paper_table_reranked:
        input:
            f"{PAPER}/data/results.json",
        output:
            **table_outputs("reranked"),
        params:
            methods=_HEAD_ROWS,
            split=PAPER_SPLIT,
            direction=PAPER_DIRECTION,
            title=_TABLES["reranked"],
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_reranked.log",
        script:
            "../scripts/table_reranked.py"


    for _view, _layout in (("heads", "summary"), ("heads_by_type", "by_type")):

        rule:
            name:
                f"paper_table_{_view}"
            input:
                results=f"{PAPER}/data/results.json",
                probes=_PROBE_FILES,
            output:
                **table_outputs(_view),
            params:
                view=_layout,
                methods=_HEAD_ROWS,
                floor=TABLES.get("floor", {}),
                probe_benchmarks=_PROBED,
                split=PAPER_SPLIT,
                direction=PAPER_DIRECTION,
                title=_TABLES[_view],
            conda:
                "../../environment.yml"
            log:
                f"{RESULTS}/logs/paper/table_{_view}.log",
            script:
                "../scripts/table_heads.py"


if _FLOOR_METHOD is not None:

    rule paper_table_encoder_quality:
        input:
            results=f"{PAPER}/data/results.json",
            probes=_PROBE_FILES,
        output:
            **table_outputs("encoder_quality"),
        params:
            method=_FLOOR_METHOD,
            split=PAPER_SPLIT,
            direction=PAPER_DIRECTION,
            title=_TABLES["encoder_quality"],
            probe_benchmarks=_PROBED,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_encoder_quality.log",
        script:
            "../scripts/table_encoder_quality.py"


for _name, _spec in _ABLATIONS.items():

    rule:
        name:
            f"paper_table_{_name}"
        input:
            results=f"{PAPER}/data/results.json",
            probes=_PROBE_FILES,
        output:
            **table_outputs(_name),
        params:
            group=TABLES[_name],
            split=PAPER_SPLIT,
            metrics=_spec["metrics"],
            direction=PAPER_DIRECTION,
            title=_spec["title"],
            reference=_spec["reference"],
            sum_of_parts=_spec["sum_of_parts"],
            row_format=_spec.get("row_format", "{}"),
            probe_benchmarks=_PROBED,
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_{_name}.log",
        script:
            "../scripts/table_ablation.py"


if _PRETRAINED_FAMILIES:

    rule paper_table_encoders:
        input:
            [f"{RESULTS}/encoders/{family}.json" for family in _PRETRAINED_FAMILIES],
        output:
            **table_outputs("encoders"),
        params:
            families=_PRETRAINED_FAMILIES,
            title=_TABLES["encoders"],
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_encoders.log",
        script:
            "../scripts/table_encoders.py"


if _SIBLING_BENCHMARKS:

    rule paper_table_siblings:
        input:
            pools=[f"{RESULTS}/features/{b}/train_pools.safetensors" for b in _SIBLING_BENCHMARKS],
            results=f"{PAPER}/data/results.json",
            training=f"{PAPER}/data/training.json",
        output:
            **table_outputs("siblings"),
        params:
            benchmarks=_SIBLING_BENCHMARKS,
            floor=_FLOOR_METHOD,
            bns=_BNS_MAIN,
            split=PAPER_SPLIT,
            direction=PAPER_DIRECTION,
            title=_TABLES["siblings"],
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_siblings.log",
        script:
            "../scripts/table_siblings.py"


if _TRAINED:

    rule paper_table_convergence:
        input:
            training=f"{PAPER}/data/training.json",
            pools=[f"{RESULTS}/features/{b}/train_pools.safetensors" for b in _SIBLING_BENCHMARKS],
        output:
            **table_outputs("convergence"),
        params:
            benchmarks=_SIBLING_BENCHMARKS,
            methods=_TRAINED,
            title=_TABLES["convergence"],
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_convergence.log",
        script:
            "../scripts/table_convergence.py"


rule paper_table_theory:
    input:
        THEORY_VERDICTS,
    output:
        **table_outputs("theory"),
    params:
        title=_TABLES["theory"],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/table_theory.log",
    script:
        "../scripts/table_theory.py"
