# Stage 6: the paper: results summaries, tables, figures, claims and the report in PAPER, all
# from the evaluations, training logs and benchmarks above. Tables are written as .md, .csv,
# .tex and .html (the HTML and the PNG figures are what `snakemake --report` shows).
# This file holds the report settings, which tables and figures exist (_TABLES, _FIGURES), the
# results and training summaries, the claims and the report; the rules of the tables are in
# paper_tables.smk and those of the figures in paper_figures.smk (both included after this one).
# PAPER_OUTPUTS lists every file of this stage for `rule all`.
import glob
import os

from bacl.config import method_settings

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
# How the report words the data: all synthetic, all real (REAL_BENCHMARKS: realdata.smk), or both.
_DATA_WORDS = ("the synthetic benchmarks" if not REAL_BENCHMARKS else "real data"
               if set(REAL_BENCHMARKS) == set(BENCHMARKS) else "synthetic and real benchmarks")
# Probe records (probe.smk) of the benchmarks that run: their types at chance are flagged in every table.
_PROBED = [b for b in BENCHMARKS if b in PROBE_BENCHMARKS]
_PROBE_FILES = [probe_file(b) for b in _PROBED]
# Rows beyond the paper: BNS with the sampling correction (theory issue #13), marked in the main table.
_BEYOND_PAPER = [label for label, m in TABLES.get("main", {}).items()
                 if method_settings(config, m)["bacl"].get("sampling_correction", False)]
_BNS_MAIN = {label: m for label, m in TABLES.get("main", {}).items() if config["methods"][m].get("bns")}
_BEYOND_PAPER_WORDS = (
    "BNS with McFadden's sampling correction (`sampling_correction: true`: each drawn negative's logit carries "
    "the log-probability of the draw had it been the positive, which removes the bias of a draw that depends on "
    "the positive) is not in the paper. The theory section's corrected arms use it"
    + (f", and so do the main table's rows marked ‡ ({', '.join(_BEYOND_PAPER)})" if _BEYOND_PAPER else "")
    + ". The readings this reproduction chose where the paper is silent are in paper/ASSUMPTIONS.md.")

# Methods with a cross-modal Transformer (match head): CLA, or BLIP's image-text matching.
_TRANSFORMER_METHODS = {m for m, spec in config["methods"].items() if spec.get("cla") or spec["aligner"] == "blip"}
_HEAD_ROWS = {label: m for label, m in (TABLES.get("heads") or TABLES.get("main", {})).items()
              if m in _TRANSFORMER_METHODS}
# Ablation metrics: each with the paths of its references (table_ablation.REFERENCE_ROWS).
_R1 = {"label": "R@1", "metric": "retrieval.{direction}.R@1"}
_R1_RERANKED = {"label": "R@1 re-ranked", "metric": "retrieval_reranked_combined.{direction}.R@1",
                "untrained": "untrained.retrieval_reranked_combined.{direction}.R@1"}
_R1_MATCH = {"label": "R@1 match only", "metric": "retrieval_reranked.{direction}.R@1",
             "untrained": "untrained.retrieval_reranked.{direction}.R@1"}
_PAIRS = {"label": "pairwise acc (embedding)", "metric": "boundary.pairwise_accuracy",
          "chance": "boundary.chance.pairwise", "types": True}
_HEAD = {"label": "pairwise acc (head)", "metric": "boundary_match_head.pairwise_accuracy",
         "untrained": "untrained.boundary_match_head.pairwise_accuracy", "chance": "boundary_match_head.chance.pairwise",
         "types": True}
_BEATS = {"label": "beats all (head)", "metric": "boundary_match_head.accuracy",
          "untrained": "untrained.boundary_match_head.accuracy", "chance": "boundary_match_head.chance.accuracy",
          "types": True}
_AEL = {"label": "AEL", "metric": "ael.ael", "untrained": "untrained.ael.ael", "no_transformer": "ael.frozen_reference",
        "chance": "ael.chance", "types": True}
_ATTENTION = [{"label": "attention entropy (nats)", "metric": "attention.entropy", "percent": False,
               "untrained": "untrained.attention.entropy", "chance": "attention.max_entropy"}] + [
    {"label": f"divergence at {key} tokens", "metric": f"attention.divergence_{key}", "percent": False,
     "untrained": f"untrained.attention.divergence_{key}"} for key in ("wrong", "other")]
# Ablation tables: config group -> title, metrics, the row the Δ columns compare with ("base", or
# the group's "first" / "last" entry), and how a row label is shown (row_format, "{}" when absent).
_ABLATIONS = {
    "components": {"title": "Ablation: BNS only, CLA only and full BACL, with the sum of the parts",
                   "metrics": [_R1, _R1_RERANKED, _PAIRS, _HEAD], "reference": "base", "sum_of_parts": True},
    "bns_controls": {"title": "BNS controls: pools without the anchor's sibling group, draws without the policy "
                             "(beyond the paper)",
                     "metrics": [_R1, _PAIRS], "reference": "first", "sum_of_parts": False},  # Δ: each row − BNS
    "schedules": {"title": "Curriculum schedules: Default / Aggressive / Shallow", "metrics": [_R1, _R1_RERANKED, _HEAD],
                  "reference": None, "sum_of_parts": False},
    "match_objective": {"title": "Match objective of the cross-modal Transformer and the negatives it is trained on",
                        "metrics": [_HEAD, _BEATS, _R1_MATCH, _R1_RERANKED, _R1], "reference": "first",
                        "sum_of_parts": False},
    "cla_form": {"title": "CLA form: discriminative (aligned differing tokens) vs literal (the paper's formula)",
                 "metrics": [_AEL, *_ATTENTION, _HEAD, _R1_RERANKED], "reference": "last", "sum_of_parts": False},
    "lambda_local": {"title": "λ_local sweep (weight of the CLA loss)", "metrics": [_R1, _R1_RERANKED, _HEAD, _AEL],
                     "reference": None, "sum_of_parts": False, "row_format": "λ_local = {}"},
    "beta": {"title": "β sweep (CLA amplification of the literal form)", "metrics": [_R1, _R1_RERANKED, _HEAD, _AEL],
             "reference": None, "sum_of_parts": False, "row_format": "β = {}"},
    "ael": {"title": "AEL (attention error localisation) with and without CLA, beside its references",
            "metrics": [_AEL, _HEAD], "reference": "last", "sum_of_parts": False},
}

