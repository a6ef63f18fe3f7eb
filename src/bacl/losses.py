"""BACLLoss: the BACL objective, called like ``open_clip.loss.ClipLoss``.

    L_main = L_contrast + lambda_local * L_local  (+ lambda_match * L_match + L_policy)

* ``L_contrast`` is CLIP's symmetric InfoNCE. With BNS on, the K negatives drawn per anchor by
  :class:`~bacl.sampler.BoundarySampler` enter each anchor's softmax denominator as extra terms
  ``log(negative_weight * w_k) + logit_k``, in both directions (image->text, text->image).
* ``L_local`` is CLA (:func:`~bacl.attention.contrastive_local_attention_loss`) on the
  cross-modal Transformer's attention for the positive pair and for the hardest BNS negative.
* ``L_match`` trains the same Transformer's match head (positive vs that negative, binary
  cross-entropy); without it the Transformer whose attention CLA shapes would have no task.
* ``L_policy`` is the sampler's own objective; only the policy receives its gradient.

With ``use_bns=False, use_cla=False`` the loss is exactly ``ClipLoss``. In ``output_dict`` mode
each term is returned under its own key, so ``sum(losses.values())`` in an open_clip training
loop optimises all of them; the module's parameters (policy, Transformer) must be given to the
optimiser too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossModalTransformer, contrastive_local_attention_loss
from .candidates import CandidatePool, ScoredPool, candidate_pool
from .distributed import gather_features
from .sampler import BoundarySampler
from .validation import check_floating, check_matrix, check_positive_number, checked_token_mask

__all__ = ["BACLLoss", "contrastive_logits_loss"]


def contrastive_logits_loss(logits: torch.Tensor, labels: torch.Tensor, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of (B, N) logits with targets ``labels`` (B,), optionally widened by (B, K)
    extra negative logits that join each row's denominator (``-inf`` entries drop out)."""
    if extra_logits is not None:
        logits = torch.cat([logits, extra_logits], dim=1)
    return F.cross_entropy(logits, labels)


