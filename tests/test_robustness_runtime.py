"""Run-time guarantees of issue #7: the same config and seed give the same tables (also from a fresh
process), nothing touches the network, nothing unpickles untrusted data; and the torch-free jobs
stay torch-free (issue #14: start-up time)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from fixtures import (
    evaluate_args,
    latent_features,
    tiny_config,
    train_args,
    write_config,
    write_feature_file,
)
from paper_fixtures import aggregate, load

from bacl.cli import main
from bacl.train import FINAL_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
METHODS = {"clip": {"aligner": "clip"}, "clip_bacl": {"aligner": "clip", "bns": True, "cla": True}}
ROWS = {"CLIP": "clip", "CLIP+BACL": "clip_bacl"}


def child_environment(**extra) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **extra)


# --- same config and seed, same tables ----------------------------------------------------------

def results_grid(root: Path) -> dict:
    """Train and evaluate clip and clip_bacl for seeds 0 and 1 through the CLI, as the pipeline
    does, and render the headline table from the results (aggregate_results + table_main).
    Returns the rendered table (markdown, LaTeX, CSV rows), the summary and the per-seed records."""
    root.mkdir(parents=True, exist_ok=True)
    config = write_config(root / "config.yaml", tiny_config(METHODS))
    train_file = write_feature_file(root / "train.safetensors", latent_features(64, seed=0))
    test_file = write_feature_file(root / "test.safetensors", latent_features(32, seed=1))
    records = []
    for method in METHODS:
        for seed in (0, 1):
            run, out = root / "runs" / method / f"seed{seed}", root / "evaluations" / f"{method}_{seed}.json"
            assert main([*train_args(config, method, train_file, run), "--seed", str(seed)]) == 0
            assert main(evaluate_args(config, method, test_file, out, run / FINAL_WEIGHTS)) == 0
            records.append({"benchmark": "image_text", "split": "test", "method": method, "seed": seed,
                            "result": json.loads(out.read_text())})
    summary = {"config": "test", "seeds": [0, 1], "results": aggregate.summarise(records)}
    table = load("table_main").main_table(summary, ROWS, "test", "mean", True, "Main results")
    return {"markdown": table.markdown(), "latex": table.latex(), "csv": table.csv_rows(), "summary": summary,
            "records": records}


def table_of_seed(grid: dict, seed: int) -> str:
    records = [record for record in grid["records"] if record["seed"] == seed]
    summary = {"config": "test", "seeds": [seed], "results": aggregate.summarise(records)}
    return load("table_main").main_table(summary, ROWS, "test", "mean", True, "Main results").markdown()


def test_same_config_and_seed_give_identical_tables_also_from_a_fresh_process(tmp_path):
    # The second repetition runs in a fresh interpreter with another hash seed: no state shared
    # with the first (torch's RNG, caches), and no dependence on set or dict-of-set ordering.
    script = (f"import json, sys; sys.path[:0] = [{str(TESTS)!r}]; from test_robustness_runtime import results_grid; "
              f"grid = results_grid(__import__('pathlib').Path({str(tmp_path / 'second')!r})); "
              "grid.pop('records'); print(json.dumps(grid))")
    child = subprocess.Popen([sys.executable, "-c", script], env=child_environment(PYTHONHASHSEED="12345"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = results_grid(tmp_path / "first")
    stdout, stderr = child.communicate(timeout=600)
    assert child.returncode == 0, stderr[-3000:]
    second = json.loads(stdout.strip().splitlines()[-1])
    assert first["markdown"] == second["markdown"]  # byte for byte
    assert first["latex"] == second["latex"] and first["csv"] == second["csv"]
    assert json.dumps(first["summary"]) == json.dumps(second["summary"])  # every metric, every float bit
    assert "| CLIP+BACL |" in first["markdown"] and " ± " in first["markdown"]
    # The comparison can fail: the tables see the seed (another seed's runs render differently).
    assert table_of_seed(first, 0) != table_of_seed(first, 1)


# --- no network ---------------------------------------------------------------------------------

# A child whose every network call fails loudly and is recorded: TCP/UDP connects, name lookups.
# Local sockets (AF_UNIX) are not the network and stay allowed. Proxies point at a closed port.
NO_NETWORK = r"""
import socket, sys
log_path, phase = sys.argv[1], ["run"]

