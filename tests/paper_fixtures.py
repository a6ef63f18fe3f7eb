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


def head_sections(value: float, ael: float | None = None) -> dict:
    """The sections a cross-modal Transformer adds to an evaluation, every metric = ``value``
    (relation_flip pairs stay at 50 %: a type a probe may flag)."""
    sections = {
        "retrieval_reranked": {"k": 4, "image_to_text": {"R@1": value}, "text_to_image": {"R@1": value}},
        "retrieval_reranked_combined": {"k": 4, "score": "log_sigmoid(match_logit) + logit_scale * similarity",
                                        "image_to_text": {"R@1": value}, "text_to_image": {"R@1": value}},
        "boundary_match_head": {"accuracy": value, "pairwise_accuracy": value, "n_samples": 10,
                                "per_type": {"binding_swap": {"accuracy": value, "n_pairs": 10},
                                             "relation_flip": {"accuracy": 0.5, "n_pairs": 30}},
                                "chance": {"pairwise": 0.5, "accuracy": 0.0625, "accuracy_exchangeable": 0.2}},
        "attention": {"entropy": 4 * value, "max_entropy": 4.0, "divergence_wrong": value, "divergence_other": 0.1},
    }
    if ael is not None:
        sections["ael"] = {"ael": ael, "n": 20, "chance": 0.1, "eligible_tokens_mean": 8.0}
    return sections


def evaluation(r1_i2t: float, r1_t2i: float, accuracy: float = 0.5, method: str = "clip", ael: float | None = None,
               reranked: float | None = None, head: float | None = None, untrained: float | None = None) -> dict:
    """A hand-made evaluation JSON in bacl.evaluate's layout (only the keys the scripts read).

    ``head``: add a cross-modal Transformer's sections (head_sections) at that value, with AEL
    ``ael`` and the no-Transformer reference 0.3; ``untrained``: its untrained copy's at that value.
    """
    result = {
        "method": method, "n": 10, "features": "f.safetensors", "weights": None,
        "retrieval": {"image_to_text": {"R@1": r1_i2t, "mAP": r1_i2t + 0.1},
                      "text_to_image": {"R@1": r1_t2i, "mAP": r1_t2i + 0.1}},
        "boundary": {"accuracy": accuracy, "pairwise_accuracy": accuracy, "n_samples": 10,
                     "per_type": {"binding_swap": {"accuracy": accuracy, "n_pairs": 10}},
                     "chance": {"pairwise": 0.5, "accuracy": 0.0625, "accuracy_exchangeable": 0.2}},
        "multiple_choice": {"accuracy": accuracy, "f1": accuracy},
    }
    if ael is not None:
        result["ael"] = {"ael": ael, "n": 20, "chance": 0.1}
    if reranked is not None:
        result["retrieval_reranked"] = {"k": 4, "image_to_text": {"R@1": reranked}, "text_to_image": {"R@1": reranked}}
    if head is not None:
        result.update(head_sections(head, ael))
        if ael is not None:
            result["ael"]["frozen_reference"] = 0.3
    if untrained is not None:
        result["untrained"] = head_sections(untrained, None if ael is None else 0.2)
    return result


def summary_of(values: dict[tuple[str, str], list[float]], split: str = "test", heads: dict | None = None) -> dict:
    """A results summary from {(benchmark, method): per-seed R@1 (both directions) = accuracy = AEL}.

    ``heads``: {(benchmark, method): (per-seed head value, per-seed untrained value)} for the runs
    with a cross-modal Transformer (their head metrics and AEL take the head value).
    """
    heads = heads or {}
    records = []
    for (b, m), per_seed in values.items():
        head, untrained = heads.get((b, m), (None, None))
        for seed, v in enumerate(per_seed):
            records.append({"benchmark": b, "split": split, "method": m, "seed": seed, "result": evaluation(
                v, v, accuracy=v, method=m, ael=v if head is None else head[seed],
                head=None if head is None else head[seed], untrained=None if untrained is None else untrained[seed])})
    return {"config": "test", "seeds": [0, 1, 2], "results": aggregate.summarise(records)}
