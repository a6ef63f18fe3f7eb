"""Evaluation of a trained aligner on a cached test split: one JSON-ready dict of metrics.

* retrieval, both directions, by the aligner's similarity (cosine, or GRAM's -volume) and, for
  aligners with a match head, by re-ranking each query's top k: by the match score alone (the
  ALBEF protocol: the Transformer decides) and by ``log sigmoid(match) + logit_scale * cos``, the
  product of the head's and the contrastive model's probabilities (no weight to choose);
* boundary accuracy: the true caption against its boundary negatives, per negative type, by
  embedding score and, where there is one, by match score, with the chance levels of the split;
  the multiple-choice view of the same comparison (the tri-modal accuracy column);
* AEL: for aligners with a cross-modal Transformer, the share of boundary negatives whose most
  divergent text token (positive vs negative attention) is a truly wrong token, with chance and a
  no-Transformer reference (the token whose frozen feature differs most), both over the positions
  from the first one where the two captions' token features differ; attention diagnostics
  (entropy, divergence at wrong and at other tokens);
* with ``untrained_cross_modal``, the head metrics of the same aligner with that (untrained)
  Transformer instead of its own, under ``"untrained"``: the reference a trained head must beat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .aligners import Aligner
from .attention import most_divergent_token
from .featureset import FeatureSet
from .metrics import (
    ael_chance_level,
    attention_diagnostics,
    attention_error_localization,
    bidirectional_retrieval,
    boundary_accuracy,
    boundary_chance,
    multiple_choice_accuracy,
    rerank_topk,
)

__all__ = ["evaluate", "embed"]


@torch.no_grad()
def embed(aligner: Aligner, features: FeatureSet, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(x embeddings, text embeddings) of every row, computed in batches."""
    xs, texts = [], []
    for start in range(0, len(features), batch_size):
        batch = features.batch(torch.arange(start, min(start + batch_size, len(features))))
        xs.append(aligner.encode_x(batch.x, batch.modalities))
        texts.append(aligner.encode_text(batch.text))
    return torch.cat(xs), torch.cat(texts)


def _negative_type_names(features: FeatureSet) -> list[str]:
    names = features.meta.get("negative_types")
    if not names:
        raise ValueError(f"feature set {features.source} has no 'negative_types' in its metadata")
    return list(names)


