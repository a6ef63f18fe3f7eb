"""Evaluation on hand-made feature sets whose metrics are known exactly, and on the fixture's splits."""

import math

import pytest
import torch
import torch.nn.functional as F
from fixtures import NEGATIVE_TYPES, context_copies, latent_features
from torch import nn

from bacl.aligners import ZeroShotAligner, build_aligner
from bacl.attention import CrossModalOutput
from bacl.config import method_settings, validate_config
from bacl.evaluate import evaluate
from bacl.featureset import FeatureSet
from bacl.metrics import bidirectional_retrieval

N, DIM, TOKENS, TOKEN_DIM, NEGATIVES = 8, 6, 4, 5, 2


def hand_made(n=N, *, caption_id=None, text=None, x=None, seed=0) -> dict:
    """Tensors where text == x (unless given) on the first half of the coordinates and every
    boundary negative lies on the second half (orthogonal to x); x tokens == text tokens, and
    negative k of row i differs from its caption's tokens only at position (i + k) % TOKENS."""
    gen = torch.Generator().manual_seed(seed)
    if text is None:
        text = torch.cat([torch.randn(n, DIM // 2, generator=gen), torch.zeros(n, DIM // 2)], dim=1)
    tokens = torch.randn(n, TOKENS, TOKEN_DIM, generator=gen)
    negative_tokens = tokens[:, None].repeat(1, NEGATIVES, 1, 1)
    wrong = (torch.arange(n)[:, None] + torch.arange(NEGATIVES)[None]) % TOKENS
    rows, slots = torch.arange(n)[:, None], torch.arange(NEGATIVES)[None]
    negative_tokens[rows, slots, wrong] = torch.randn(n, NEGATIVES, TOKEN_DIM, generator=gen)
    return {
        "x": text.clone() if x is None else x, "text": text,
        "caption_id": torch.arange(n) if caption_id is None else caption_id,
        "x_tokens": tokens.clone(), "x_token_mask": torch.ones(n, TOKENS, dtype=torch.bool),
        "text_tokens": tokens, "text_token_mask": torch.ones(n, TOKENS, dtype=torch.bool),
        "negative_text": torch.cat([torch.zeros(n, NEGATIVES, DIM // 2),
                                    torch.randn(n, NEGATIVES, DIM // 2, generator=gen)], dim=-1),
        "negative_text_tokens": negative_tokens,
        "negative_text_token_mask": torch.ones(n, NEGATIVES, TOKENS, dtype=torch.bool),
        "negative_mask": torch.ones(n, NEGATIVES, dtype=torch.bool),
        "negative_type": torch.arange(NEGATIVES).repeat(n, 1) % len(NEGATIVE_TYPES),  # slot 0 attribute, 1 binding
        "negative_wrong_tokens": F.one_hot(wrong, TOKENS).bool(),
    }


def feature_set(tensors: dict) -> FeatureSet:
    return FeatureSet(tensors, {"negative_types": list(NEGATIVE_TYPES)})


class TokenwiseMatcher(nn.Module):
    """Stand-in for the cross-modal Transformer with known answers: text token i attends by its
    own dot products with the context tokens only (no mixing between text tokens), and the match
    logit is minus the squared distance between the text and context token sequences."""

    def forward(self, text_tokens, context_tokens, text_mask, context_mask, context_index=None):
        if context_index is not None:  # (C, Lc, D) contexts, each text's row given
            context_tokens, context_mask = context_tokens[context_index], context_mask[context_index]
        scores = torch.einsum("btd,bcd->btc", text_tokens, context_tokens)
        attention = scores.masked_fill(~context_mask[:, None, :], float("-inf")).softmax(-1) * text_mask[..., None]
        match_logit = -(text_tokens - context_tokens).pow(2).sum((1, 2))
        return CrossModalOutput(match_logit, attention, (attention[:, None],), text_tokens)


class MatchingZeroShot(ZeroShotAligner):
    """The frozen encoder plus the known-answer match head."""

    has_match_head = True

    def __init__(self):
        super().__init__()
        self.matcher = TokenwiseMatcher()

    @property
    def cross_modal(self):
        return self.matcher


def test_identical_embeddings_give_perfect_retrieval_and_boundary_accuracy():
    results = evaluate(ZeroShotAligner(), feature_set(hand_made()), rerank_k=4)
    for direction in ("image_to_text", "text_to_image"):
        assert results["retrieval"][direction]["R@1"] == 1.0
        assert results["retrieval"][direction]["mAP"] == 1.0
    assert results["n"] == N and results["distinct_captions"] == N
    assert results["boundary"]["accuracy"] == 1.0 and results["boundary"]["n_pairs"] == N * NEGATIVES
    assert results["boundary"]["per_type"] == {name: {"accuracy": 1.0, "n_pairs": N} for name in NEGATIVE_TYPES}
    assert results["multiple_choice"]["accuracy"] == 1.0
    assert "retrieval_reranked" not in results and "ael" not in results and "boundary_match_head" not in results


def test_negatives_that_tie_the_caption_lose_half_the_rows():
    tensors = hand_made()
    tensors["negative_text"][: N // 2, 0] = 2 * tensors["text"][: N // 2]  # cosine 1: a tie, which loses
    results = evaluate(ZeroShotAligner(), feature_set(tensors))
    assert results["multiple_choice"]["accuracy"] == 0.5
    assert results["boundary"]["accuracy"] == 0.5
    assert results["boundary"]["per_type"]["attribute"]["accuracy"] == 0.5  # slot 0
    assert results["boundary"]["per_type"]["binding"]["accuracy"] == 1.0


def test_padded_negative_slots_are_ignored():
    tensors = hand_made()
    tensors["negative_mask"][::2, 1] = False
    tensors["negative_text"][::2, 1] = tensors["text"][::2]  # would tie if it were counted
    results = evaluate(MatchingZeroShot(), feature_set(tensors), rerank_k=4)
    assert results["multiple_choice"]["accuracy"] == 1.0
    assert results["boundary"]["accuracy"] == 1.0
    assert results["boundary"]["n_pairs"] == N * NEGATIVES - N // 2
    assert results["boundary_match_head"]["n_pairs"] == N * NEGATIVES - N // 2
    assert results["ael"]["n"] == N * NEGATIVES - N // 2


def test_duplicate_captions_are_one_relevant_class():
    gen = torch.Generator().manual_seed(1)
    text = torch.randn(N // 2, DIM, generator=gen).repeat_interleave(2, dim=0)  # rows 2i, 2i+1: one caption
    x = text + 0.01 * torch.randn(N, DIM, generator=gen)
    by_caption = evaluate(ZeroShotAligner(), feature_set(hand_made(text=text, x=x, caption_id=torch.arange(N) // 2)))
    assert by_caption["distinct_captions"] == N // 2
    assert by_caption["retrieval"]["image_to_text"]["R@1"] == 1.0
    assert by_caption["retrieval"]["text_to_image"]["R@1"] == 1.0
    # Were each row its own class, an image's two identical captions would tie, and ties lose.
    by_row = evaluate(ZeroShotAligner(), feature_set(hand_made(text=text, x=x)))
    assert by_row["retrieval"]["image_to_text"]["R@1"] == 0.0


def test_match_head_sections_and_known_answers():
    results = evaluate(MatchingZeroShot(), feature_set(hand_made()), rerank_k=4)
    assert results["retrieval_reranked"]["k"] == 4
    for direction in ("image_to_text", "text_to_image"):
        assert results["retrieval_reranked"][direction]["R@1"] == 1.0
    assert results["boundary_match_head"]["accuracy"] == 1.0
    # Only the replaced token's attention changes, and it is the marked wrong token. AEL and its
    # chance level count the positions from the first one whose token features differ, which
    # here is the replaced token at (i + k) % TOKENS.
    # The frozen features differ only at the replaced token too, so the no-Transformer reference
    # also finds it.
    assert results["ael"] == {"ael": 1.0, "n": N * NEGATIVES, "chance": pytest.approx(eligible_chance()),
                              "frozen_reference": 1.0, "eligible_tokens_mean": eligible_counts().mean().item()}
    # Only the replaced token's attention changes: all divergence is at the wrong tokens.
    attention = results["attention"]
    assert attention["divergence_wrong"] > 0 and attention["divergence_other"] == 0.0
    assert 0 < attention["entropy"] <= attention["max_entropy"] == pytest.approx(math.log(TOKENS))
    chance = {"pairwise": 0.5, "accuracy": 0.5**NEGATIVES, "accuracy_exchangeable": 1 / (NEGATIVES + 1)}
    assert results["boundary_match_head"]["chance"] == results["boundary"]["chance"] == chance
    assert results["multiple_choice"]["chance"] == chance


def test_untrained_reference_is_the_same_evaluation_with_the_other_transformer():
    """``untrained_cross_modal`` gives exactly the head metrics of the aligner carrying that
    Transformer, with the trained embeddings, and leaves the trained ones untouched."""
    gen = torch.Generator().manual_seed(4)
    tensors = hand_made()
    tensors["x"] = torch.randn(N, DIM, generator=gen)
    features = feature_set(tensors)
    aligner, other = MatchingZeroShot(), MatchingZeroShot()
    other.matcher = ShuffledMatcher()
    alone = evaluate(aligner, features, rerank_k=4)
    with_reference = evaluate(aligner, features, rerank_k=4, untrained_cross_modal=other.matcher)
    reference = with_reference.pop("untrained")
    assert with_reference == alone
    expected = evaluate(other, features, rerank_k=4)
    assert set(reference) == {"retrieval_reranked", "retrieval_reranked_combined", "boundary_match_head", "ael",
                              "attention"}
    expected["ael"].pop("frozen_reference")
    for key in reference:
        assert reference[key] == expected[key], key
    assert reference["boundary_match_head"] != alone["boundary_match_head"]


class ShuffledMatcher(TokenwiseMatcher):
    """The known-answer matcher reading its text tokens in reverse order: another head."""

    def forward(self, text_tokens, context_tokens, text_mask, context_mask, context_index=None):
        return super().forward(text_tokens.flip(1), context_tokens, text_mask.flip(1), context_mask, context_index)


def test_ael_is_zero_when_the_wrong_token_is_marked_elsewhere():
    tensors = hand_made()
    tensors["negative_wrong_tokens"] = tensors["negative_wrong_tokens"].roll(1, dims=-1)
    tensors["negative_wrong_tokens"][0, 0] = False  # a negative with no wrong token is not scored
    ael = evaluate(MatchingZeroShot(), feature_set(tensors), rerank_k=4)["ael"]
    # A mark rolled past the caption's end lands on token 0, before the replaced token, where no
    # attention can differ: that negative is not scored either.
    replaced = (torch.arange(N)[:, None] + torch.arange(NEGATIVES)[None]) % TOKENS
    scored = replaced < TOKENS - 1
    scored[0, 0] = False
    assert ael["ael"] == 0.0 and ael["n"] == int(scored.sum())
    assert ael["chance"] == pytest.approx((1 / eligible_counts())[scored].mean().item())


def eligible_counts() -> torch.Tensor:
    """(N, NEGATIVES) number of positions from the replaced token to the end of the caption."""
    replaced = (torch.arange(N)[:, None] + torch.arange(NEGATIVES)[None]) % TOKENS
    return (TOKENS - replaced).float()


def eligible_chance() -> float:
    return (1 / eligible_counts()).mean().item()


def test_reranking_with_the_whole_gallery_is_the_match_head_ranking():
    """With k = N every item is re-scored: the result is retrieval by the full match matrix,
    which is not symmetric, so swapping query and gallery in either direction would show."""
    gen = torch.Generator().manual_seed(2)
    tensors = hand_made()
    tensors["x"] = torch.randn(N, DIM, generator=gen)  # embedding retrieval near chance
    tensors["text_tokens"] = torch.randn(N, TOKENS, TOKEN_DIM, generator=gen)
    aligner = MatchingZeroShot()
    results = evaluate(aligner, feature_set(tensors), rerank_k=N, batch_size=3)
    rows, cols = torch.arange(N).repeat_interleave(N), torch.arange(N).repeat(N)
    full = aligner.match_logits(tensors["x_tokens"][rows], tensors["x_token_mask"][rows],
                                tensors["text_tokens"][cols], tensors["text_token_mask"][cols]).reshape(N, N)
    expected = bidirectional_retrieval(None, None, torch.arange(N), torch.arange(N), similarity=full)
    assert results["retrieval_reranked"]["image_to_text"] == expected["image_to_text"]
    assert results["retrieval_reranked"]["text_to_image"] == expected["text_to_image"]
    # the combined score: the head's log-probability plus the contrastive logit (scale * cosine)
    similarity = F.normalize(tensors["x"], dim=-1) @ F.normalize(tensors["text"], dim=-1).T
    combined = F.logsigmoid(full) + aligner.contrastive_scale() * similarity
    expected = bidirectional_retrieval(None, None, torch.arange(N), torch.arange(N), similarity=combined)
    reranked = results["retrieval_reranked_combined"]
    assert reranked["image_to_text"] == expected["image_to_text"] and reranked["k"] == N
    assert reranked["text_to_image"] == expected["text_to_image"] and "log_sigmoid" in reranked["score"]


def test_gram_ranks_a_caption_in_the_span_of_its_modalities_first():
    """An untrained GRAM head is the identity: a caption in the plane of its video and audio spans
    zero volume with them, any other caption a positive one, and an orthogonal negative loses."""
    gen = torch.Generator().manual_seed(3)
    video, audio = torch.randn(N, DIM, generator=gen), torch.randn(N, DIM, generator=gen)
    tensors = hand_made(text=video + audio, x=torch.cat([video, audio], dim=1))
    tensors["negative_text"] = torch.randn(N, NEGATIVES, DIM, generator=gen)
    tensors.update(modality_video=video, modality_audio=audio)
    features = feature_set(tensors)
    results = evaluate(build_aligner({"aligner": "gram"}, features.dims), features)
    assert results["retrieval"]["image_to_text"]["R@1"] == 1.0
    assert results["retrieval"]["text_to_image"]["R@1"] == 1.0
    assert results["boundary"]["accuracy"] == 1.0


def test_without_negatives_only_retrieval_is_reported():
    tensors = {k: v for k, v in hand_made().items() if not k.startswith("negative")}
    assert set(evaluate(ZeroShotAligner(), FeatureSet(tensors))) == {"n", "distinct_captions", "retrieval"}


def test_missing_negative_type_names_are_named():
    with pytest.raises(ValueError, match="negative_types"):
        evaluate(ZeroShotAligner(), FeatureSet(hand_made()))


METHODS = {
    "zero_shot": {"aligner": "zero_shot"}, "clip": {"aligner": "clip"}, "blip": {"aligner": "blip"},
    "gram": {"aligner": "gram"}, "m3jepa": {"aligner": "m3jepa", "options": {"num_experts": 4, "top_k": 2}},
    "clip_bns": {"aligner": "clip", "bns": True}, "clip_cla": {"aligner": "clip", "cla": True},
    "clip_bacl": {"aligner": "clip", "bns": True, "cla": True},
}
MATCH_HEAD = {"blip", "clip_cla", "clip_bacl"}


def flat(results: dict, prefix: str = "") -> dict:
    """Nested metric dict -> {"a.b.c": number}, for pytest.approx."""
    out = {}
    for key, value in results.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sections_present_exactly_for_methods_with_a_match_head(method):
    test_set = latent_features(24, seed=1)
    settings = method_settings(validate_config({"transformer": {"width": 16, "depth": 2, "heads": 2},
                                                "methods": METHODS}), method)
    torch.manual_seed(0)
    aligner = build_aligner(settings["spec"], test_set.dims, bacl=settings["bacl"], transformer=settings["transformer"])
    results = evaluate(aligner, test_set, rerank_k=4)
    match_sections = {"retrieval_reranked", "retrieval_reranked_combined", "boundary_match_head", "ael", "attention"}
    assert set(results) == {"n", "distinct_captions", "retrieval", "boundary", "multiple_choice"} | (
        match_sections if method in MATCH_HEAD else set())
    if method in MATCH_HEAD:
        assert set(results["ael"]) == {"ael", "n", "chance", "frozen_reference", "eligible_tokens_mean"}
        assert 0.0 <= results["ael"]["ael"] <= 1.0
        # the same results whatever the match-head batch size
        assert flat(evaluate(aligner, test_set, rerank_k=4, batch_size=5)) == pytest.approx(flat(results))
        # and with a copy of the x tokens per pair instead of each x projected once (context_index)
        context_copies(aligner.cross_modal)
        assert flat(evaluate(aligner, test_set, rerank_k=4)) == pytest.approx(flat(results))


@pytest.mark.parametrize("method", ["zero_shot", "clip_bacl"])
def test_fixture_split_with_padded_negatives_evaluates(method):
    test_set = latent_features(24, seed=1, padded_negatives=True)
    settings = method_settings(validate_config({"transformer": {"width": 16, "depth": 2, "heads": 2},
                                                "methods": METHODS}), method)
    aligner = build_aligner(settings["spec"], test_set.dims, bacl=settings["bacl"], transformer=settings["transformer"])
    results = evaluate(aligner, test_set, rerank_k=4)
    assert results["boundary"]["n_pairs"] == int(test_set["negative_mask"].sum())
