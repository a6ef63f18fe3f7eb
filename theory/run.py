"""Execute the theory notebooks and merge their verdicts.

    python theory/run.py                      # all notebooks at their default size
    python theory/run.py --smoke              # tiny sizes (what the tests run)
    python theory/run.py --only 03_margin --results-dir /tmp/theory
    python theory/run.py --merge-only         # merge verdicts/*.json written by separate runs

Each percent-format ``theory/NN_name.py`` is turned into a notebook with jupytext and executed with
papermill (working directory: the repository root) into ``<results-dir>/executed/NN_name.ipynb``;
notebooks write figures to ``<results-dir>/figures`` and a verdict file to
``<results-dir>/verdicts/NN_name.json``; the verdict files are then merged into
``<results-dir>/verdicts.json``.

Kernel: nothing is installed. The driver writes a kernelspec naming *this* interpreter
(``sys.executable``) into a temporary directory and puts it first on ``JUPYTER_PATH`` for the
duration of the run, so the notebooks run in the same environment as the driver whatever kernels
the user or the system has registered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import jupytext
import papermill

if __package__ in (None, ""):  # run as a script: make the `theory` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from theory.sims.report import merge_verdict_files  # noqa: E402

THEORY_DIR = Path(__file__).resolve().parent
REPO_ROOT = THEORY_DIR.parent
NOTEBOOKS = ("01_rate", "02_uniform_floor", "03_margin")
KERNEL_NAME = "bacl-theory"

# Tiny sizes: enough to exercise every cell and produce finite verdicts in a few seconds each;
# one process each, as starting worker processes would cost more than the work.
SMOKE_PARAMETERS = {
    "01_rate": {"n_values": [30, 45, 70, 100], "max_n": {}, "seeds": 2, "test_pools": 500, "epochs": 6, "workers": 1},
    "02_uniform_floor": {"ambiguous_values": [2, 6], "n": 60, "seeds": 2, "test_pools": 500, "epochs": 6, "workers": 1},
    "03_margin": {"n": 60, "seeds": 2, "test_pools": 500, "epochs": 24, "hold_epochs": 8, "workers": 1},
}


@contextlib.contextmanager
def _kernel_for_this_interpreter():
    """A kernelspec for sys.executable, visible to jupyter_client only inside the context."""
    with tempfile.TemporaryDirectory() as root:
        spec_dir = Path(root) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "bacl theory (driver's interpreter)", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join([root] + ([previous] if previous else []))
        try:
            yield KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


def run_notebook(name: str, results_dir: Path, parameters: dict | None = None) -> Path:
    """Execute notebook ``name`` (one of NOTEBOOKS); returns the executed .ipynb path."""
    if name not in NOTEBOOKS:
        raise ValueError(f"notebook {name!r} is unknown; choose from {NOTEBOOKS}")
    results_dir = Path(results_dir).resolve()
    executed = results_dir / "executed" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(THEORY_DIR / f"{name}.py")
    source = executed.with_suffix(".input.ipynb")
    jupytext.write(notebook, source)
    values = {"results_dir": str(results_dir), "repo_root": str(REPO_ROOT), **(parameters or {})}
    with _kernel_for_this_interpreter() as kernel:
        papermill.execute_notebook(str(source), str(executed), parameters=values, kernel_name=kernel,
                                   cwd=str(REPO_ROOT), progress_bar=False)
    source.unlink()
    return executed


def merge_verdicts(results_dir: Path, names=NOTEBOOKS) -> dict:
    """Merge ``<results_dir>/verdicts/<name>.json`` into ``<results_dir>/verdicts.json``."""
    results_dir = Path(results_dir)
    return merge_verdict_files([results_dir / "verdicts" / f"{name}.json" for name in names], results_dir / "verdicts.json")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=NOTEBOOKS, default=list(NOTEBOOKS), help="notebooks to run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests, smoke config)")
    parser.add_argument("--results-dir", type=Path, default=THEORY_DIR / "results", help="output directory")
    parser.add_argument("--workers", type=int, default=None, help="processes each notebook spreads its seeds over")
    parser.add_argument("--merge-only", action="store_true", help="only merge the existing per-notebook verdicts")
    args = parser.parse_args(argv)
    for name in [] if args.merge_only else args.only:
        parameters = dict(SMOKE_PARAMETERS[name]) if args.smoke else {}
        if args.workers is not None:
            parameters["workers"] = args.workers
        print(f"running {name} -> {run_notebook(name, args.results_dir, parameters)}", flush=True)
    # Merge whatever verdict files exist, so a partial --only run still refreshes verdicts.json.
    present = [name for name in NOTEBOOKS if (args.results_dir / "verdicts" / f"{name}.json").exists()]
    if not present:
        raise SystemExit(f"no verdict files under {args.results_dir / 'verdicts'}; run the notebooks first")
    merged = merge_verdicts(args.results_dir, present)
    for key, entry in merged.items():
        print(f"{key}: {entry['verdict']} ({entry['estimate']['name']} = {entry['estimate']['value']:.4g}, "
              f"CI {entry['confidence_interval']})")
    return merged


if __name__ == "__main__":
    main()
