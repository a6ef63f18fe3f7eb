"""Summarise every evaluation JSON into one file: seed statistics per benchmark / split / method.

Input: one evaluation JSON per (benchmark, split, method, seed) as ``bacl.evaluate`` writes it.
Output (``paper/data/results.json``)::

    {"config": name, "seeds": [...],
     "results": {benchmark: {split: {method: {"seeds": [...],
                 "metrics": {"retrieval.mean.R@1": {"mean", "std", "n", "values"}, ...}}}}}}

Every numeric leaf of the metric sections becomes a dotted path; wherever a section holds both
retrieval directions (``retrieval``, ``retrieval_reranked``, ``retrieval_reranked_combined``, and
the same under ``untrained``), ``<path>.mean.*`` is added: per seed, the mean of the two directions.
Statistics come from ``bacl.metrics.seeds.aggregate_seeds`` (mean, sample std).
"""

import logging
import numbers

from bacl.metrics import aggregate_seeds

from joblog import redirect_to_log
from paper_common import read_json, write_json

# The sections of an evaluation JSON that hold metrics (the rest is provenance: method, paths).
# ``untrained``: the same head metrics of the aligner with its cross-modal Transformer at its
# initialisation (the reference a trained head must beat).
METRIC_SECTIONS = ("retrieval", "retrieval_reranked", "retrieval_reranked_combined", "boundary",
                   "boundary_match_head", "multiple_choice", "ael", "attention", "untrained")
DIRECTIONS = ("image_to_text", "text_to_image")


def flatten_metrics(result: dict) -> dict[str, float]:
    """Numeric leaves of ``result``'s metric sections under dotted paths, plus direction means.

    Args:
        result: one evaluation JSON (nested dicts; only ``METRIC_SECTIONS`` are read).
    """
    if not isinstance(result, dict):
        raise ValueError(f"result must be a dict (an evaluation JSON), got {type(result).__name__}")
    flat: dict[str, float] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
            both = [node.get(direction) for direction in DIRECTIONS]
            if all(isinstance(part, dict) for part in both):
                for key in sorted(set(both[0]) & set(both[1])):
                    values = [part[key] for part in both]
                    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
                        flat[f"{path}.mean.{key}"] = sum(map(float, values)) / 2
        elif isinstance(node, numbers.Real) and not isinstance(node, bool):
            flat[path] = float(node)

    for section in METRIC_SECTIONS:
        if section in result:
            walk(result[section], section)
    if not flat:
        raise ValueError(f"result has no metrics in any of {METRIC_SECTIONS}")
    return flat


def summarise(records: list[dict]) -> dict:
    """Seed statistics of evaluation results.

    Args:
        records: ``{"benchmark", "split", "method", "seed", "result"}`` per evaluation, where
            ``result`` is the evaluation JSON. Every seed of a (benchmark, split, method) must
            report the same metrics.

    Returns:
        ``{benchmark: {split: {method: {"seeds", "metrics": {path: {mean, std, n, values}}}}}}``, in the
        order in which ``records`` first name each benchmark, split and method.
    """
    if not records:
        raise ValueError("records is empty: there are no evaluation results to summarise")
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for record in records:
        missing = {"benchmark", "split", "method", "seed", "result"} - set(record)
        if missing:
            raise ValueError(f"record {record.get('benchmark')}/{record.get('method')} lacks keys {sorted(missing)}")
        claimed = record["result"].get("method")
        if claimed is not None and claimed != record["method"]:
            raise ValueError(f"evaluation of method {record['method']!r} ({record['benchmark']}, {record['split']}, "
                             f"seed {record['seed']}) says it is of method {claimed!r}")
        key = (record["benchmark"], record["split"], record["method"])
        groups.setdefault(key, []).append((int(record["seed"]), flatten_metrics(record["result"])))
    summary: dict = {}
    for (benchmark, split, method), seeded in groups.items():  # first-seen order: the config's
        seeded.sort(key=lambda pair: pair[0])
        seeds = [seed for seed, _ in seeded]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{benchmark}/{split}/{method} has seed(s) reported twice: {seeds}")
        flats = [flat for _, flat in seeded]
        try:
            stats = aggregate_seeds(flats)
        except ValueError as error:
            raise ValueError(f"{benchmark}/{split}/{method}: {error}") from None
        metrics = {path: {**stats[path], "values": [flat[path] for flat in flats]} for path in sorted(stats)}
        summary.setdefault(benchmark, {}).setdefault(split, {})[method] = {"seeds": seeds, "metrics": metrics}
    return summary


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    runs = snakemake.params.runs
    if len(runs) != len(snakemake.input):
        raise ValueError(f"params.runs has {len(runs)} entries but there are {len(snakemake.input)} inputs")
    records = [{**run, "result": read_json(path)} for run, path in zip(runs, snakemake.input)]
    results = summarise(records)
    write_json(snakemake.output[0], {"config": snakemake.params.config_name, "seeds": list(snakemake.params.seeds),
                                     "results": results})
    logging.info("summarised %d evaluations into %s", len(records), snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
