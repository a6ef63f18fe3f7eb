"""Execute one theory notebook with papermill (sizes: the notebook's own, or the smoke sizes)."""

import sys
from pathlib import Path

from joblog import redirect_to_log

sys.path.insert(0, str(Path.cwd()))  # the repository root: makes the `theory` package importable
from theory.run import SMOKE_PARAMETERS, run_notebook  # noqa: E402

redirect_to_log(snakemake.log[0])  # noqa: F821

name = snakemake.wildcards.notebook  # noqa: F821
smoke = snakemake.params.size == "smoke"  # noqa: F821
# Processes over seeds; the smoke sizes keep their single process (starting workers costs more than they save).
parameters = dict(SMOKE_PARAMETERS[name]) if smoke else {"workers": snakemake.threads}  # noqa: F821
print(f"executed {run_notebook(name, Path(snakemake.params.results_dir), parameters)}")  # noqa: F821
