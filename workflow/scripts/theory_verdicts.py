"""Merge the theory notebooks' verdict files into verdicts.json."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the repository root: makes the `theory` package importable
from theory.run import merge_verdicts  # noqa: E402

merged = merge_verdicts(Path(snakemake.params.results_dir), snakemake.params.notebooks)  # noqa: F821
with open(snakemake.log[0], "w") as log:  # noqa: F821
    json.dump({key: entry["verdict"] for key, entry in merged.items()}, log, indent=2)
