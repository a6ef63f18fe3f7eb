"""Merge the theory notebooks' verdict files into verdicts.json."""

import json
import sys
from pathlib import Path

from joblog import redirect_to_log

sys.path.insert(0, str(Path.cwd()))  # the repository root: makes the `theory` package importable
from theory.run import merge_verdicts  # noqa: E402

redirect_to_log(snakemake.log[0])  # noqa: F821
merged = merge_verdicts(Path(snakemake.params.results_dir), snakemake.params.notebooks)  # noqa: F821
print(json.dumps({key: entry["verdict"] for key, entry in merged.items()}, indent=2))
