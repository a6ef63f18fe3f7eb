"""Retrieval metrics: hand cases with known answers, a brute-force reference, properties,
bidirectional retrieval, re-ranking of the top k, bad input."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.metrics import bidirectional_retrieval, rerank_topk, retrieval, retrieval_metrics


KEYS = ["R@1", "R@5", "R@10", "mAP", "MRR", "nDCG", "nDCG@10"]


def reference_metrics(similarity, query_ids, gallery_ids, ks=(1, 5, 10), cutoff=10):
    """Per-query Python loop: sort by (score desc, relevant after irrelevant) and count."""
    sums = {key: 0.0 for key in [f"R@{k}" for k in ks] + ["mAP", "MRR", "nDCG", f"nDCG@{cutoff}"]}
    for scores, qid in zip(similarity.tolist(), query_ids.tolist()):
        relevant = [gid == qid for gid in gallery_ids.tolist()]
        ranked = [rel for _, rel in sorted(zip(scores, relevant), key=lambda pair: (-pair[0], pair[1]))]
        ranks = [r + 1 for r, rel in enumerate(ranked) if rel]
        for k in ks:
            sums[f"R@{k}"] += ranks[0] <= k
        sums["MRR"] += 1 / ranks[0]
        sums["mAP"] += sum((i + 1) / rank for i, rank in enumerate(ranks)) / len(ranks)
        ideal = [1 / math.log2(i + 2) for i in range(len(ranks))]
        sums["nDCG"] += sum(1 / math.log2(rank + 1) for rank in ranks) / sum(ideal)
        sums[f"nDCG@{cutoff}"] += sum(1 / math.log2(rank + 1) for rank in ranks if rank <= cutoff) / sum(ideal[:cutoff])
    return {key: value / len(query_ids) for key, value in sums.items()}


@st.composite
def retrieval_problems(draw):
    """Small integer-valued similarities (many ties) and ids with every query id in the gallery."""
    n_gallery = draw(st.integers(1, 12))
    n_classes = draw(st.integers(1, n_gallery))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    gallery_ids = torch.randint(0, n_classes, (n_gallery,), generator=gen)
    n_queries = draw(st.integers(1, 10))
    query_ids = gallery_ids[torch.randint(0, n_gallery, (n_queries,), generator=gen)]
    similarity = torch.randint(-2, 3, (n_queries, n_gallery), generator=gen).float()
    return similarity, query_ids, gallery_ids


# ---------------------------------------------------------------- retrieval: hand cases


def test_identity_is_perfect():
    ids = torch.arange(6)
    assert retrieval_metrics(torch.eye(6), ids, ids) == {key: 1.0 for key in KEYS}


def test_reversed_ranking():
    # every query's only relevant item has the lowest score: rank G = 5
    similarity = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5]]).repeat(5, 1) - 0.01 * torch.arange(5.0)[:, None]
    query_ids, gallery_ids = torch.zeros(5, dtype=torch.long), torch.tensor([0, 1, 2, 3, 4])
    result = retrieval_metrics(similarity, query_ids, gallery_ids, ks=(1, 4, 5))
    assert result["R@1"] == 0.0 and result["R@4"] == 0.0 and result["R@5"] == 1.0
    assert result["MRR"] == pytest.approx(1 / 5)
    assert result["mAP"] == pytest.approx(1 / 5)
    assert result["nDCG"] == pytest.approx(1 / math.log2(6))


def test_single_relevant_item_at_rank_three():
    result = retrieval_metrics(torch.tensor([[0.9, 0.8, 0.7, 0.1, 0.0]]), [2], [0, 1, 2, 3, 4])
    assert result["R@1"] == 0.0 and result["R@5"] == 1.0
    assert result["MRR"] == pytest.approx(1 / 3)
    assert result["mAP"] == pytest.approx(1 / 3)
    assert result["nDCG"] == pytest.approx(0.5)  # 1/log2(4)


def test_two_relevant_items_at_ranks_one_and_three():
    result = retrieval_metrics(torch.tensor([[0.9, 0.8, 0.7, 0.1]]), [7], [7, 1, 7, 3])
    assert result["R@1"] == 1.0 and result["MRR"] == 1.0
    assert result["mAP"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["nDCG"] == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))


def test_duplicate_ids_share_relevance():
    ids = torch.tensor([0, 0, 1, 1])
    blocks = (ids[:, None] == ids[None, :]).float()
    assert retrieval_metrics(blocks, ids, ids) == {key: 1.0 for key in KEYS}
    # identity: each query's duplicate ties at 0 with the two irrelevant items -> rank 4
    result = retrieval_metrics(torch.eye(4), ids, ids)
    assert result["R@1"] == 1.0
    assert result["mAP"] == pytest.approx((1 + 2 / 4) / 2)


def test_ties_are_pessimistic():
    gallery_ids = torch.tensor([0, 1, 2, 0, 3])
    result = retrieval_metrics(torch.ones(2, 5), [0, 3], gallery_ids, ks=(1, 3, 4, 5))
    # query 0: 3 irrelevant first, its two relevant items at ranks 4, 5; query 3: rank 5
    assert result["R@1"] == 0.0 and result["R@3"] == 0.0
    assert result["R@4"] == 0.5 and result["R@5"] == 1.0
    assert result["MRR"] == pytest.approx((1 / 4 + 1 / 5) / 2)
    assert result["mAP"] == pytest.approx(((1 / 4 + 2 / 5) / 2 + 1 / 5) / 2)


def test_custom_ndcg_cutoff_and_large_k():
    result = retrieval_metrics(torch.tensor([[0.9, 0.8, 0.7]]), [2], [0, 1, 2], ks=(50,), ndcg_cutoff=2)
    assert result["R@50"] == 1.0  # k beyond the gallery: every query hits
    assert result["nDCG@2"] == 0.0 and result["nDCG"] == pytest.approx(0.5)


# ---------------------------------------------------------------- retrieval: properties


@given(retrieval_problems(), st.integers(1, 12))
def test_matches_brute_force_reference_for_any_chunk_size(problem, chunk_size):
    similarity, query_ids, gallery_ids = problem
    result = retrieval_metrics(similarity, query_ids, gallery_ids, chunk_size=chunk_size)
    expected = reference_metrics(similarity, query_ids, gallery_ids)
    assert result.keys() == expected.keys()
    for key in KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-12), key


def sorted_relevance(scores, relevant):
    """The ranking retrieval_metrics used before counting: two stable sorts, irrelevant items first
    among ties (issue #14: the counted ranking must give the same tensor)."""
    by_relevance = torch.sort(relevant.to(torch.int8), dim=1, stable=True).indices
    by_score = torch.sort(scores.gather(1, by_relevance), dim=1, descending=True, stable=True).indices
    return relevant.gather(1, by_relevance).gather(1, by_score).to(torch.float64)


def with_signed_zeros(similarity):
    """The zeros of every other column made -0.0, which ties with 0.0 in a sort as in a count."""
    return torch.where((similarity == 0) & (torch.arange(similarity.shape[1]) % 2 == 0), -0.0, similarity)


@given(retrieval_problems(), st.booleans())
def test_counted_ranking_is_the_sorted_ranking_bit_for_bit(problem, signed_zeros):
    similarity, query_ids, gallery_ids = problem
    similarity = with_signed_zeros(similarity) if signed_zeros else similarity
    relevant = query_ids[:, None] == gallery_ids[None, :]
    assert torch.equal(retrieval._ranked_relevance(similarity, relevant), sorted_relevance(similarity, relevant))


@given(retrieval_problems(), st.integers(1, 12))
def test_rows_with_many_relevant_items_are_sorted_and_match_the_reference(problem, chunk_size):
    """Above _COUNTED_RELEVANT_MAX relevant items a row is sorted instead (here forced for every row)."""
    similarity, query_ids, gallery_ids = problem
    original = retrieval._COUNTED_RELEVANT_MAX
    retrieval._COUNTED_RELEVANT_MAX = 0
    try:
        result = retrieval_metrics(similarity, query_ids, gallery_ids, chunk_size=chunk_size)
    finally:
        retrieval._COUNTED_RELEVANT_MAX = original
    expected = reference_metrics(similarity, query_ids, gallery_ids)
    for key in KEYS:
        assert result[key] == pytest.approx(expected[key], abs=1e-12), key


@given(retrieval_problems(), st.booleans(), st.data())
def test_stable_topk_is_the_head_of_a_stable_descending_sort(problem, signed_zeros, data):
    similarity = with_signed_zeros(problem[0]) if signed_zeros else problem[0]
    k = data.draw(st.integers(1, similarity.shape[1]))
    expected = torch.sort(similarity, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(retrieval._stable_topk(similarity, k), expected)


@given(retrieval_problems())
def test_bounds_and_monotone_recall(problem):
    result = retrieval_metrics(*problem, ks=(1, 2, 3, 5, 10))
    assert all(0.0 <= value <= 1.0 for value in result.values())
    recalls = [result[f"R@{k}"] for k in (1, 2, 3, 5, 10)]
    assert recalls == sorted(recalls)
    # MRR: 1 for each rank-1 query, at most 1/2 for every other
    assert result["R@1"] - 1e-12 <= result["MRR"] <= result["R@1"] + (1 - result["R@1"]) / 2 + 1e-12


@given(retrieval_problems(), st.integers(0, 2**31 - 1))
def test_permuting_gallery_and_queries_changes_nothing(problem, seed):
    similarity, query_ids, gallery_ids = problem
    gen = torch.Generator().manual_seed(seed)
    g_perm = torch.randperm(len(gallery_ids), generator=gen)
    q_perm = torch.randperm(len(query_ids), generator=gen)
    before = retrieval_metrics(similarity, query_ids, gallery_ids)
    after = retrieval_metrics(similarity[q_perm][:, g_perm], query_ids[q_perm], gallery_ids[g_perm])
    assert after == pytest.approx(before, abs=1e-12)


@given(retrieval_problems())
def test_perfect_scorer_gets_one(problem):
    _, query_ids, gallery_ids = problem
    oracle = (query_ids[:, None] == gallery_ids[None, :]).float()
    assert retrieval_metrics(oracle, query_ids, gallery_ids) == {key: 1.0 for key in KEYS}


# ---------------------------------------------------------------- bidirectional


def test_bidirectional_with_embeddings_and_duplicate_captions():
    # 3 images of captions 0, 1, 2; 5 texts, captions 0 and 1 written twice
    image_emb = torch.eye(3, 4)
    text_ids = torch.tensor([0, 1, 2, 0, 1])
    text_emb = 3.0 * image_emb[text_ids]  # cosine ignores the scale
    result = bidirectional_retrieval(image_emb, text_emb, torch.arange(3), text_ids)
    assert result["text_to_image"] == {key: 1.0 for key in KEYS}
    assert result["image_to_text"] == {key: 1.0 for key in KEYS}


def test_bidirectional_similarity_matches_embeddings():
    gen = torch.Generator().manual_seed(0)
    image_emb, text_emb = torch.randn(7, 5, generator=gen), torch.randn(9, 5, generator=gen)
    image_ids, text_ids = torch.tensor([0, 1, 2, 3, 4, 5, 6]), torch.tensor([0, 1, 2, 3, 4, 5, 6, 0, 3])
    from_emb = bidirectional_retrieval(image_emb, text_emb, image_ids, text_ids)
    cosine = torch.nn.functional.cosine_similarity(image_emb[:, None], text_emb[None], dim=-1)
    from_sim = bidirectional_retrieval(None, None, image_ids, text_ids, similarity=cosine)
    for direction in ("text_to_image", "image_to_text"):
        assert from_sim[direction] == pytest.approx(from_emb[direction])
    assert from_sim["text_to_image"] == retrieval_metrics(cosine.T, text_ids, image_ids)


# ---------------------------------------------------------------- re-ranking


def test_rerank_reverses_top_k_and_keeps_the_rest_below():
    similarity = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.3, 0.2], [0.0, 0.4, 0.8, 0.6, 0.2, 0.9]])
    calls = []

    def reverse(query_idx, gallery_idx):
        calls.append(len(query_idx))
        return -similarity[query_idx, gallery_idx]

    out = rerank_topk(similarity, reverse, k=3, batch_size=4)
    assert calls == [4, 2]  # 2 queries x 3 pairs in batches of at most 4
    order = out.argsort(dim=1, descending=True)
    assert order.tolist() == [[2, 3, 0, 4, 5, 1], [3, 2, 5, 1, 4, 0]]
    # the query whose relevant item sat at rank 3 now finds it first
    assert retrieval_metrics(out[:1], [2], [0, 1, 2, 3, 4, 5])["R@1"] == 1.0
    assert retrieval_metrics(similarity[:1], [2], [0, 1, 2, 3, 4, 5])["MRR"] == pytest.approx(1 / 3)


