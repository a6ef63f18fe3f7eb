"""paper/README.md: the report a reader opens first. It states the command and commit that made it
and the pipeline's measured job times, shows the headline table, the verdict counts with the share
of inconclusive claims and the theory notebooks' verdicts with their controls and figures, says
what goes beyond the paper, and links every table, figure and claim file."""

import datetime
import glob
import logging
import os
from pathlib import Path

from aggregate_training import parse_benchmark_tsv
from claims_render import VERDICT_ORDER
from joblog import redirect_to_log
from paper_common import data_words, git_commit, read_json


def job_times(tsv_texts: dict[str, str], root: str) -> dict:
    """Wall-time totals of Snakemake benchmark TSVs: ``{"jobs", "sum_s", "max_s", "by_stage"}``.

    Args:
        tsv_texts: path -> TSV text; the stage is the path's first folder below ``root``.
    """
    by_stage: dict[str, list[float]] = {}
    for path, text in sorted(tsv_texts.items()):
        seconds = parse_benchmark_tsv(text).get("seconds")
        if seconds is None:
            continue
        relative = Path(os.path.relpath(path, root)).parts
        stage = relative[0] if len(relative) > 1 else "other"
        by_stage.setdefault(stage, []).append(seconds)
    every = [s for values in by_stage.values() for s in values]
    return {"jobs": len(every), "sum_s": sum(every), "max_s": max(every, default=0.0),
            "by_stage": {stage: {"jobs": len(v), "sum_s": sum(v), "max_s": max(v)} for stage, v in by_stage.items()}}


