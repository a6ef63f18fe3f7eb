"""Candidate index: exact vs faiss agree, exclusions hold, chunking is exact, bad k is refused."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from bacl.data.index import INDEX_KINDS, ExactIndex, FaissIndex, make_index

TIE = 1e-5  # cosines closer than this may be ordered either way by different summation orders


@st.composite
def problems(draw):
    """A random bank (N, E), queries (Q, E), k and (Q, m) exclusions with -1 padding and repeats."""
    n = draw(st.integers(2, 60))
    m = draw(st.integers(0, min(3, n - 1)))
    e, q = draw(st.integers(2, 12)), draw(st.integers(1, 12))
    k = draw(st.integers(1, n - m))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    bank, queries = torch.randn(n, e, generator=g), torch.randn(q, e, generator=g)
    exclude = torch.randint(-1, n, (q, m), generator=g)
    return bank, queries, k, exclude


def assert_same_neighbours(bank, queries, result, reference):
    """Equal sorted scores, returned scores are the true cosines, ids equal except within ties."""
    (scores, ids), (ref_scores, ref_ids) = result, reference
    assert torch.allclose(scores, ref_scores, atol=TIE)
    true = F.normalize(queries, dim=-1) @ F.normalize(bank, dim=-1).T
    assert torch.allclose(true.gather(1, ids), scores, atol=TIE)
    padded = torch.cat([ref_scores, torch.full((len(ref_scores), 1), -9.0)], dim=1)
    gap_below = padded[:, :-1] - padded[:, 1:]
    gap_above = torch.cat([torch.full((len(ref_scores), 1), 9.0), gap_below[:, :-1]], dim=1)
    tied = (gap_below < TIE) | (gap_above < TIE)
    assert ((ids == ref_ids) | tied).all()


def assert_excluded_absent(ids, exclude):
    assert not (ids.unsqueeze(2) == exclude.unsqueeze(1)).any()


def one_matmul_topk(bank, queries, k, exclude):
    scores = F.normalize(queries, dim=-1) @ F.normalize(bank, dim=-1).T
    rows = torch.arange(len(queries)).unsqueeze(1).expand_as(exclude)
    keep = exclude >= 0
    scores[rows[keep], exclude[keep]] = float("-inf")
    return scores.topk(k, dim=1)


@given(problems(), st.integers(1, 7), st.integers(1, 13))
def test_chunking_equals_one_big_matmul(problem, query_chunk, bank_chunk):
    bank, queries, k, exclude = problem
    result = ExactIndex(query_chunk=query_chunk, bank_chunk=bank_chunk).build(bank).search(queries, k, exclude)
    assert_same_neighbours(bank, queries, result, one_matmul_topk(bank, queries, k, exclude))
    assert_excluded_absent(result[1], exclude)


@given(problems())
def test_exact_and_faiss_flat_agree_and_exclude(problem):
    bank, queries, k, exclude = problem
    exact = make_index("exact").build(bank).search(queries, k, exclude)
    flat = make_index("faiss-flat").build(bank).search(queries, k, exclude)
    assert flat[0].dtype == torch.float32 and flat[1].dtype == torch.int64
    assert_same_neighbours(bank, queries, flat, exact)
    assert_excluded_absent(flat[1], exclude)


def test_one_dimensional_exclude_drops_the_positive():
    bank = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    scores, ids = ExactIndex().build(bank).search(bank, 3, exclude=torch.arange(20))
    assert not (ids == torch.arange(20).unsqueeze(1)).any()
    plain_scores, plain_ids = ExactIndex().build(bank).search(bank, 1)
    assert torch.equal(plain_ids[:, 0], torch.arange(20))  # without exclusion each row finds itself
    assert torch.allclose(plain_scores[:, 0], torch.ones(20), atol=1e-5)


@pytest.mark.parametrize("method, options", [("ivf", {"nlist": 8, "nprobe": 8}), ("hnsw", {"hnsw_m": 16})])
def test_approximate_faiss_finds_the_exact_neighbours_on_small_banks(method, options):
    g = torch.Generator().manual_seed(1)
    bank, queries = torch.randn(400, 16, generator=g), torch.randn(30, 16, generator=g)
    exclude = torch.randint(0, 400, (30, 2), generator=g)
    approx = FaissIndex(method=method, **options).build(bank).search(queries, 5, exclude)
    exact = ExactIndex().build(bank).search(queries, 5, exclude)
    assert_excluded_absent(approx[1], exclude)
    assert_same_neighbours(bank, queries, approx, exact)  # nprobe = nlist and a small graph: exhaustive


def test_scores_are_cosines_so_bank_scale_does_not_matter():
    g = torch.Generator().manual_seed(2)
    bank, queries = torch.randn(30, 6, generator=g), torch.randn(4, 6, generator=g)
    index = ExactIndex().build(bank)
    assert torch.equal(index.search(queries, 4)[1], ExactIndex().build(bank * 7.5).search(queries * 0.1, 4)[1])


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_k_larger_than_the_bank_is_refused(kind):
    index = make_index(kind, **({"nlist": 2} if kind == "faiss-ivf" else {})).build(torch.randn(8, 4))
    with pytest.raises(ValueError, match="k=9 is larger than the bank"):
        index.search(torch.randn(2, 4), 9)
    with pytest.raises(ValueError, match="minus the m=2 excluded"):
        index.search(torch.randn(2, 4), 7, exclude=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be"):
        index.search(torch.randn(2, 4), 0)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="empty"):
        ExactIndex().search(torch.randn(2, 4), 1)
    index = ExactIndex().build(torch.randn(8, 4))
    with pytest.raises(ValueError, match="E=3"):
        index.search(torch.randn(2, 3), 1)
    with pytest.raises(ValueError, match="exclude must have shape"):
        index.search(torch.randn(2, 4), 1, exclude=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="bank"):
        ExactIndex().build(torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="kind"):
        make_index("annoy")
    with pytest.raises(ValueError, match="nlist=16 is larger"):
        FaissIndex(method="ivf", nlist=16).build(torch.randn(8, 4))
    with pytest.raises(ValueError, match="bank_chunk"):
        ExactIndex(bank_chunk=0)