@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.integers(1, 5))
def test_rerank_places_reranked_items_above_the_rest(seed, k, batch_size):
    gen = torch.Generator().manual_seed(seed)
    similarity = torch.randn(4, 8, generator=gen, dtype=torch.float64)  # no rounding ties after the shift
    rerank_scores = torch.randn(4, 8, generator=gen) * 5
    out = rerank_topk(similarity, lambda q, g: rerank_scores[q, g], k=k, batch_size=batch_size)
    top = similarity.argsort(dim=1, descending=True)[:, :k]
    in_top = torch.zeros_like(similarity, dtype=torch.bool).scatter(1, top, True)
    assert torch.equal(out[in_top], rerank_scores[in_top])
    for row in range(4):
        rest_before, rest_after = similarity[row][~in_top[row]], out[row][~in_top[row]]
        if rest_after.numel():
            assert rest_after.max() < out[row][in_top[row]].min()
            assert torch.equal(rest_before.argsort(), rest_after.argsort())


def test_rerank_bad_output_and_k():
    similarity = torch.randn(2, 4)
    with pytest.raises(ValueError, match="rerank_fn"):
        rerank_topk(similarity, lambda q, g: torch.zeros(len(q) + 1), k=2)
    with pytest.raises(ValueError, match="rerank_fn"):
        rerank_topk(similarity, lambda q, g: torch.full((len(q),), float("nan")), k=2)
    with pytest.raises(ValueError, match="k=5"):
        rerank_topk(similarity, lambda q, g: torch.zeros(len(q)), k=5)


