"""The probe table: per benchmark and kind of boundary negative, the accuracy of a linear readout
of the frozen towers' tokens at every block (bacl.probe), beside chance, the untrained towers and
how far the text tower keeps the caption and its negative apart. A kind at chance at every block
is flagged: no method can be judged on it with these tokens."""


from joblog import redirect_to_log
from paper_common import MeanStd, Table, read_json
from type_flags import FLAG

from bacl.probe import resolve_token_layer


def used_blocks(records: dict, token_layers: dict, pretrain_source: dict) -> dict[str, int]:
    """family -> the block its feature sets keep (resolved as extract_features resolves it)."""
    used = {}
    for family, setting in token_layers.items():
        chooser = records.get(pretrain_source[family])
        known = [r for r in records.values() if family in r["encoders"]]
        if known:
            used[family] = resolve_token_layer(setting, known[0]["encoders"][family]["layers"]["image"], chooser, family)
    return used


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _cell(record: dict | None):
    return None if record is None else MeanStd(100 * record["accuracy"], 100 * record["se"], record["comparisons"])


def probe_table(records: dict, token_layers: dict, pretrain_source: dict, text_layers: dict, title: str) -> Table:
    """One row per (benchmark, negative type); records: benchmark -> probe record (probe_layers.py);
    token_layers: family -> its token_layer setting; text_layers: benchmark -> its text block setting."""
    if not records:
        raise ValueError("records must hold at least one benchmark's probe")
    depth = max(int(k) for r in records.values() for t in r["types"].values() for k in t["layers"] if k.isdigit())
    one_layer = sorted({k for r in records.values() for t in r["types"].values() for k in t["layers"] if not k.isdigit()})
    used = used_blocks(records, token_layers, pretrain_source)
    text_depth = max(e["layers"]["text"] for r in records.values() for e in r["encoders"].values())
    columns = (["Benchmark", "Negative type", "Tokens", "Block read"] + [f"block {b}" for b in range(1, depth + 1)]
               + one_layer + ["Untrained (best)", "Chance", "Text block read"]
               + [f"text block {b}" for b in range(1, text_depth + 1)] + ["text pooled"])
    rows = []
    for benchmark, record in records.items():
        text_read = resolve_token_layer(text_layers[benchmark], max(e["layers"]["text"] for e in record["encoders"].values()))
        for kind, result in record["types"].items():
            layers, blocks = result["layers"], [s for s in result["sources"] if s in used]
            untrained = max(result["untrained"].values(), key=lambda r: r["accuracy"])
            text = record["text"].get(kind, {})
            rows.append([benchmark, kind + (FLAG if result["at_chance_every_layer"] else ""), "+".join(result["sources"]),
                         ", ".join(str(used[s]) for s in blocks) or None]
                        + [_cell(layers.get(str(b))) for b in range(1, depth + 1)]
                        + [_cell(layers.get(name)) for name in one_layer]
                        + [_cell(untrained), 100 * next(iter(layers.values()))["chance"], str(text_read)]
                        + [_percent(text.get(key)) for key in [*map(str, range(1, text_depth + 1)), "pooled"]])
    flagged = sorted({f"{b}: {k}" for b, r in records.items() for k in r["at_chance_types"]})
    notes = [
        "Accuracy in percent ± standard error (clustered by sample) on the held-out half of the probe's samples: how "
        "often a linear readout of the tokens that belong to the named object / event / tone prefers the caption's "
        "value over the one the negative puts in its place (every alternative the generator could propose). Chance: "
        "the same comparisons scored by the label frequencies alone. Untrained: the best block of the seeded init.",
        "Block read: the block whose tokens the feature sets keep (token_layer 'probe': the block with the highest mean "
        "accuracy over the kinds that read the family's tokens on its pre-training benchmark, ties to the later block). "
        "frames: video frame embeddings, one token per frame, the same at every block.",
        "text block b / pooled: 1 - cos between caption and negative at the edited tokens of the text tower's block b "
        "/ between the pooled embeddings, in percent of the same distance for unrelated captions (0: the edit is "
        "invisible to a reader of those features).",
        f"{FLAG.strip()} at chance at every block (gain over chance within 2 standard errors): "
        + (", ".join(flagged) if flagged else "none") + ".",
    ]
    return Table(title, columns, rows, notes, digits=1)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    records = {b: read_json(path) for b, path in zip(params.benchmarks, snakemake.input)}
    table = probe_table(records, params.token_layers, params.pretrain_source, params.text_layers, params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
