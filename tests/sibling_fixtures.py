"""Tiny sibling data in token space: groups of one-edit variants of a scene, for the match-head tests.

A scene has two objects, each a (colour, shape); its x tokens are one token per object (colour
and shape embeddings plus noise) and two noise tokens. Its caption is five word tokens, "colour
shape and colour shape", each a word embedding plus a position embedding, with token ids. A group
holds a base scene and its siblings, each one edit away (a colour or a shape of one object
replaced by one absent from the scene), as its own sample with its own scene: a sibling's caption
is a one-edit boundary negative for the base scene and vice versa. The retrieved pool of a sample
is the rest of its group, so BNS can draw the siblings. The global embeddings are the mean
tokens, nearly identical within a group: the embedding alone cannot tell siblings apart, the
cross-modal Transformer can (a word must match an object token of the scene).
"""

from __future__ import annotations

import torch

from bacl.aligners import FeatureBatch, FeatureDims
from bacl.candidates import CandidatePool

__all__ = ["COLOURS", "SHAPES", "TOKEN_DIM", "sibling_batch", "sibling_data", "sibling_dims"]

COLOURS, SHAPES, TOKEN_DIM, GROUP = 6, 4, 16, 4  # vocabulary, token width, samples per group
AND = COLOURS + SHAPES + 1  # token id of "and" (ids start at 1; 0 is padding)


def _embeddings():
    gen = torch.Generator().manual_seed(1234)  # the fixed "frozen encoders"
    return {name: torch.randn(size, TOKEN_DIM, generator=gen) for name, size in
            (("colour", COLOURS), ("shape", SHAPES), ("colour_word", COLOURS), ("shape_word", SHAPES),
             ("and_word", 1), ("position", 5))}


def _edit(colours, shapes, gen):
    """One sibling of each scene: a colour or a shape of one object replaced by an absent one."""
    colours, shapes = colours.clone(), shapes.clone()
    for row in range(len(colours)):
        obj = int(torch.randint(2, (1,), generator=gen))
        if torch.rand(1, generator=gen) < 0.5:
            absent = [c for c in range(COLOURS) if c not in colours[row].tolist()]
            colours[row, obj] = absent[int(torch.randint(len(absent), (1,), generator=gen))]
        else:
            absent = [s for s in range(SHAPES) if s not in shapes[row].tolist()]
            shapes[row, obj] = absent[int(torch.randint(len(absent), (1,), generator=gen))]
    return colours, shapes


def sibling_data(groups: int, seed: int = 0, noise: float = 0.3) -> dict[str, torch.Tensor]:
    """Tensors of ``groups * 4`` samples (rows 4g..4g+3: a base scene and its three siblings)."""
    emb, gen = _embeddings(), torch.Generator().manual_seed(seed)
    colours = torch.stack([torch.randperm(COLOURS, generator=gen)[:2] for _ in range(groups)])
    shapes = torch.randint(SHAPES, (groups, 2), generator=gen)
    variants = [(colours, shapes)] + [_edit(colours, shapes, gen) for _ in range(GROUP - 1)]
    colours = torch.stack([c for c, _ in variants], 1).flatten(0, 1)  # (N, 2), group-major
    shapes = torch.stack([s for _, s in variants], 1).flatten(0, 1)
    n = len(colours)
    objects = emb["colour"][colours] + emb["shape"][shapes]
    x_tokens = torch.cat([objects, torch.zeros(n, 2, TOKEN_DIM)], 1) + noise * torch.randn(n, 4, TOKEN_DIM, generator=gen)
    ids = torch.stack([colours[:, 0] + 1, shapes[:, 0] + COLOURS + 1, torch.full((n,), AND),
                       colours[:, 1] + 1, shapes[:, 1] + COLOURS + 1], 1)
    words = torch.stack([emb["colour_word"][colours[:, 0]], emb["shape_word"][shapes[:, 0]],
                         emb["and_word"][0].expand(n, -1), emb["colour_word"][colours[:, 1]],
                         emb["shape_word"][shapes[:, 1]]], 1)
    text_tokens = words + emb["position"]
    group = torch.arange(n) // GROUP
    siblings = torch.stack([torch.tensor([g * GROUP + k for k in range(GROUP) if k != i]) for g, i in
                            zip(group.tolist(), (torch.arange(n) % GROUP).tolist())])
    return {"x": x_tokens.mean(1), "text": text_tokens.mean(1), "x_tokens": x_tokens, "text_tokens": text_tokens,
            "x_token_mask": torch.ones(n, 4, dtype=torch.bool), "text_token_mask": torch.ones(n, 5, dtype=torch.bool),
            "text_token_ids": ids, "neighbours": siblings, "group": group}


def sibling_batch(data: dict[str, torch.Tensor], rows: torch.Tensor, x_order: torch.Tensor | None = None) -> FeatureBatch:
    """A FeatureBatch of ``rows`` with each row's siblings as its retrieved pool (texts and x).

    ``x_order``: optionally a permutation of all rows giving each caption another sample's x (and
    x tokens): labels shuffled, nothing left to learn about matching.
    """
    x_rows = rows if x_order is None else x_order[rows]
    x_store = data["x"] if x_order is None else data["x"][x_order]
    pool = data["neighbours"][rows]
    return FeatureBatch(
        x=data["x"][x_rows], text=data["text"][rows], x_tokens=data["x_tokens"][x_rows],
        x_token_mask=data["x_token_mask"][x_rows], text_tokens=data["text_tokens"][rows],
        text_token_mask=data["text_token_mask"][rows], text_token_ids=data["text_token_ids"][rows],
        candidate_text=CandidatePool(pool, data["text"], tokens=data["text_tokens"], token_mask=data["text_token_mask"],
                                     token_ids=data["text_token_ids"]),
        candidate_x=CandidatePool(pool, x_store))


def sibling_dims() -> FeatureDims:
    return FeatureDims(x=TOKEN_DIM, text=TOKEN_DIM, x_token=TOKEN_DIM, text_token=TOKEN_DIM)