def refuse(what):
    def guard(*args, **kwargs):
        with open(log_path, "a") as log:
            log.write(f"{phase[0]}: {what} {args!r}\n")
        raise OSError(f"network access attempted ({what}) where none is allowed")
    return guard

def guarded(method, what):
    guard = refuse(what)
    def call(self, *args, **kwargs):
        if self.family == getattr(socket, "AF_UNIX", None):
            return method(self, *args, **kwargs)
        return guard(self, *args)
    return call

socket.socket.connect = guarded(socket.socket.connect, "connect")
socket.socket.connect_ex = guarded(socket.socket.connect_ex, "connect_ex")
socket.socket.sendto = guarded(socket.socket.sendto, "sendto")
for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, name, refuse(name))
"""

RUN_OFFLINE = NO_NETWORK + r"""
from pathlib import Path
from safetensors.torch import save_file
from bacl.cli import main
from bacl.encoders import load_encoder

work = Path(sys.argv[2])
common = ["--config", str(work / "config.yaml"), "--method", "clip_bacl", "--quiet"]
assert main(["train", *common, "--train", str(work / "train.safetensors"), "--out", str(work / "run")]) == 0
assert main(["evaluate", *common, "--test", str(work / "test.safetensors"), "--weights",
             str(work / "run" / "weights.safetensors"), "--out", str(work / "result.json")]) == 0
encoder = load_encoder("bacl-tiny-image", None)
save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(work / "tiny.safetensors"))
loaded = load_encoder("bacl-tiny-image", str(work / "tiny.safetensors"))
assert loaded.weights_id == encoder.weights_id
assert loaded.encode_texts(["a red square"])["global"].shape == (1, 128)

phase[0] = "control"  # the guard works: a deliberate download is refused and recorded
import urllib.request
try:
    urllib.request.urlopen("http://example.com/", timeout=5)
except OSError:
    print("control refused")
"""


def test_training_evaluation_and_encoders_need_no_network(tmp_path):
    write_config(tmp_path / "config.yaml", tiny_config(METHODS))
    write_feature_file(tmp_path / "train.safetensors", latent_features(64, seed=0))
    write_feature_file(tmp_path / "test.safetensors", latent_features(32, seed=1))
    unusable = "http://127.0.0.1:9"  # the discard port: nothing answers
    proxies = {name: unusable for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                          "all_proxy")}
    env = {k: v for k, v in child_environment(**proxies).items() if k.lower() != "no_proxy"}
    log = tmp_path / "network.log"
    done = subprocess.run([sys.executable, "-c", RUN_OFFLINE, str(log), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    attempts = log.read_text().splitlines() if log.exists() else []
    assert [line for line in attempts if not line.startswith("control:")] == [], attempts
    assert "control refused" in done.stdout and attempts, "the network guard did not see the control download"
    assert json.loads((tmp_path / "result.json").read_text())["method"] == "clip_bacl"


# --- nothing unpickles untrusted data -----------------------------------------------------------

# Calls that unpickle (or run serialized code) whatever a file holds.
UNPICKLING = {"pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "dill.load",
              "dill.loads", "joblib.load", "pandas.read_pickle", "torch.jit.load", "cloudpickle.load",
              "cloudpickle.loads", "shelve.open"}
TORCH_LOADS = {"torch.load", "torch.serialization.load"}


def unsafe_loads(source: str, filename: str) -> list[str]:
    """Every call in ``source`` that may unpickle untrusted data: torch.load without a literal
    ``weights_only=True``, numpy.load with ``allow_pickle`` not literally False, and the calls of
    UNPICKLING. Follows import aliases (``import torch as t``, ``from pickle import loads``)."""
    tree = ast.parse(source, filename)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({alias.asname or alias.name.split(".")[0]: alias.name if alias.asname
                            else alias.name.split(".")[0] for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})

    def dotted(func) -> str | None:
        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        return ".".join([aliases.get(func.id, func.id), *reversed(parts)])

    def literal(call: ast.Call, keyword: str):
        found = [k.value for k in call.keywords if k.arg == keyword]
        return found[0].value if found and isinstance(found[0], ast.Constant) else "<not a literal>"

    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (name := dotted(node.func)) is None:
            continue
        where = f"{filename}:{node.lineno} {name}"
        if name in TORCH_LOADS and literal(node, "weights_only") is not True:
            problems.append(f"{where} without weights_only=True")
        elif name == "numpy.load" and any(k.arg == "allow_pickle" for k in node.keywords) \
                and literal(node, "allow_pickle") is not False:  # the default is False
            problems.append(f"{where} with allow_pickle not False")
        elif name in UNPICKLING:
            problems.append(where)
    return problems


def project_sources() -> list[Path]:
    files = [path for folder in ("src", "workflow", "theory") for path in (ROOT / folder).rglob("*.py")]
    return sorted(path for path in files if ".ipynb_checkpoints" not in path.parts)


def test_the_scanner_finds_every_unsafe_form():
    unsafe = """