# "first" / "last" name the group's first / last entry. A group has a table only where all of its
# methods run on one benchmark (its rows are compared with each other there): a control that a
# variant runs nowhere (gpu.yaml's clip_bns_no_group) takes its table with it.
_ABLATIONS = {name: {**spec, "reference": {"first": list(TABLES[name])[0], "last": list(TABLES[name])[-1]}.get(
    spec["reference"], spec["reference"])} for name, spec in _ABLATIONS.items()
    if TABLES.get(name) and any(set(TABLES[name].values()) <= set(methods_for(b)) for b in BENCHMARKS)}


_TABLES = {"main": f"Main table: the paper's shape on {_DATA_WORDS} (split {PAPER_SPLIT})"}
if _HEAD_ROWS:
    _TABLES.update({"reranked": "Retrieval re-ranked by the cross-modal Transformer, beside its untrained copy",
                    "heads": "Match heads: boundary accuracy and re-ranking against the untrained Transformer and chance",
                    "heads_by_type": "Match heads per kind of boundary negative"})
if "test_heldout" in EVAL_SPLITS:
    _TABLES["heldout"] = "Compositional generalisation: held-out attribute pairs (split test_heldout)"
_TABLES.update({name: spec["title"] for name, spec in _ABLATIONS.items()})
if _PRETRAINED_FAMILIES:
    _TABLES["encoders"] = "Frozen encoders: CLIP pre-training of the CPU-scale towers"
_FLOOR_METHOD = next(iter(TABLES.get("floor", {}).values()), None)
if _FLOOR_METHOD is not None:
    _TABLES["encoder_quality"] = f"Frozen encoders on each benchmark, before any head is trained (split {PAPER_SPLIT})"
# Sibling groups exist on the synthetic benchmarks only (real data has none).
_SIBLING_BENCHMARKS = [b for b in BENCHMARKS if b not in REAL_BENCHMARKS]
if _SIBLING_BENCHMARKS:
    _TABLES["siblings"] = "Do boundary negatives reach training? Sibling shares of the BNS pools and draws"
_TRAINED = {m: m for m in config["methods"] if is_trained(m)}
if _TRAINED:
    _TABLES["convergence"] = "Convergence and cost: the plateau criterion of every run, time per step, sibling draws"
_TABLES["theory"] = "Theory: the notebooks' verdicts with their controls"
# The probe table is probe.smk's (PROBE_OUTPUTS); the report lists it with the others.
_REPORT_TABLES = {**_TABLES, **({"probe": PROBE_TABLE_TITLE} if PROBE_OUTPUTS else {})}
_FIGURES = {"training_curves": "Training curves (total loss)"}
if _BNS_METHODS:
    _FIGURES.update({"schedule_alpha": "α(η) of the three curriculum presets",
                     "boundary_scores": "Boundary scores of the negatives BNS drew, over training"})
if TABLES.get("schedules"):
    _FIGURES["schedule_r1"] = "R@1 per curriculum schedule"
if _HAS_ATTENTION:
    _FIGURES["attention_maps"] = "CLA attention on boundary negatives"
_THEORY_FIGURES = [{"title": title, "png": f"{THEORY}/figures/{name}.png", "pdf": f"{THEORY}/figures/{name}.pdf"}
                   for name, title in (
                       ("01_rate", "Theorem 4.1: excess risk against n per arm, with the floor fits"),
                       ("02_uniform_floor", "Theorem 4.2: n · excess and the penalty over the full pool against ρ"),
                       ("03_margin", "Proposition 4.1: margin gap over progress η and the contraction rate"))]

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
        benchmarks=BENCHMARKS,
        real_benchmarks=REAL_BENCHMARKS,
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
        theory_table=f"{PAPER}/tables/theory.md",
        others=[p for p in PAPER_OUTPUTS + PROBE_OUTPUTS if not p.endswith("README.md")],
    output:
        f"{PAPER}/README.md",
    params:
        config_name=config["name"],
        benchmarks=BENCHMARKS,
        real_benchmarks=REAL_BENCHMARKS,
        beyond_paper=_BEYOND_PAPER_WORDS,
        theory_figures=_THEORY_FIGURES,
        command=" ".join(["snakemake --cores all"]
                         + [f"--configfile {os.path.relpath(f)}" for f in workflow.configfiles]),
        benchmarks_dir=f"{RESULTS}/benchmarks",
        tables=[{"title": title, "files": table_files(name)} for name, title in _REPORT_TABLES.items()],
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
