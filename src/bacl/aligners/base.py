"""What every aligner shares: the batch of cached features, projection heads, the CLIP aligner.

All methods are trainable heads on the same frozen encoders and the same cached features. A
batch holds, for B pairs, the global embedding and token features of the non-text side ``x``
(image, video, audio, or audio+video) and of the text side, plus optional retrieved candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import CrossModalTransformer
from ..candidates import CandidatePool
from ..losses import BACLLoss
from ..validation import check_floating

__all__ = ["FeatureBatch", "FeatureDims", "ProjectionHead", "Aligner", "CLIPAligner", "ZeroShotAligner",
           "cross_modal_transformer"]

# CLIP's initial temperature 0.07 and its cap of 100 on the logit scale.
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100.0)


@dataclass
class FeatureBatch:
    """Frozen-encoder features of B pairs; shapes in the field comments.

    ``modalities`` holds the non-text modalities separately (e.g. ``{"video": (B, Ev), "audio":
    (B, Ea)}``) for aligners that treat them apart (GRAM); ``x`` is their concatenation or the one
    non-text modality. Candidate fields are the BNS pools retrieved from the coarse-aligned index.
    """

    x: torch.Tensor  # (B, Ex)
    text: torch.Tensor  # (B, Et)
    x_tokens: torch.Tensor | None = None  # (B, Lx, Dx), any float dtype (cast where used)
    x_token_mask: torch.Tensor | None = None  # (B, Lx) bool
    text_tokens: torch.Tensor | None = None  # (B, Lt, Dt), any float dtype (cast where used)
    text_token_mask: torch.Tensor | None = None  # (B, Lt) bool
    text_token_ids: torch.Tensor | None = None  # (B, Lt) integer ids of the caption tokens
    modalities: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, E_name)
    candidate_text: CandidatePool | None = None  # (B, P) rows of the texts (Et) and text tokens
    candidate_x: CandidatePool | None = None  # (B, P) rows of the x features (Ex)

    def to(self, device) -> "FeatureBatch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, (torch.Tensor, CandidatePool)) else v for k, v in moved.items()}
        moved["modalities"] = {k: v.to(device) for k, v in self.modalities.items()}
        return FeatureBatch(**moved)


@dataclass(frozen=True)
class FeatureDims:
    """Widths of the cached features an aligner is built for."""

    x: int  # Ex, global non-text embedding
    text: int  # Et, global text embedding
    x_token: int  # Dx
    text_token: int  # Dt
    modalities: tuple[tuple[str, int], ...] = ()  # (name, E_name) for GRAM
    x_token_count: int = 0  # Lx, context tokens per sample (the cross-modal Transformer's positions)


def cross_modal_transformer(dims: FeatureDims, transformer: dict | None = None) -> CrossModalTransformer:
    """The cross-modal Transformer on features of widths ``dims``; ``transformer`` holds its settings,
    ``context_positions: true`` (the default) giving it a learned position per context slot."""
    settings = dict(transformer or {})
    positions = dims.x_token_count if settings.pop("context_positions", True) else 0
    return CrossModalTransformer(text_dim=dims.text_token, context_dim=dims.x_token, context_positions=positions,
                                 **settings)


class ProjectionHead(nn.Module):
    """Trainable head on a frozen embedding: ``x + MLP(x)`` when widths match, else a linear map.

    The residual MLP's last layer starts at zero, so every method starts exactly from the frozen
    encoder's own (coarse) alignment and the comparison between methods is about what they learn.
    Works on any leading dimensions: (..., in_dim) -> (..., out_dim), L2-normalised.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_ratio: float = 2.0):
        super().__init__()
        self.residual = in_dim == out_dim
        hidden = int(hidden_ratio * in_dim)  # 2x: enough capacity for a re-mapping, small next to the encoders
        if self.residual:
            self.mlp = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        else:
            self.mlp = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = features + self.mlp(features) if self.residual else self.mlp(features)
        return F.normalize(out, dim=-1)


