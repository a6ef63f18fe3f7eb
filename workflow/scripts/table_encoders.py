"""The frozen encoders' pre-training reports (what the CPU-scale towers start every method from):
one row per encoder family, one column per scalar field any report has."""

import numbers

from joblog import redirect_to_log
from paper_common import Table, read_json

# Per-step lists (e.g. "losses") are curves, not table cells; these fields are identity, shown first.
IDENTITY_FIELDS = ("model",)
ROW_KEY_FIELD = "family"  # the row label already says it


def scalar_fields(report: dict, prefix: str = "") -> dict:
    """Scalar leaves (numbers and strings) of a report under dotted names; lists are left out."""
    if not isinstance(report, dict):
        raise ValueError(f"an encoder report must be a JSON object, got {type(report).__name__}")
    out = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalar_fields(value, f"{name}."))
        elif isinstance(value, str) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            out[name] = value
    return out


def encoders_table(reports: dict[str, dict], title: str) -> Table:
    """``reports``: family -> its pre-training report JSON."""
    if not reports:
        raise ValueError("reports is empty: no encoder was pre-trained by the pipeline")
    fields = {family: scalar_fields(report) for family, report in reports.items()}
    names = []
    for flat in fields.values():
        names += [name for name in flat if name not in names and name not in (*IDENTITY_FIELDS, ROW_KEY_FIELD)]
    identity = [name for name in IDENTITY_FIELDS if any(name in flat for flat in fields.values())]
    columns = ["Encoder family"] + identity + names
    rows = [[family] + [fields[family].get(name) for name in identity + names] for family in reports]
    notes = ["From the pipeline's CLIP pre-training of the small CPU-scale towers (results/<config>/encoders/"
             "<family>.json); losses are the CLIP loss, seconds are wall time. These encoders are frozen for every "
             "method. – : not in that report."]
    return Table(title, columns, rows, notes, digits=3)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    reports = {family: read_json(path) for family, path in zip(snakemake.params.families, snakemake.input)}
    table = encoders_table(reports, snakemake.params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