@torch.no_grad()
def _pair_outputs(cross_modal, features: FeatureSet, x_rows, text_tokens, text_mask, batch_size: int,
                  attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Match logits (n,) of x rows ``x_rows`` (n,) with text tokens (n, Lt, Dt), in batches, and
    with ``attention`` also the last layer's (n, Lt, Lx) cross-attention of each pair. An x row
    paired with several texts of a batch (a query's re-ranked captions, a sample's boundary
    negatives) is projected once (the Transformer's ``context_index``)."""
    logits, maps = [], []
    for start in range(0, len(x_rows), batch_size):
        rows, context_index = x_rows[start:start + batch_size].unique(return_inverse=True)
        out = cross_modal(text_tokens[start:start + batch_size].float(), features["x_tokens"][rows].float(),
                          text_mask[start:start + batch_size], features["x_token_mask"][rows],
                          context_index=context_index)
        logits.append(out.match_logit)
        if attention:
            maps.append(out.attention)
    return torch.cat(logits), torch.cat(maps) if attention else None


class _CaptionMatchLogits:
    """Match logits of (x row, caption row) pairs of one split, each pair computed once.

    Re-ranking both directions asks for many of the same pairs (mutual nearest neighbours, and
    the true pairs scored for boundary accuracy); a dense (n, n) table with NaN for "not yet
    computed" serves each pair once (n = 10k is 400 MB, beyond the splits evaluated here).
    """

    def __init__(self, cross_modal, features: FeatureSet, batch_size: int):
        self.cross_modal, self.features, self.batch_size = cross_modal, features, batch_size
        self.table = torch.full((len(features), len(features)), float("nan"))

    def store(self, x_rows: torch.Tensor, text_rows: torch.Tensor, logits: torch.Tensor) -> None:
        self.table[x_rows, text_rows] = logits.float()

    def __call__(self, x_rows: torch.Tensor, text_rows: torch.Tensor) -> torch.Tensor:
        missing = self.table[x_rows, text_rows].isnan()
        if missing.any():
            rows, texts = x_rows[missing], text_rows[missing]
            logits, _ = _pair_outputs(self.cross_modal, self.features, rows, self.features["text_tokens"][texts],
                                      self.features["text_token_mask"][texts], self.batch_size)
            self.store(rows, texts, logits)
        return self.table[x_rows, text_rows]


def _eligible_tokens(positive_tokens: torch.Tensor, negative_tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(R, Lt) bool: the valid positions from the first one whose frozen token features differ.

    A causal text tower (CLIP's) gives a caption and its boundary negative identical token
    features before the first wrong word, so no attention can differ there; AEL and its chance
    level are taken over the positions that can differ (see paper/ASSUMPTIONS.md).
    """
    differs = ((positive_tokens.float() - negative_tokens.float()).abs().amax(-1) > 0) & valid
    positions = torch.arange(valid.shape[1], device=valid.device)
    first = torch.where(differs, positions, valid.shape[1]).min(1).values
    return valid & (positions >= first[:, None])


def _reranked(similarity, rescore, ids, ks, rerank_k: int, **extra) -> dict:
    """Retrieval both ways after re-scoring each query's top ``rerank_k`` by ``rescore(x_rows, text_rows)``."""
    image_to_text = rerank_topk(similarity, rescore, rerank_k)
    text_to_image = rerank_topk(similarity.T, lambda texts, xs: rescore(xs, texts), rerank_k).T
    return {"k": rerank_k, **extra,
            "image_to_text": bidirectional_retrieval(None, None, ids, ids, ks, similarity=image_to_text)["image_to_text"],
            "text_to_image": bidirectional_retrieval(None, None, ids, ids, ks, similarity=text_to_image)["text_to_image"]}


@torch.no_grad()
def _head_metrics(cross_modal, features: FeatureSet, similarity: torch.Tensor, scale: float, rerank_k: int,
                  batch_size: int, ks) -> dict:
    """Everything the cross-modal Transformer ``cross_modal`` decides: re-ranked retrieval, and
    with boundary negatives its boundary accuracy, AEL and attention diagnostics."""
    ids = features["caption_id"]
    has_negatives = "negative_text" in features
    pair_logits = _CaptionMatchLogits(cross_modal, features, batch_size)
    everyone = torch.arange(len(features))
    # The true pairs first, with their attention maps (AEL needs them): re-ranking reuses them.
    positive_logits, positive_attention = _pair_outputs(
        cross_modal, features, everyone, features["text_tokens"], features["text_token_mask"], batch_size,
        attention=has_negatives)
    pair_logits.store(everyone, everyone, positive_logits)
    combined = lambda xs, texts: F.logsigmoid(pair_logits(xs, texts)) + scale * similarity[xs, texts]  # noqa: E731
    results = {
        "retrieval_reranked": _reranked(similarity, pair_logits, ids, ks, rerank_k),
        "retrieval_reranked_combined": _reranked(similarity, combined, ids, ks, rerank_k,
                                                 score="log_sigmoid(match_logit) + logit_scale * similarity"),
    }
    if not has_negatives:
        return results
    mask, names = features["negative_mask"], _negative_type_names(features)
    rows, slots = mask.nonzero(as_tuple=True)
    negative_tokens = features["negative_text_tokens"][rows, slots]
    negative_token_mask = features["negative_text_token_mask"][rows, slots]
    negative_logits = torch.zeros(mask.shape)  # padding slots; boundary_accuracy ignores them through the mask
    negative_logits[rows, slots], negative_attention = _pair_outputs(
        cross_modal, features, rows, negative_tokens, negative_token_mask, batch_size, attention=True)
    results["boundary_match_head"] = {
        **boundary_accuracy(positive_logits, negative_logits, features["negative_type"], mask, type_names=names),
        "chance": boundary_chance(mask)}
    if "negative_wrong_tokens" not in features:  # options without known wrong words (real data): no AEL
        return results

    eligible = _eligible_tokens(features["text_tokens"][rows], negative_tokens,
                                features["text_token_mask"][rows] & negative_token_mask)
    divergent = most_divergent_token(positive_attention[rows], negative_attention, eligible)
    # Wrong words where no attention can differ (before the first differing frozen feature) cannot
    # be localised: AEL, its chance level and its references are taken over the eligible ones.
    wrong = features["negative_wrong_tokens"][rows, slots] & eligible
    wrong_positions = [torch.nonzero(row).flatten().tolist() for row in wrong]
    has_wrong = wrong.any(1)
    # No Transformer at all: the eligible token whose frozen feature differs most between the captions.
    feature_change = (features["text_tokens"][rows].float() - negative_tokens.float()).norm(dim=-1)
    frozen_pick = feature_change.masked_fill(~eligible, -1.0).argmax(1)
    results["ael"] = {
        **attention_error_localization(divergent, wrong_positions, valid=has_wrong),
        "chance": ael_chance_level(wrong_positions, eligible.sum(1), valid=has_wrong),
        "frozen_reference": attention_error_localization(frozen_pick, wrong_positions, valid=has_wrong)["ael"],
        "eligible_tokens_mean": eligible.sum(1).float().mean().item(),
    }
    results["attention"] = attention_diagnostics(positive_attention[rows], negative_attention, wrong, eligible,
                                                 features["x_token_mask"][rows])
    return results


@torch.no_grad()
def evaluate(aligner: Aligner, features: FeatureSet, rerank_k: int = 16, batch_size: int = 256,
             ks: tuple[int, ...] = (1, 5, 10), untrained_cross_modal=None) -> dict:
    """Metrics of ``aligner`` on ``features`` (a test split with boundary negatives).

    ``untrained_cross_modal``: optionally the aligner's cross-modal Transformer at its
    initialisation (e.g. built with the run's seed, before loading the weights); its head metrics,
    with the trained embeddings, go under ``"untrained"``.
    """
    aligner.eval()
    ids = features["caption_id"]
    x_embedding, text_embedding = embed(aligner, features)
    similarity = aligner.similarity(x_embedding, text_embedding)
    results = {"n": len(features), "distinct_captions": int(ids.unique().numel()),
               "retrieval": bidirectional_retrieval(None, None, ids, ids, ks, similarity=similarity)}
    if "negative_text" in features:
        mask = features["negative_mask"]
        n, m = mask.shape
        negative_embedding = aligner.encode_text(features["negative_text"].float().reshape(n * m, -1)).reshape(n, m, -1)
        positive_scores = aligner.pair_scores(x_embedding, text_embedding[:, None]).squeeze(1)
        negative_scores = aligner.pair_scores(x_embedding, negative_embedding)
        results["boundary"] = {
            **boundary_accuracy(positive_scores, negative_scores, features["negative_type"], mask,
                                type_names=_negative_type_names(features)),
            "chance": boundary_chance(mask)}
        # Padding slots (samples with fewer negatives) become options that always lose.
        floor = torch.minimum(positive_scores.min(), negative_scores.min()) - 1.0
        choices = torch.cat([positive_scores[:, None], negative_scores.masked_fill(~mask, floor)], dim=1)
        results["multiple_choice"] = {**multiple_choice_accuracy(choices, torch.zeros(n, dtype=torch.long)),
                                      "chance": boundary_chance(mask)}
    if not (aligner.has_match_head and "x_tokens" in features):
        return results
    rerank_k = min(rerank_k, len(features))  # a small split cannot fill a larger top k
    scale = float(aligner.contrastive_scale())
    results.update(_head_metrics(aligner.cross_modal, features, similarity, scale, rerank_k, batch_size, ks))
    if untrained_cross_modal is not None:
        untrained_cross_modal.eval()
        untrained = _head_metrics(untrained_cross_modal, features, similarity, scale, rerank_k, batch_size, ks)
        untrained.get("ael", {}).pop("frozen_reference", None)  # the same number: it has no Transformer
        results["untrained"] = untrained
    return results