class Aligner(nn.Module):
    """Interface of all methods.

    ``encode_x`` / ``encode_text`` map cached global features to the space where ``similarity``
    compares them; ``loss`` returns a dict of weighted terms (their sum is optimised);
    ``match_logits`` (only when ``has_match_head``) scores (x, text) pairs through a cross-modal
    Transformer, for re-ranking; ``local_attention`` returns its cross-attention maps, for AEL.
    """

    has_match_head = False

    def encode_x(self, x: torch.Tensor, modalities: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def similarity(self, x_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """(Nx, Nt) scores; cosine of normalised embeddings unless a method says otherwise."""
        return x_embedding @ text_embedding.T

    def contrastive_scale(self) -> float | torch.Tensor:
        """The factor that turns ``similarity`` into contrastive logits (the inverse temperature);
        aligners that learn none use CLIP's initial 1 / 0.07. Re-ranking combines the match
        head's log-probability with ``contrastive_scale() * similarity``."""
        return math.exp(INITIAL_LOGIT_SCALE)

    def pair_scores(self, x_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """(N, M) scores of sample n against its own M texts, text_embedding (N, M, D)."""
        return torch.einsum("nd,nmd->nm", x_embedding, text_embedding)

    def loss(self, batch: FeatureBatch, progress: float, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: FeatureBatch, progress: float, generator: torch.Generator | None = None):
        """The loss terms; ``forward`` so that DistributedDataParallel sees the computation."""
        return self.loss(batch, progress, generator)

    @property
    def cross_modal(self):
        return None

    def match_logits(self, x_tokens, x_token_mask, text_tokens, text_token_mask, context_index=None) -> torch.Tensor:
        """(n,) match logits of n (x, text) pairs; tokens of any float dtype, cast to the Transformer's.
        ``context_index``: optional (n,) row of x_tokens (C, Lx, Dx) paired with each text, as
        :class:`~bacl.attention.CrossModalTransformer` takes it (each x projected once)."""
        if self.cross_modal is None:
            raise ValueError(f"{type(self).__name__} has no match head")
        check_floating("x_tokens", x_tokens)
        check_floating("text_tokens", text_tokens)
        # A parameter-free matcher (tests use one) keeps the tokens' own common dtype.
        weight = next(self.cross_modal.parameters(), None)
        dtype = torch.promote_types(x_tokens.dtype, text_tokens.dtype) if weight is None else weight.dtype
        return self.cross_modal(text_tokens.to(dtype), x_tokens.to(dtype), text_token_mask, x_token_mask,
                                context_index=context_index).match_logit

    def local_attention(self, x_tokens, x_token_mask, text_tokens, text_token_mask) -> torch.Tensor:
        """(n, Lt, Lx) last-layer cross-attention of the text tokens over the x tokens."""
        if self.cross_modal is None:
            raise ValueError(f"{type(self).__name__} has no cross-modal Transformer")
        return self.cross_modal(text_tokens, x_tokens, text_token_mask, x_token_mask).attention


class ZeroShotAligner(Aligner):
    """The frozen encoder with no head: the floor every method starts from. Nothing to train.

    On the audio-video benchmark only the video stream shares a space with the texts (both come
    from the image model's towers; the audio tower has its own text space), so it scores video.
    """

    def encode_x(self, x, modalities=None):
        return F.normalize(modalities["video"] if modalities and "video" in modalities else x, dim=-1)

    def encode_text(self, text):
        return F.normalize(text, dim=-1)

    def loss(self, batch, progress, generator=None):
        raise ValueError("the zero-shot aligner has nothing to train; evaluate it directly")


class CLIPAligner(Aligner):
    """Projection heads + symmetric InfoNCE with uniform in-batch negatives (CLIP).

    ``contrastive`` is the loss on the (x, text) embeddings: ``ClipLoss`` (BACLLoss with BNS and
    CLA off, which equals it exactly) unless :class:`~bacl.aligners.bacl.BACLAligner` swaps in
    the full BACL loss.
    """

    def __init__(self, dims: FeatureDims, embed_dim: int | None = None, contrastive: BACLLoss | None = None):
        super().__init__()
        embed_dim = embed_dim or dims.text  # keep the frozen space's width: heads start at identity
        self.embed_dim = embed_dim
        self.x_head = ProjectionHead(dims.x, embed_dim)
        self.text_head = ProjectionHead(dims.text, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))
        self.contrastive = contrastive or BACLLoss(use_bns=False, use_cla=False)
        self.contrastive_weight = 1.0

    @property
    def cross_modal(self):
        return self.contrastive.cross_modal

    @property
    def has_match_head(self):
        return self.cross_modal is not None

    def encode_x(self, x, modalities=None):
        return self.x_head(x)

    def encode_text(self, text):
        return self.text_head(text)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0, MAX_LOGIT_SCALE).exp()

    def contrastive_scale(self) -> torch.Tensor:
        return self.scale()

    def contrastive_terms(self, x_embedding, text_embedding, batch: FeatureBatch, progress: float,
                          generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The contrastive loss (BACL's terms too when it is a BACLLoss with BNS/CLA on)."""
        candidates = {}
        # The pools are embedded by the current heads inside the loss, and only as far as it needs:
        # all candidates without gradient, the drawn ones again with gradient (CandidatePool).
        if batch.candidate_text is not None:
            candidates["candidate_text"] = batch.candidate_text.encoded_by(self.encode_text)
        if batch.candidate_x is not None:
            candidates["candidate_image"] = batch.candidate_x.encoded_by(self.encode_x)
        terms = self.contrastive(
            x_embedding, text_embedding, self.scale(), progress=progress,
            image_tokens=batch.x_tokens, image_token_mask=batch.x_token_mask,
            text_tokens=batch.text_tokens, text_token_mask=batch.text_token_mask,
            text_token_ids=batch.text_token_ids,
            generator=generator, output_dict=True, **candidates,
        )
        terms["contrastive_loss"] = self.contrastive_weight * terms["contrastive_loss"]
        return terms

    def loss(self, batch, progress, generator=None):
        return self.contrastive_terms(self.encode_x(batch.x), self.encode_text(batch.text), batch, progress, generator)
