# Stage 6: the paper: results summaries, tables, figures, claims and the report in PAPER, all
# from the evaluations, training logs and benchmarks above. Tables are written as .md, .csv,
# .tex and .html (the HTML and the PNG figures are what `snakemake --report` shows).
# PAPER_OUTPUTS lists every file of this stage for `rule all`.
import glob
import os

TABLES = config["tables"]
# Our report settings (each is a choice the paper does not make for us):
PAPER_SPLIT = "test"  # the headline split; test_heldout gets its own table
PAPER_DIRECTION = "mean"  # R@1 / mAP = mean of text->x and x->text (the paper does not say which)
VERDICT_Z = 2.0  # an ordering is reproduced when the difference exceeds 2 standard errors
COST_TOLERANCE = 2.0  # a cost claim holds when our overhead is at most 2x the paper's
FIGURE_BENCHMARK = "image_text"  # where the curriculum figures and attention maps are drawn
MAX_ATTENTION_EXAMPLES = 4  # one per negative type of the image benchmark
THEORY_VERDICTS = f"{THEORY}/verdicts.json"  # written by rule theory_verdicts
COST_BENCHMARKS = sorted(glob.glob("benchmarks/results/*.json"))  # optional cost measurements

# The runs behind all_eval_files() and all_metric_logs() / all_train_benchmarks(), in their order.
_EVAL_RUNS = [{"benchmark": b, "split": split, "method": m, "seed": s} for b, m, s in runs() for split in EVAL_SPLITS]
_TRAIN_RUNS = [{"benchmark": b, "method": m, "seed": s} for b, m, s in runs() if is_trained(m)]
_BNS_METHODS = TABLES.get("schedules") or {label: m for label, m in TABLES.get("main", {}).items()
                                           if config["methods"][m].get("bns")}
_ATTENTION_METHOD = TABLES.get("components", {}).get("full")
# The maps show boundary negatives, which only the synthetic benchmarks have (REAL_BENCHMARKS: realdata.smk).
_HAS_ATTENTION = (FIGURE_BENCHMARK in BENCHMARKS and FIGURE_BENCHMARK not in REAL_BENCHMARKS
                  and _ATTENTION_METHOD is not None
                  and config["methods"][_ATTENTION_METHOD].get("cla", False)
                  and _ATTENTION_METHOD in methods_for(FIGURE_BENCHMARK))
_PRETRAINED_FAMILIES = sorted({f for b in BENCHMARKS for f in ENCODER_FAMILIES[b]
                               if not config["encoders"][f]["pretrained"]})
_R1 = {"label": "R@1", "metric": "retrieval.{direction}.R@1"}
_BOUNDARY = {"label": "boundary acc", "metric": "boundary.accuracy"}
# Ablation tables: config group -> title, metrics, the row the Δ columns compare with, and how a
# row label is shown (row_format, "{}" when absent).
_ABLATIONS = {
    "components": {"title": "Ablation: BNS only, CLA only and full BACL, with the sum of the parts",
                   "metrics": [_R1, _BOUNDARY], "reference": "base", "sum_of_parts": True},
    "schedules": {"title": "Curriculum schedules: Default / Aggressive / Shallow", "metrics": [_R1, _BOUNDARY],
                  "reference": None, "sum_of_parts": False},
    "lambda_local": {"title": "λ_local sweep (weight of the CLA loss)", "metrics": [_R1, _BOUNDARY],
                     "reference": None, "sum_of_parts": False, "row_format": "λ_local = {}"},
    "beta": {"title": "β sweep (CLA amplification)", "metrics": [_R1, _BOUNDARY], "reference": None,
             "sum_of_parts": False, "row_format": "β = {}"},
    "ael": {"title": "AEL (attention error localisation) with and without CLA",
            "metrics": [{"label": "AEL", "metric": "ael.ael"},
                        {"label": "AEL chance", "metric": "ael.chance", "delta": False},
                        {"label": "boundary acc (match head)", "metric": "boundary_match_head.accuracy"}],
            # the group's last entry is the method without CLA
            "reference": list(TABLES.get("ael", {}))[-1] if TABLES.get("ael") else None, "sum_of_parts": False},
}
_ABLATIONS = {name: spec for name, spec in _ABLATIONS.items() if TABLES.get(name)}


_TABLES = {"main": f"Main table: the paper's shape on the synthetic benchmarks (split {PAPER_SPLIT})",
           "reranked": "Retrieval re-ranked by a match head"}
if "test_heldout" in EVAL_SPLITS:
    _TABLES["heldout"] = "Compositional generalisation: held-out attribute pairs (split test_heldout)"
_TABLES.update({name: spec["title"] for name, spec in _ABLATIONS.items()})
if _PRETRAINED_FAMILIES:
    _TABLES["encoders"] = "Frozen encoders: CLIP pre-training of the CPU-scale towers"
_FLOOR_METHOD = next(iter(TABLES.get("floor", {}).values()), None)
if _FLOOR_METHOD is not None:
    _TABLES["encoder_quality"] = f"Frozen encoders on each benchmark, before any head is trained (split {PAPER_SPLIT})"
_FIGURES = {"training_curves": "Training curves (total loss)"}
if _BNS_METHODS:
    _FIGURES.update({"schedule_alpha": "α(η) of the three curriculum presets",
                     "boundary_scores": "Boundary scores of the negatives BNS drew, over training"})
if TABLES.get("schedules"):
    _FIGURES["schedule_r1"] = "R@1 per curriculum schedule"
if _HAS_ATTENTION:
    _FIGURES["attention_maps"] = "CLA attention on boundary negatives"