import torch, pickle
import torch as t
import numpy as np
from pickle import loads
from torch import load as torch_load
torch.load("a")
torch.load("a", weights_only=False)
t.load("a", weights_only=flag)
torch_load("a")
pickle.load(handle)
loads(data)
np.load("a.npy", allow_pickle=True)
torch.jit.load("m.pt")
"""
    assert len(unsafe_loads(unsafe, "unsafe.py")) == 8
    safe = """
import torch, numpy as np
torch.load("a", weights_only=True, map_location="cpu")
np.load("a.npy")
np.load("a.npy", allow_pickle=False)
"""
    assert unsafe_loads(safe, "safe.py") == []


def test_every_load_in_the_project_is_weights_only():
    sources = project_sources()
    assert any(path.name == "train.py" for path in sources)
    problems, torch_loads = [], 0
    for path in sources:
        text = path.read_text()
        problems += unsafe_loads(text, str(path.relative_to(ROOT)))
        torch_loads += text.count("torch.load(")
    assert problems == []
    assert torch_loads >= 1  # the scan saw the checkpoint loader, so it is not vacuous
    for rules in [ROOT / "Snakefile", *sorted((ROOT / "workflow").rglob("*.smk"))]:  # not Python: plain text
        assert "pickle" not in rules.read_text() and "torch.load" not in rules.read_text(), rules


# --- torch-free jobs stay torch-free ---------------------------------------------------------------

def test_the_snakefiles_imports_and_the_table_and_data_jobs_do_not_import_torch():
    """What the Snakefile imports at parse time, data generation and the paper's tables need no
    torch; importing it there costs every snakemake call and every such job about a second."""
    scripts = ROOT / "workflow" / "scripts"
    # Every table, figure, claims and report job's script; table_probe reads bacl.probe, which needs torch.
    jobs = sorted(path.stem for pattern in ("table_*.py", "fig_*.py", "aggregate_*.py", "claims*.py", "report.py")
                  for path in scripts.glob(pattern) if path.stem != "table_probe")
    assert {"aggregate_training", "table_main", "claims", "fig_training_curves"} <= set(jobs)
    probe = ("import sys, bacl, bacl.config, bacl.metrics, bacl.schedule; "
             "from bacl.data.synthetic import BENCHMARK_MODALITY, generate_split; "
             "from bacl.data.synthetic.config import config_from_mapping; "
             "from bacl.metrics import aggregate_seeds, mean_std, plateau_report; "
             f"sys.path.insert(0, {str(scripts)!r}); " + "".join(f"import {job}; " for job in jobs)
             + "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], env=child_environment(), capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
