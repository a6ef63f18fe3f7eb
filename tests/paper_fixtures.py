"""Shared helpers of the paper-stage tests: loading workflow/scripts modules, hand-made results.

The scripts import their shared modules (paper_common, paper_claims) by name, as Snakemake's
``script:`` directive puts the scripts folder on sys.path; the tests do the same.
"""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
sys.path.insert(0, str(SCRIPTS))


def load(name: str):
    """Import workflow/scripts/<name>.py (no ``snakemake`` global, so its entry point stays idle),
    registered under its name so that the scripts importing it share this one module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


common, aggregate, training_summary = load("paper_common"), load("aggregate_results"), load("aggregate_training")
claims, render, paper = load("claims"), load("claims_render"), load("paper_claims")


def evaluation(r1_i2t: float, r1_t2i: float, accuracy: float = 0.5, method: str = "clip", ael: float | None = None,
               reranked: float | None = None) -> dict:
    """A hand-made evaluation JSON in bacl.evaluate's layout (only the keys the scripts read)."""
    result = {
        "method": method, "n": 10, "features": "f.safetensors", "weights": None,
        "retrieval": {"image_to_text": {"R@1": r1_i2t, "mAP": r1_i2t + 0.1},
                      "text_to_image": {"R@1": r1_t2i, "mAP": r1_t2i + 0.1}},
        "boundary": {"accuracy": accuracy, "n_samples": 10, "per_type": {"binding_swap": {"accuracy": accuracy}}},
        "multiple_choice": {"accuracy": accuracy, "f1": accuracy},
    }
    if ael is not None:
        result["ael"] = {"ael": ael, "n": 20, "chance": 0.1}
    if reranked is not None:
        result["retrieval_reranked"] = {"k": 4, "image_to_text": {"R@1": reranked}, "text_to_image": {"R@1": reranked}}
    return result


def summary_of(values: dict[tuple[str, str], list[float]], split: str = "test") -> dict:
    """A results summary from {(benchmark, method): per-seed R@1 (both directions) = accuracy = AEL}."""
    records = [{"benchmark": b, "split": split, "method": m, "seed": seed,
                "result": evaluation(v, v, accuracy=v, method=m, ael=v)}
               for (b, m), per_seed in values.items() for seed, v in enumerate(per_seed)]
    return {"config": "test", "seeds": [0, 1, 2], "results": aggregate.summarise(records)}


# --- aggregate_results ---------------------------------------------------------------------------