# ---------------------------------------------------------------- bad retrieval input


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(similarity=torch.tensor([[float("nan"), 0.0]])), "similarity"),
        (dict(similarity=torch.zeros(0, 2), query_ids=torch.zeros(0, dtype=torch.long)), "similarity"),
        (dict(similarity=torch.zeros(2)), "similarity"),
        (dict(query_ids=[0, 1]), "query_ids"),
        (dict(query_ids=[5]), "query_ids"),  # no relevant gallery item
        (dict(query_ids=[0.0]), "query_ids"),
        (dict(gallery_ids=[0, 1, 2]), "gallery_ids"),
        (dict(ks=(1, 0)), "ks"),
        (dict(ks=()), "ks"),
        (dict(ndcg_cutoff=0), "ndcg_cutoff"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_retrieval_rejects_bad_input(kwargs, name):
    arguments = dict(similarity=torch.tensor([[0.3, 0.1]]), query_ids=[1], gallery_ids=[0, 1]) | kwargs
    with pytest.raises(ValueError, match=name):
        retrieval_metrics(**arguments)


def test_bidirectional_rejects_bad_input():
    with pytest.raises(ValueError, match="image_emb and text_emb"):
        bidirectional_retrieval(None, torch.ones(2, 3), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="text_emb"):
        bidirectional_retrieval(torch.ones(2, 3), torch.ones(2, 4), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="not both"):
        bidirectional_retrieval(torch.ones(2, 3), None, [0, 1], [0, 1], similarity=torch.eye(2))
