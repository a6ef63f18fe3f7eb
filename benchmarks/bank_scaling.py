"""Cost of the BNS candidate search as the bank grows: exact chunked search vs the approximate index.

For each bank size N (10^3 ... 10^6 embeddings of width 128) and each index kind of
``bacl.data.index``, the time to build the index and to answer one query batch (256 anchors,
k = 32 neighbours each, the anchor's own row excluded: exactly how the pipeline builds the pools),
timed side by side, and the recall@k of each index against the exact answer.

Two banks: ``clustered`` (a Gaussian mixture, like frozen embeddings of captions from a small
grammar, where neighbours share a cluster) and ``isotropic`` (Gaussian noise on the sphere, the
hardest case for an approximate index: every point is nearly equidistant). Timing does not depend
on the data; recall does.

    nice -n 19 .venv/bin/python benchmarks/bank_scaling.py            # up to 10^6, ~1.5 min of CPU
    nice -n 19 .venv/bin/python benchmarks/bank_scaling.py --quick    # up to 10^5, ~10 s
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from bacl.data.index import INDEX_KINDS, make_index

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DETAILS, RESULTS, clock, environment, interleaved, positive_int, write_json  # noqa: E402

DIM = 128  # the CPU-scale embedding width
DEFAULT_KINDS = ("exact", "faiss-flat", "faiss-ivf")  # faiss-hnsw builds too slowly at 10^6 for the default run
IVF_POINTS_PER_CELL = 39  # faiss warns below 39 training points per IVF cell


def bank(kind: str, size: int, seed: int = 0) -> torch.Tensor:
    """(size, DIM) unit vectors: ``clustered`` (sqrt(size) centres, noise at 0.5 the centre scale,
    within-cluster cosine about 0.8) or ``isotropic``."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "isotropic":
        return F.normalize(torch.randn(size, DIM, generator=gen), dim=-1)
    if kind != "clustered":
        raise ValueError(f"bank kind must be 'clustered' or 'isotropic', got {kind!r}")
    centres = F.normalize(torch.randn(max(1, math.isqrt(size)), DIM, generator=gen), dim=-1)
    members = centres[torch.randint(0, len(centres), (size,), generator=gen)]
    return F.normalize(members + 0.5 * torch.randn(size, DIM, generator=gen) / DIM**0.5, dim=-1)


def index_options(kind: str, size: int) -> dict:
    """The library's defaults, except IVF's cell count, capped so that each cell has faiss's
    recommended training points (nprobe capped to the cells there are)."""
    if kind != "faiss-ivf":
        return {}
    nlist = max(1, min(1024, size // IVF_POINTS_PER_CELL))
    return {"nlist": nlist, "nprobe": min(32, nlist)}


def recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean share of each query's true top-k ids that ``found`` returned."""
    hits = (found.unsqueeze(2) == truth.unsqueeze(1)).any(2).float().sum(1)
    return float((hits / truth.shape[1]).mean())


def measure(data: str, size: int, kinds: list[str], queries: int, k: int, repeats: int) -> list[dict]:
    vectors = bank(data, size)
    gen = torch.Generator().manual_seed(1)
    rows = torch.randperm(size, generator=gen)[:queries]
    query, exclude = vectors[rows], rows  # anchors are bank rows; their own row is never a candidate
    indexes, build = {}, {}
    for kind in kinds:
        start = clock()
        indexes[kind] = make_index(kind, **index_options(kind, size)).build(vectors)
        build[kind] = clock() - start
    samples = interleaved({kind: (lambda index=index: index.search(query, k, exclude)) for kind, index in
                           indexes.items()}, repeats, warmup=1)
    truth = indexes["exact"].search(query, k, exclude)[1] if "exact" in indexes else None
    out = []
    for kind in kinds:
        row = {"data": data, "bank_size": size, "kind": kind, "options": index_options(kind, size),
               "build_seconds": build[kind], "query_batch_seconds": statistics.median(samples[kind]),
               "query_batch_seconds_samples": samples[kind]}
        if truth is not None:
            row[f"recall_at_{k}"] = recall(indexes[kind].search(query, k, exclude)[1], truth)
        out.append(row)
        print(f"{data:9s} N={size:>8d} {kind:11s} build {build[kind]:7.2f} s  query batch "
              f"{1e3 * row['query_batch_seconds']:8.1f} ms  recall {row.get(f'recall_at_{k}', float('nan')):.3f}",
              flush=True)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="banks up to 10^5, clustered data only")
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--kinds", nargs="+", choices=INDEX_KINDS, default=list(DEFAULT_KINDS),
                        help="index kinds; 'exact' is the reference for recall")
    parser.add_argument("--data", nargs="+", choices=("clustered", "isotropic"), default=["clustered", "isotropic"])
    parser.add_argument("--queries", type=positive_int, default=256, help="anchors per query batch (default 256)")
    parser.add_argument("--k", type=positive_int, default=32, help="neighbours per anchor (default 32, the pool)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch and faiss threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.data = [s for s in args.sizes if s <= 10**5], ["clustered"]
    if min(args.sizes) <= args.k or min(args.sizes) < args.queries:
        raise ValueError(f"every bank size must exceed k={args.k} and hold the {args.queries} query rows")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rows = [row for data in args.data for size in args.sizes
            for row in measure(data, size, args.kinds, args.queries, args.k, args.repeats)]
    result = {"benchmark": "bank_scaling", "quick": args.quick, "environment": environment("cpu"),
              "faiss": faiss.__version__, "dim": DIM, "queries": args.queries, "k": args.k, "measurements": rows}
    write_json(args.out / DETAILS / "bank_scaling.json", result)
    return result


if __name__ == "__main__":
    main()
