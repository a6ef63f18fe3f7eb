"""Linear probes: do a frozen tower's tokens at a given block carry what each boundary negative tests?

The cross-modal Transformer (:mod:`bacl.attention`) reads frozen token features and adds no
position of its own, so whatever a negative type tests (a colour, a relation, an order) must be in
the tokens' content. For each negative type a benchmark has, :mod:`bacl.probe_tasks` turns the
scene descriptions into *tasks* and *comparisons*:

* a task is one linear readout: a label (an object's colour, the relation of two named objects,
  whether one named event comes before another) from a feature pooled out of the tokens that
  belong to the named things (the grounding a caption gives: which tokens are "the red circle";
  never their position, which the tokens must carry themselves);
* a comparison is what one negative of the type asks: does the readout prefer the caption's value
  over the negative's? Its score is a sum of terms ``s_task(example, true) - s_task(example, alt)``
  (two terms for a binding swap: each object keeps its own value), correct when > 0, half a
  point on a tie. Every alternative the generator could propose is compared, so the mix matches
  the negatives' mix. A type that needs two kinds of information has parts ("X/part", e.g. the
  video direction: where the object is, and which frame is earlier), folded into X by
  :func:`probe_summary` as the weakest part.

Per layer, each task is fitted by multinomial logistic regression (standardised features, fixed
L2 and L-BFGS budget) on a seeded half of the samples; comparisons are scored on the other half.
Chance is the same comparisons scored by the training labels' log-frequencies alone (exactly 50 %
for balanced pairs). Standard errors are clustered by sample; a probe is *at chance* when its
paired gain over chance is below ``Z`` standard errors. Pure functions: no file is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Z", "ProbeSpec", "ProbeTask", "Terms", "choose_layer", "fit_linear_probe", "probe_summary",
           "resolve_token_layer", "run_probe", "text_separability"]

Z = 2.0  # the project's verdict rule: an effect is real beyond 2 standard errors


@dataclass
class ProbeTask:
    """One readout. labels (N,) in [0, num_classes); sample (N,) the dataset sample of each example
    (the unit of the held-out split and of the standard errors); slots: per slot, (source name,
    token indices (N, K) into that source's tokens, pooling weights (N, K), rows summing to 1);
    the feature is the slots' pooled tokens, concatenated."""

    num_classes: int
    labels: np.ndarray
    sample: np.ndarray
    slots: list[tuple[str, np.ndarray, np.ndarray]]


@dataclass
class Terms:
    """Terms of comparisons on one task: comparison (K,), example (K,), true (K,), alt (K,)."""

    task: str
    comparison: np.ndarray
    example: np.ndarray
    true: np.ndarray
    alt: np.ndarray


@dataclass
class ProbeSpec:
    """Tasks by name, and per negative type its comparisons (terms) and their samples (M,)."""

    tasks: dict[str, ProbeTask]
    types: dict[str, list[Terms]]
    comparison_sample: dict[str, np.ndarray]


def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = 1e-3,
                     max_iter: int = 100):
    """Multinomial logistic regression on x (N, D) -> y (N,); returns scores(x') -> logits (N', C).

    Features are standardised with the training mean and std; the loss is the mean cross-entropy
    plus l2 / 2 * ||W||^2, minimised by L-BFGS (strong Wolfe) for at most ``max_iter`` iterations
    from zero: deterministic, and the same budget for every layer and type.
    """
    if x.dim() != 2 or y.shape != (len(x),) or len(x) == 0:
        raise ValueError(f"x must be (N, D) and y (N,) with N >= 1, got {tuple(x.shape)} and {tuple(y.shape)}")
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight + bias, y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return lambda other: ((other - mean) / std) @ weight + bias