PAPER_OUTPUTS = (
    [path for name in _TABLES for path in table_files(name).values()]
    + [path for name in _FIGURES for path in figure_files(name).values()]
    + [f"{PAPER}/claims.json", f"{PAPER}/claims.md", f"{PAPER}/claims.html", f"{PAPER}/README.md"]
)


rule paper_results:
    """Seed statistics of every evaluation (the numbers of every table)."""
    input:
        all_eval_files(),  # in the order of _EVAL_RUNS
    output:
        f"{PAPER}/data/results.json",
    params:
        runs=_EVAL_RUNS,
        seeds=SEEDS,
        config_name=config["name"],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/results.log",
    script:
        "../scripts/aggregate_results.py"


rule paper_training:
    """Training curves and the training jobs' time and memory."""
    input:
        logs=all_metric_logs(),  # in the order of _TRAIN_RUNS
        benchmarks=all_train_benchmarks(),
    output:
        f"{PAPER}/data/training.json",
    params:
        runs=_TRAIN_RUNS,
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/training.log",
    script:
        "../scripts/aggregate_training.py"


rule paper_table_main:
    input:
        f"{PAPER}/data/results.json",
    output:
        **table_outputs("main"),
    params:
        rows=TABLES.get("main", {}),
        floor=TABLES.get("floor", {}),
        split=PAPER_SPLIT,
        direction=PAPER_DIRECTION,
        with_paper=True,
        title=_TABLES["main"],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/table_main.log",
    script:
        "../scripts/table_main.py"


if "heldout" in _TABLES:

    rule paper_table_heldout:
        input:
            f"{PAPER}/data/results.json",
        output:
            **table_outputs("heldout"),
        params:
            rows=TABLES.get("main", {}),
            floor=TABLES.get("floor", {}),
            split="test_heldout",
            direction=PAPER_DIRECTION,
            with_paper=False,
            title=_TABLES["heldout"],
        conda:
            "../../environment.yml"
        log:
            f"{RESULTS}/logs/paper/table_heldout.log",
        script:
            "../scripts/table_main.py"


rule paper_table_reranked:
    input:
        f"{PAPER}/data/results.json",
    output:
        **table_outputs("reranked"),
    params:
        methods={**TABLES.get("floor", {}), **TABLES.get("main", {})},
        split=PAPER_SPLIT,
        direction=PAPER_DIRECTION,
        title=_TABLES["reranked"],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/table_reranked.log",
    script:
        "../scripts/table_reranked.py"


if _FLOOR_METHOD is not None:

    rule paper_table_encoder_quality:
        input:
            f"{PAPER}/data/results.json",
        output:
            **table_outputs("encoder_quality"),
        params:
            method=_FLOOR_METHOD,
            split=PAPER_SPLIT,
            direction=PAPER_DIRECTION,
            title=_TABLES["encoder_quality"],
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
            f"{PAPER}/data/results.json",
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
            weights=f"{run_dir(FIGURE_BENCHMARK, _ATTENTION_METHOD, SEEDS[0])}/weights.safetensors",
        output:
            f"{PAPER}/data/attention_maps.json",
        params:
            method=_ATTENTION_METHOD,
            benchmark=FIGURE_BENCHMARK,
            seed=SEEDS[0],
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


rule paper_claims:
    """Every claim of the paper with our measurement and a mechanical verdict."""
    input:
        results=f"{PAPER}/data/results.json",
        training=f"{PAPER}/data/training.json",
        theory=THEORY_VERDICTS,
        cost=COST_BENCHMARKS,
    output:
        json=f"{PAPER}/claims.json",
        md=f"{PAPER}/claims.md",
        html=report(f"{PAPER}/claims.html", category="Claims", labels={"file": "claims"}),
    params:
        tables=TABLES,
        split=PAPER_SPLIT,
        direction=PAPER_DIRECTION,
        z=VERDICT_Z,
        cost_tolerance=COST_TOLERANCE,
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/claims.log",
    script:
        "../scripts/claims.py"


rule paper_report:
    """paper/README.md, the page a reader opens first."""
    input:
        claims=f"{PAPER}/claims.json",
        main_table=f"{PAPER}/tables/main.md",
        others=[p for p in PAPER_OUTPUTS if not p.endswith("README.md")],
    output:
        f"{PAPER}/README.md",
    params:
        config_name=config["name"],
        command=" ".join(["snakemake --cores all"]
                         + [f"--configfile {os.path.relpath(f)}" for f in workflow.configfiles]),
        benchmarks_dir=f"{RESULTS}/benchmarks",
        tables=[{"title": title, "files": table_files(name)} for name, title in _TABLES.items()],
        figures=[{"title": title, **figure_files(name)} for name, title in _FIGURES.items()],
        links=[("All claims with their verdicts", f"{PAPER}/claims.md"),
               ("Claims as JSON", f"{PAPER}/claims.json"),
               ("Assumptions and choices of this reproduction", "paper/ASSUMPTIONS.md"),
               ("Seed statistics of every evaluation", f"{PAPER}/data/results.json"),
               ("Training curves and job costs", f"{PAPER}/data/training.json")]
        # The cost benchmarks run outside the DAG (benchmarks/README.md); their report when present.
        + [(title, path) for title, path in (("Cost benchmarks: BACL's time and memory overhead, BNS search, "
                                              "feature cache", "benchmarks/results/cost.md"),
                                             ("Cost figure", "benchmarks/results/cost.png")) if os.path.exists(path)],
    conda:
        "../../environment.yml"
    log:
        f"{RESULTS}/logs/paper/report.log",
    script:
        "../scripts/report.py"