def invocation_times(logs: dict[str, float], now: datetime.datetime) -> list[tuple[str, float]]:
    """(start, elapsed seconds) of every Snakemake invocation in this working directory, oldest
    first, from its log (``.snakemake/log/2026-11-29T064337.149780.snakemake.log``: start in the
    name, local time; end = the log's last write). The newest is the invocation writing the report,
    still running: it ends now.

    Args:
        logs: log path -> its modification time (seconds since the epoch); other names are ignored.
    """
    runs = []
    for path, mtime in logs.items():
        stamp = os.path.basename(path).split(".snakemake.log")[0]
        try:
            runs.append((datetime.datetime.strptime(stamp, "%Y-%m-%dT%H%M%S.%f"), mtime))
        except ValueError:
            continue
    runs.sort()
    return [(start.strftime("%Y-%m-%d %H:%M"),
             ((now if i == len(runs) - 1 else datetime.datetime.fromtimestamp(mtime)) - start).total_seconds())
            for i, (start, mtime) in enumerate(runs)]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def report_markdown(config_name: str, commit: str, command: str, times: dict | None, counts: dict,
                    main_table: str, tables: list[dict], figures: list[dict], links: list[tuple[str, str]],
                    invocations: list[tuple[str, float]] | None = None, *,
                    data: str = "synthetic boundary benchmarks", inconclusive: dict | None = None,
                    theory: dict | None = None, beyond_paper: str | None = None) -> str:
    """The whole README.md.

    Args:
        times: :func:`job_times` output, or None when no job was benchmarked.
        invocations: :func:`invocation_times`, or None when unknown.
        counts: verdict -> number of claims (claims.json's ``counts``).
        main_table: the headline table's Markdown.
        tables: ``{"title", "files": {extension: relative path}}`` per table.
        figures: ``{"title", "png", "pdf"}`` (relative paths) per figure.
        links: (title, relative path) of further files.
        data: what the benchmarks are (paper_common.data_words).
        inconclusive: claims.json's ``inconclusive`` (claims_verdict.inconclusive_share).
        theory: ``{"table": Markdown of the theory table, "figures": [{"title", "png", "pdf"}]}``.
        beyond_paper: a sentence on what this reproduction adds that the paper does not have.
    """
    lines = [f"# BACL reproduction: report ({config_name})", "",
             "Reproduction of *Aligning by Misaligning: Boundary-aware Curriculum Learning for Multimodal "
             f"Alignment* (BACL, NeurIPS 2025, arXiv 2511.08399) on {data}. Every number "
             "below was computed by the Snakemake pipeline from its own runs, except the paper's published "
             "numbers, which are labelled as the paper's (real data, a far larger scale).", "",
             "## Provenance", "", f"* Command: `{command}`", f"* Git commit: `{commit}`",
             f"* Configuration: `{config_name}`"]
    if times and times["jobs"]:
        stages = ", ".join(f"{stage} {v['jobs']} jobs / {_hours(v['sum_s'])}" for stage, v in
                           sorted(times["by_stage"].items()))
        lines.append(f"* Measured job wall time (Snakemake `benchmark:` files): {times['jobs']} jobs, "
                     f"{_hours(times['sum_s'])} in total (sum over jobs; jobs run in parallel, so the elapsed "
                     f"time is shorter), longest job {_hours(times['max_s'])}; by stage: {stages}.")
    else:
        lines.append("* Measured job wall time: not available (no benchmark files).")
    if invocations:
        runs = "; ".join(f"started {start}, {_hours(seconds)}" for start, seconds in invocations)
        lines.append(f"* Elapsed time of the `snakemake` invocations in this working directory (from their logs in "
                     f"`.snakemake/log`; the last one wrote this report, a rerun after an interruption or a change "
                     f"only redoes what is missing or outdated): {runs}.")
    ordered = [verdict for verdict in VERDICT_ORDER if verdict in counts] + sorted(set(counts) - set(VERDICT_ORDER))
    lines += ["", "## Claims", "", "Verdicts, by the mechanical rules stated in [claims.md](claims.md): "
              + ", ".join(f"**{counts[verdict]}** {verdict}" for verdict in ordered) + "."]
    if inconclusive:
        lines += ["", f"Inconclusive (neither reproduced nor opposite within the rule's standard errors): "
                      f"**{inconclusive['inconclusive']}** of {inconclusive['claims']} claims "
                      f"({100 * inconclusive['share_of_claims']:.0f} %; {100 * inconclusive['share_of_testable']:.0f} % "
                      "of the testable ones)."]
    if beyond_paper:
        lines += ["", f"**Beyond the paper.** {beyond_paper}"]
    lines += ["", "## Headline table", "", main_table.replace("### ", "#### ")]
    if theory:
        lines += ["", "## Theory", "", theory["table"].replace("### ", "#### "), ""]
        for figure in theory.get("figures", []):
            lines += [f"![{figure['title']}]({figure['png']})", "",
                      f"{figure['title']}: [PNG]({figure['png']}) · [PDF]({figure['pdf']})", ""]
    lines += ["", "## Tables", ""]
    for table in tables:
        files = " · ".join(f"[{ext}]({path})" for ext, path in table["files"].items())
        lines.append(f"* {table['title']}: {files}")
    lines += ["", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure['title']}", "", f"![{figure['title']}]({figure['png']})", "",
                  f"[PNG]({figure['png']}) · [PDF]({figure['pdf']})", ""]
    lines += ["## Further files", ""] + [f"* [{title}]({path})" for title, path in links]
    lines += ["", "Snakemake's own browsable report: `snakemake --report paper/report.html` (with the same "
              "`--configfile`)."]
    return "\n".join(lines) + "\n"


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    out_dir = os.path.dirname(snakemake.output[0])

    def rel(path: str) -> str:
        return os.path.relpath(path, out_dir)

    # Every job upstream of this one has finished, so the benchmark folder is complete for them.
    tsvs = {path: Path(path).read_text() for path in glob.glob(f"{params.benchmarks_dir}/**/*.tsv", recursive=True)}
    claims = read_json(snakemake.input.claims)
    tables = [{"title": t["title"], "files": {ext: rel(path) for ext, path in t["files"].items()}}
              for t in params.tables]
    figures = [{"title": f["title"], "png": rel(f["png"]), "pdf": rel(f["pdf"])} for f in params.figures]
    links = [(title, rel(path)) for title, path in params.links]
    # The notebooks write their figures beside verdicts.json (not declared outputs): shown when present.
    theory = {"table": Path(snakemake.input.theory_table).read_text(),
              "figures": [{"title": f["title"], "png": rel(f["png"]), "pdf": rel(f["pdf"])}
                          for f in params.theory_figures if os.path.exists(f["png"])]}
    text = report_markdown(params.config_name, git_commit(), params.command, job_times(tsvs, params.benchmarks_dir),
                           claims["counts"], Path(snakemake.input.main_table).read_text(), tables, figures, links,
                           invocation_times({path: os.path.getmtime(path) for path in glob.glob(".snakemake/log/*.log")},
                                            datetime.datetime.now()),
                           data=data_words(params.benchmarks, params.real_benchmarks),
                           inconclusive=claims.get("inconclusive"), theory=theory,
                           beyond_paper=params.beyond_paper)
    Path(snakemake.output[0]).write_text(text)
    logging.info("wrote %s", snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