def _features(task: ProbeTask, sources: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """(N, slots * D): each slot's pooled tokens at ``layer`` (a one-layer source has index 0)."""
    parts = []
    for name, index, weight in task.slots:
        tokens = sources[name]  # (samples, layers, tokens, D)
        at = layer if tokens.shape[1] > 1 else 0
        picked = tokens[torch.as_tensor(task.sample)[:, None], at, torch.as_tensor(index)].float()  # (N, K, D)
        parts.append((picked * torch.as_tensor(weight, dtype=torch.float32)[..., None]).sum(1))
    return torch.cat(parts, dim=1)


def _task_layers(task: ProbeTask, sources: dict[str, torch.Tensor]) -> int:
    counts = {sources[name].shape[1] for name, _, _ in task.slots} - {1}
    if len(counts) > 1:
        raise ValueError(f"a task mixes sources with {sorted(counts)} layers")
    return counts.pop() if counts else 1


def _layer_name(layer: int, depth: int, terms: list[Terms], spec: ProbeSpec) -> str:
    """"1".."L" for tower blocks; a type read from one-layer sources only is named after them."""
    if depth > 1:
        return str(layer + 1)
    return "+".join(sorted({name for t in terms for name, _, _ in spec.tasks[t.task].slots}))


def _clustered_se(values: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of the mean of ``values`` with observations clustered by ``groups`` (0..G-1)."""
    g = int(groups.max()) + 1
    centred = np.bincount(groups, weights=values - values.mean(), minlength=g)
    return float(np.sqrt(g / max(g - 1, 1) * np.square(centred).sum()) / len(values))


def _accuracy(correct: np.ndarray, chance: np.ndarray, sample: np.ndarray) -> dict:
    """Accuracy with its standard error, chance, and whether the paired gain over chance is within
    ``Z`` standard errors of 0 (all clustered by sample: one sample's comparisons are not independent)."""
    _, groups = np.unique(sample, return_inverse=True)
    gain = correct - chance
    gain_se = _clustered_se(gain, groups)
    return {"accuracy": float(correct.mean()), "se": _clustered_se(correct, groups), "chance": float(chance.mean()),
            "gain_se": gain_se, "comparisons": int(len(correct)), "at_chance": bool(gain.mean() - Z * gain_se <= 0)}


def _score_type(terms: list[Terms], scores: dict[str, torch.Tensor], count: int) -> np.ndarray:
    """1 / 0.5 / 0 per comparison from the tasks' (N, C) scores."""
    total = np.zeros(count)
    for t in terms:
        s = scores[t.task].numpy()
        np.add.at(total, t.comparison, s[t.example, t.true] - s[t.example, t.alt])
    return (total > 0) + 0.5 * (total == 0)


def run_probe(spec: ProbeSpec, sources: dict[str, torch.Tensor], seed: int = 0, test_fraction: float = 0.5,
              l2: float = 1e-3, max_iter: int = 100) -> dict:
    """Probe every type at every layer. sources: name -> tokens (samples, layers, tokens, D).

    Returns ``{type: {"layers": {layer: accuracy record}}}``, layers named "1".."L" (blocks), or after
    the source for a type read from one-layer sources only (e.g. "frames"); a record has accuracy,
    se, chance, gain_se (of accuracy - chance, paired), comparisons (held-out) and at_chance, and
    the type ``at_chance_every_layer``.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    samples = np.unique(np.concatenate([task.sample for task in spec.tasks.values()]))
    shuffled = np.random.default_rng(seed).permutation(samples)
    test_samples = shuffled[: max(1, round(test_fraction * len(samples)))]
    layers = {name: _task_layers(task, sources) for name, task in spec.tasks.items()}
    scores: dict[str, dict[int, torch.Tensor]] = {}
    priors: dict[str, torch.Tensor] = {}
    for name, task in spec.tasks.items():
        train = ~np.isin(task.sample, test_samples)
        y = torch.as_tensor(task.labels, dtype=torch.long)
        counts = torch.bincount(y[train], minlength=task.num_classes).float()
        priors[name] = torch.log((counts + 1) / (counts.sum() + task.num_classes)).expand(len(y), -1)
        scores[name] = {}
        for layer in range(layers[name]):
            x = _features(task, sources, layer)
            if train.any():
                scores[name][layer] = fit_linear_probe(x[train], y[train], task.num_classes, l2, max_iter)(x)
            else:
                scores[name][layer] = priors[name]
    out = {}
    for kind, terms in spec.types.items():
        sample = spec.comparison_sample[kind]
        test = np.isin(sample, test_samples)
        depth = max(layers[t.task] for t in terms)
        chance = _score_type(terms, priors, len(sample))[test]
        records = {}
        for layer in range(depth):
            at = {name: scores[name][min(layer, layers[name] - 1)] for name in {t.task for t in terms}}
            records[_layer_name(layer, depth, terms, spec)] = _accuracy(_score_type(terms, at, len(sample))[test],
                                                                         chance, sample[test])
        out[kind] = {"layers": records, "at_chance_every_layer": all(r["at_chance"] for r in records.values())}
    return out


def choose_layer(results: dict, candidates: list[int]) -> tuple[int, dict[str, float]]:
    """The layer maximising the mean accuracy over the types probed at every candidate layer (chance
    does not depend on the layer, so this also maximises the mean gain over chance); ties go to the
    later layer. Returns it and the mean per layer. Raises ValueError when no type was probed at
    those layers."""
    types = [k for k, r in results.items() if all(str(c) in r["layers"] for c in candidates)]
    if not candidates or not types:
        raise ValueError(f"no negative type was probed at every layer of {candidates}")
    means = {str(c): float(np.mean([results[k]["layers"][str(c)]["accuracy"] for k in types])) for c in candidates}
    best = max(means.values())
    return max(c for c in candidates if means[str(c)] == best), means


def _merge_parts(results: dict) -> dict:
    """Types "X/part" folded into X: a type needs all its parts, so at each layer it takes the
    record of its least accurate part, at chance when any part is; the parts stay under "parts"."""
    grouped: dict[str, dict] = {}
    for key, result in results.items():
        kind, _, part = key.partition("/")
        grouped.setdefault(kind, {})[part or kind] = result
    merged = {}
    for kind, parts in grouped.items():
        if len(parts) == 1:
            merged[kind] = next(iter(parts.values()))
            continue
        layers = {}
        for name in parts[kind]["layers"]:
            records = [part["layers"][name] for part in parts.values()]
            layers[name] = {**min(records, key=lambda r: r["accuracy"]), "at_chance": any(r["at_chance"] for r in records)}
        merged[kind] = {"layers": layers, "at_chance_every_layer": all(r["at_chance"] for r in layers.values()),
                        "parts": parts}
    return merged


def probe_summary(spec: ProbeSpec, trained: dict, untrained: dict, layers: dict[str, int]) -> dict:
    """The probe's record: per type its results (parts folded in), the sources it reads and the
    untrained tower's results; per token source with several layers (``layers``: source -> count)
    the mean accuracy per layer and the chosen layer (:func:`choose_layer` over the types that read
    the source); and ``at_chance_types``, the types at chance at every layer (to be flagged
    wherever reported)."""
    sources: dict[str, set] = {}
    for key, terms in spec.types.items():
        sources.setdefault(key.partition("/")[0], set()).update(
            slot[0] for t in terms for slot in spec.tasks[t.task].slots)
    trained, untrained = _merge_parts(trained), _merge_parts(untrained)
    types = {kind: {**trained[kind], "sources": sorted(sources[kind]), "untrained": untrained[kind]["layers"]}
             for kind in trained}
    best, means = {}, {}
    for source, count in layers.items():
        readers = {kind: result for kind, result in trained.items() if source in sources[kind]}
        if count > 1 and readers:
            best[source], means[source] = choose_layer(readers, list(range(1, count + 1)))
    return {"types": types, "mean_accuracy": means, "best_layer": best,
            "at_chance_types": [kind for kind, result in trained.items() if result["at_chance_every_layer"]]}


def resolve_token_layer(setting, num_layers: int, probe_record: dict | None = None, source: str = "image") -> int:
    """The 1-based block whose tokens a family's feature sets keep. setting: "probe" (the block the
    probe chose for ``source``, from ``probe_record``), "last" or a block number."""
    if setting == "probe":
        if probe_record is None or source not in probe_record.get("best_layer", {}):
            raise ValueError(f"token_layer 'probe' needs a probe record with a best layer for {source!r}")
        return int(probe_record["best_layer"][source])
    if setting == "last":
        return num_layers
    if isinstance(setting, bool) or not isinstance(setting, int) or not 1 <= setting <= num_layers:
        raise ValueError(f"token_layer must be 'probe', 'last' or a block in [1, {num_layers}], got {setting!r}")
    return setting


def text_separability(caption: dict[str, torch.Tensor], negative: dict[str, torch.Tensor], owner: np.ndarray,
                      kinds: list[str], wrong: list[list[int]], seed: int = 0) -> dict:
    """How far apart the text tower keeps a caption and its boundary negative, per type and layer.

    caption / negative: ``encode_all_layers`` outputs (global (N, E), tokens (N, L, T, D),
    token_ids (N, T)); owner (M,): the caption of each negative; kinds: its type; wrong: its wrong
    token positions. Distance = 1 - cos at the wrong tokens (for "pooled": between the global
    embeddings), divided by the same distance between two unrelated captions (a seeded
    derangement; positions where their token ids differ): 0 = the edit is invisible, 1 = as
    visible as an unrelated caption. Returns ``{type: {"1".."L", "pooled": ratio}}``.
    """
    n = len(caption["token_ids"])
    if n < 2:
        raise ValueError("caption needs at least 2 captions for the unrelated-caption reference")
    shift = np.random.default_rng(seed).integers(1, n)
    other = (np.arange(n) + shift) % n  # a derangement: nobody is paired with itself
    ids = caption["token_ids"]
    differs = (ids != ids[other]) & (ids != 0) & (ids[other] != 0)

    def distance(a, b):
        return 1 - torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)

    layers = caption["tokens"].shape[1]
    reference = {str(l + 1): float((distance(caption["tokens"][:, l], caption["tokens"][other, l])[differs]).mean())
                 for l in range(layers)}
    reference["pooled"] = float(distance(caption["global"], caption["global"][other]).mean())
    mask = torch.zeros(negative["tokens"].shape[0], negative["tokens"].shape[2], dtype=torch.bool)
    for m, positions in enumerate(wrong):
        mask[m, positions] = True
    out = {}
    for kind in dict.fromkeys(kinds):
        rows = np.flatnonzero(np.asarray(kinds) == kind)
        here = {}
        for l in range(layers):
            d = distance(caption["tokens"][owner[rows], l], negative["tokens"][rows, l])
            per = (d * mask[rows]).sum(1) / mask[rows].sum(1).clamp_min(1)
            here[str(l + 1)] = float(per.mean()) / reference[str(l + 1)]
        here["pooled"] = float(distance(caption["global"][owner[rows]], negative["global"][rows]).mean()) / reference["pooled"]
        out[kind] = here
    return out