class BACLLoss(nn.Module):
    """BACL loss with the call shape of ``open_clip.loss.ClipLoss``.

    Args:
        use_bns: draw boundary-aware negatives with ``sampler`` (needs ``progress``).
        use_cla: add the contrastive local attention and match terms (needs token features).
        sampler: the BNS sampler; a default ``BoundarySampler()`` when ``use_bns`` and None.
        cross_modal: the cross-modal Transformer; required when ``use_cla``.
        lambda_local: weight of L_local; 0.3 as in the paper.
        lambda_match: weight of L_match; 1.0, the weight ALBEF/BLIP give their matching loss.
        beta: CLA amplification of divergent attention, ``A_b = A- * (1 + beta * dA)``.
        omega_size: |Omega|, the number of most divergent (text token, context token) pairs.
        negative_weight: multiplies each drawn negative's term in the denominator; 1 counts a
            drawn negative once more on top of its in-batch term (an up-weighting, as in HCL).
        cla_anchors: compute the CLA and match terms on at most this many anchors per step (the
            first of the batch, which training shuffles); None, all. Bounds the Transformer's cost.
        local_loss, gather_with_grad, cache_labels, rank, world_size: as in ``ClipLoss``.
    """

    def __init__(
        self,
        use_bns: bool = True,
        use_cla: bool = True,
        sampler: BoundarySampler | None = None,
        cross_modal: CrossModalTransformer | None = None,
        lambda_local: float = 0.3,
        lambda_match: float = 1.0,
        beta: float = 1.0,
        omega_size: int = 8,
        negative_weight: float = 1.0,
        cla_anchors: int | None = None,
        local_loss: bool = False,
        gather_with_grad: bool = False,
        cache_labels: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        if use_cla and cross_modal is None:
            raise ValueError("cross_modal must be a CrossModalTransformer when use_cla=True")
        if use_bns and world_size > 1 and not local_loss:
            raise ValueError("use_bns with world_size > 1 needs local_loss=True: BNS draws negatives for local anchors")
        self.use_bns, self.use_cla = use_bns, use_cla
        self.sampler = (sampler or BoundarySampler()) if use_bns else None
        self.cross_modal = cross_modal if use_cla else None
        self.lambda_local = check_positive_number("lambda_local", lambda_local, allow_zero=True)
        self.lambda_match = check_positive_number("lambda_match", lambda_match, allow_zero=True)
        self.beta = check_positive_number("beta", beta, allow_zero=True)
        if isinstance(omega_size, bool) or not isinstance(omega_size, int) or omega_size < 1:
            raise ValueError(f"omega_size must be a positive integer, got {omega_size!r}")
        self.omega_size = omega_size
        if cla_anchors is not None and (isinstance(cla_anchors, bool) or not isinstance(cla_anchors, int) or cla_anchors < 1):
            raise ValueError(f"cla_anchors must be a positive integer or None, got {cla_anchors!r}")
        self.cla_anchors = cla_anchors
        self.log_negative_weight = float(torch.log(torch.tensor(check_positive_number("negative_weight", negative_weight))))
        self.local_loss, self.gather_with_grad, self.cache_labels = local_loss, gather_with_grad, cache_labels
        self.rank, self.world_size = rank, world_size
        self._labels: dict[tuple[torch.device, int], torch.Tensor] = {}
        self.last_draw: dict[str, torch.Tensor | float] = {}  # diagnostics of the latest BNS draw

    def ground_truth(self, device: torch.device, num_rows: int) -> torch.Tensor:
        """Row i's positive column: i, offset by this rank's block under ``local_loss``."""
        key = (device, num_rows)
        if key in self._labels:
            return self._labels[key]
        labels = torch.arange(num_rows, device=device, dtype=torch.long)
        if self.world_size > 1 and self.local_loss:
            labels = labels + num_rows * self.rank
        if self.cache_labels:
            self._labels[key] = labels
        return labels

    def _logits(self, image_features, text_features, all_image, all_text, logit_scale):
        if self.world_size > 1 and not self.local_loss:
            per_image = logit_scale * all_image @ all_text.T
            return per_image, per_image.T
        return logit_scale * image_features @ all_text.T, logit_scale * text_features @ all_image.T

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        logit_bias: torch.Tensor | None = None,
        *,
        progress: float | None = None,
        candidate_text: CandidatePool | None = None,
        candidate_image: CandidatePool | None = None,
        candidate_text_features: torch.Tensor | None = None,
        candidate_text_mask: torch.Tensor | None = None,
        candidate_image_features: torch.Tensor | None = None,
        candidate_image_mask: torch.Tensor | None = None,
        image_tokens: torch.Tensor | None = None,
        image_token_mask: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_token_mask: torch.Tensor | None = None,
        candidate_text_tokens: torch.Tensor | None = None,
        candidate_text_token_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_dict: bool = False,
    ):
        """Compute the BACL loss.

        Retrieved candidates come in one of two forms per direction: tensors of their embeddings
        (``candidate_text_features`` etc.), or a :class:`~bacl.candidates.CandidatePool`
        (``candidate_text``, ``candidate_image``): rows of a store of frozen features plus the
        head that embeds them. A pool is embedded without gradient for the BNS scores and CLA's
        choice, and only the K drawn candidates are embedded again with gradient: the gradient of
        embedding the whole pool with gradient, at a fraction of the cost (the aligners use it).
        Every input is checked once per call.

        Args:
            image_features, text_features: (B, D) L2-normalised embeddings, as for ClipLoss.
            logit_scale: scalar (already exponentiated, as open_clip passes it).
            logit_bias: optional scalar added to every logit, as in ClipLoss.
            progress: training progress eta in [0, 1]; required with BNS.
            candidate_text: optional CandidatePool of text negatives for each image anchor, with
                its own mask and tokens; instead of the four ``candidate_text_*`` tensors.
            candidate_image: the same for text anchors (BNS only), instead of ``candidate_image_*``.
            candidate_text_features: optional (B, P, D) retrieved text negatives for each image
                anchor (e.g. from the coarse-aligned index); without them the batch is the pool.
            candidate_text_mask: optional (B, P) bool, True where admissible.
            candidate_image_features, candidate_image_mask: the same for text anchors.
            image_tokens: (B, Li, Dv) frozen image token features; text_tokens: (B, Lt, Dt); any
                float dtype: the rows the Transformer sees are cast to its parameters' dtype.
            image_token_mask, text_token_mask: (B, Li), (B, Lt) bool, True = real token.
            candidate_text_tokens: (B, P, Lt, Dt) tokens of the retrieved text candidates, needed
                for CLA when ``candidate_text_features`` is given (any float dtype, like
                ``text_tokens``); mask (B, P, Lt).
            generator: torch.Generator for the Gumbel noise (reproducible draws).
            output_dict: return the weighted terms in a dict instead of their sum.
        """
        check_matrix("image_features", image_features)
        check_matrix("text_features", text_features)
        if text_features.shape != image_features.shape:
            raise ValueError(
                f"text_features has shape {tuple(text_features.shape)}, image_features {tuple(image_features.shape)}"
            )
        text_candidates = candidate_pool("candidate_text", candidate_text, image_features, candidate_text_features,
                                          candidate_text_mask, candidate_text_tokens, candidate_text_token_mask)
        image_candidates = candidate_pool("candidate_image", candidate_image, text_features, candidate_image_features,
                                           candidate_image_mask)
        all_image, all_text = gather_features(
            image_features, text_features, local_loss=self.local_loss, gather_with_grad=self.gather_with_grad,
            rank=self.rank, world_size=self.world_size,
        )
        per_image, per_text = self._logits(image_features, text_features, all_image, all_text, logit_scale)
        if logit_bias is not None:
            per_image, per_text = per_image + logit_bias, per_text + logit_bias
        labels = self.ground_truth(image_features.device, per_image.shape[0])
        # Columns of the local anchors' own positives in the gathered batch (BNS and CLA use local rows).
        offset = self.rank * image_features.shape[0] if self.world_size > 1 else 0
        anchor_labels = torch.arange(image_features.shape[0], device=image_features.device) + offset

        extra_image = extra_text = None
        draw = text_pool = None
        if self.use_bns:
            if progress is None:
                raise ValueError("progress (training progress eta in [0, 1]) is required when use_bns=True")
            text_pool = ScoredPool.of(image_features, text_features, all_text, text_candidates, anchor_labels)
            draw, extra_image = self._extra_negatives(image_features, text_pool, logit_scale, logit_bias, progress,
                                                      generator)
            image_pool = ScoredPool.of(text_features, image_features, all_image, image_candidates, anchor_labels)
            draw_text, extra_text = self._extra_negatives(text_features, image_pool, logit_scale, logit_bias, progress,
                                                          generator)
            self.last_draw = {
                "alpha": draw.alpha,
                "image_to_text_boundary_score": draw.boundary_score[draw.valid].detach(),
                "text_to_image_boundary_score": draw_text.boundary_score[draw_text.valid].detach(),
            }
        losses = {
            "contrastive_loss": (
                contrastive_logits_loss(per_image, labels, extra_image)
                + contrastive_logits_loss(per_text, labels, extra_text)
            ) / 2
        }
        if self.use_bns:
            losses["policy_loss"] = (draw.policy_loss + draw_text.policy_loss) / 2
        if self.use_cla:
            if image_tokens is None or text_tokens is None:
                raise ValueError("image_tokens and text_tokens are required when use_cla=True")
            if text_pool is None:
                text_pool = ScoredPool.of(image_features, text_features, all_text, text_candidates, anchor_labels)
            local, match = self._local_terms(image_features, text_features, text_pool, draw, image_tokens,
                                             image_token_mask, text_tokens, text_token_mask)
            losses["local_loss"] = self.lambda_local * local
            losses["match_loss"] = self.lambda_match * match
        return losses if output_dict else sum(losses.values())

    def _extra_negatives(self, anchor, pool: ScoredPool, logit_scale, logit_bias, progress, generator):
        draw = self.sampler.draw(pool.similarities, progress, candidate_mask=pool.mask, generator=generator,
                                 rank=self.rank, world_size=self.world_size)
        # Only the drawn candidates' embeddings carry gradient: a CandidatePool embeds them again.
        drawn = pool.embeddings[draw.index] if pool.candidates is None else pool.candidates.embed(draw.index)
        extra = logit_scale * torch.einsum("bd,bkd->bk", anchor, drawn)
        if logit_bias is not None:
            extra = extra + logit_bias
        # The weights enter detached: the aligner must not teach the policy to pick easy negatives.
        return draw, extra + self.log_negative_weight + torch.log(draw.weights.detach())

    def _local_terms(self, image_features, text_features, pool: ScoredPool, draw, image_tokens, image_token_mask,
                     text_tokens, text_token_mask):
        """CLA and match losses on the positive pair vs the hardest BNS text negative."""
        batch = image_features.shape[0]
        check_floating("image_tokens", image_tokens)  # their values: by the Transformer, on the rows it sees
        check_floating("text_tokens", text_tokens)
        text_token_mask = checked_token_mask(text_token_mask, text_tokens, "text_token_mask")
        image_token_mask = checked_token_mask(image_token_mask, image_tokens, "image_token_mask")
        if pool.candidates is not None and pool.candidates.tokens_store is None:
            raise ValueError("candidate_text_tokens are required for CLA when candidate_text_features are given")
        offset = self.rank * batch if self.world_size > 1 else 0
        with torch.no_grad():
            score = pool.similarities.boundary_score
            admissible = torch.ones_like(score, dtype=torch.bool) if pool.mask is None else pool.mask.clone()
            # A copy of the positive (e.g. a duplicate caption) is never its negative: cos >= 1 - 1e-6
            # (the candidate's boundary score with the positive as anchor, as boundary_score computes it).
            own = (F.normalize(text_features, dim=-1) * F.normalize(text_features, dim=-1)).sum(-1, keepdim=True)
            admissible &= pool.similarities.positive_candidate - own < -1e-6
            if pool.candidates is None:
                # In-batch pool: only this rank's texts have token features here.
                local = torch.zeros_like(admissible)
                local[:, offset:offset + batch] = True
                admissible &= local
            if draw is not None:
                drawn = torch.zeros_like(admissible).scatter(1, draw.index, draw.valid) & admissible
                admissible = torch.where(drawn.any(1, keepdim=True), drawn, admissible)
            hardest = score.masked_fill(~admissible, float("-inf")).argmax(1)
            has_negative = admissible.any(1)
        keep = has_negative.nonzero().squeeze(1)[: self.cla_anchors]
        if keep.numel() == 0:
            zero = image_features.sum() * 0.0
            return zero, zero
        if pool.candidates is None:
            negative_tokens = text_tokens[hardest[keep] - offset]
            negative_mask = text_token_mask[hardest[keep] - offset]
        else:  # only the kept anchors' negatives are read from the store and cast
            negative_tokens, negative_mask = pool.candidates.tokens(keep, hardest[keep])
            negative_mask = checked_token_mask(negative_mask, negative_tokens, "candidate_text_token_mask")
        # Tokens of any float dtype: only the rows the Transformer sees are cast to its dtype.
        dtype = next(self.cross_modal.parameters()).dtype
        negative_tokens = negative_tokens.to(dtype)
        image_tokens, image_token_mask = image_tokens[keep].to(dtype), image_token_mask[keep]
        text_tokens, text_token_mask = text_tokens[keep].to(dtype), text_token_mask[keep]
        positive_out = self.cross_modal(text_tokens, image_tokens, text_token_mask, image_token_mask)
        negative_out = self.cross_modal(negative_tokens, image_tokens, negative_mask, image_token_mask)
        pair_mask = (text_token_mask & negative_mask)[:, :, None] & image_token_mask[:, None, :]
        local = contrastive_local_attention_loss(
            positive_out.attention, negative_out.attention, beta=self.beta, omega_size=self.omega_size, mask=pair_mask)
        match_logits = torch.cat([positive_out.match_logit, negative_out.match_logit])
        match_targets = torch.cat([torch.ones_like(positive_out.match_logit), torch.zeros_like(negative_out.match_logit)])
        return local, F.binary_cross_entropy_with_logits(match_logits, match_targets)
