# The theory notebooks: each percent-format theory/NN_name.py executed with papermill, then the
# per-notebook verdicts merged into verdicts.json (read by the claims).

THEORY = config["theory"]["results_dir"]
THEORY_NOTEBOOKS = ["01_rate", "02_uniform_floor", "03_margin"]


rule theory_notebook:
    input:
        notebook="theory/{notebook}.py",
        sims=sorted(str(p) for p in Path("theory/sims").glob("*.py")),
        # The library code the simulations train with: a change to it changes the results.
        library=[f"src/bacl/{m}.py" for m in ("sampler", "sampling_correction", "losses", "schedule")],
    output:
        executed=f"{THEORY}/executed/{{notebook}}.ipynb",
        verdict=f"{THEORY}/verdicts/{{notebook}}.json",
    params:
        results_dir=lambda w, output: str(Path(output.verdict).parent.parent),
        size=config["theory"]["size"],
    wildcard_constraints:
        notebook="|".join(THEORY_NOTEBOOKS),
    # Two worker processes over seeds, each one torch thread (THREADS_NOTE in common.smk is about
    # threads inside one process); each notebook's budget is 3 minutes on 2 cores at the default size.
    threads: 2
    conda:
        "../../environment.yml"
    log:
        f"{THEORY}/logs/{{notebook}}.log",
    benchmark:
        f"{THEORY}/benchmarks/{{notebook}}.tsv"
    script:
        "../scripts/theory_notebook.py"


rule theory_verdicts:
    input:
        expand(f"{THEORY}/verdicts/{{notebook}}.json", notebook=THEORY_NOTEBOOKS),
    output:
        report(f"{THEORY}/verdicts.json", category="Theory"),
    params:
        results_dir=lambda w, output: str(Path(output[0]).parent),
        notebooks=THEORY_NOTEBOOKS,
    conda:
        "../../environment.yml"
    log:
        f"{THEORY}/logs/verdicts.log",
    script:
        "../scripts/theory_verdicts.py"
