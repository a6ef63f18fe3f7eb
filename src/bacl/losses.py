"""BACLLoss: the BACL objective, called like ``open_clip.loss.ClipLoss``.

    L_main = L_contrast + lambda_local * L_local  (+ lambda_match * L_match + L_policy)

* ``L_contrast`` is CLIP's symmetric InfoNCE. With BNS on, the K negatives drawn per anchor by
  :class:`~bacl.sampler.BoundarySampler` enter each anchor's softmax denominator as extra terms
  ``log(negative_weight * w_k) + logit_k``, in both directions (image->text, text->image).
* ``L_match`` trains the cross-modal Transformer's match head on a list per image anchor: its
  positive caption and K negatives of the method's own sampler — with BNS, drawn by the same
  sampler and curriculum from the retrieved pool *and the batch* (``match_pool``), so the list
  holds easy in-batch negatives early and retrieved boundary negatives late; without BNS, uniform
  in-batch draws — listwise cross-entropy by default (:mod:`bacl.matching`).
* ``L_local`` is CLA on the same lists: the positive's attention against each negative's, in the
  discriminative reading (:mod:`bacl.discriminative_cla`, attention that differs where the
  captions differ) or the literal formula (:func:`~bacl.attention.contrastive_local_attention_loss`).
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

from .attention import CrossModalTransformer
from .candidates import CandidatePool, candidate_pool
from .distributed import gather_features
from .matching import CLA_FORMS, MATCH_OBJECTIVES, local_loss, match_loss, score_match_list
from .negative_pool import NegativePool
from .sampler import BoundarySampler
from .sampling_correction import sampling_correction as sampling_log_correction
from .validation import check_floating, check_matrix, check_positive_number, checked_token_mask

__all__ = ["BACLLoss", "MATCH_POOLS", "contrastive_logits_loss"]

MATCH_POOLS = ("retrieved_and_batch", "retrieved")


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
        match_objective: ``"listwise"`` (cross-entropy over the positive and its K negatives) or
            ``"hardest_bce"`` (BCE of the positive vs the largest-BS negative: the first reading).
        match_negatives: without BNS, uniform in-batch negatives per anchor for the match list
            (retrieved ones with ``match_pool="retrieved"``); 4, the sampler's default K (with BNS
            the K drawn negatives are the list).
        match_pool: where the match list's negatives come from: ``"retrieved_and_batch"`` (with
            BNS a second draw of the sampler, under the same curriculum, over the retrieved
            candidates and the batch) or ``"retrieved"`` (the contrastive term's own BNS draws:
            the first reading); without retrieved candidates the batch is the pool either way.
        cla_form: ``"discriminative"`` (needs token ids) or ``"literal"``.
        cla_temperature: tau of the discriminative form; 0.1 gives its TV in [0, 1] a 10-nat range.
        beta: literal CLA's amplification of divergent attention, ``A_b = A- * (1 + beta * dA)``.
        omega_size: literal CLA's |Omega|, the number of most divergent (token, context) pairs.
        negative_weight: multiplies each drawn negative's term in the denominator; 1 counts a
            drawn negative once more on top of its in-batch term (an up-weighting, as in HCL).
        sampling_correction: beyond the paper, off by default. The drawn negatives leave the
            in-batch softmax and form their own term, ``drawn_set_loss``: a softmax over the positive
            and the K drawn, each drawn logit plus McFadden's log-correction of the Gumbel-top-k
            draw (:mod:`bacl.sampling_correction`), which makes it the exact conditional likelihood
            of the positive given the drawn set (theory/: the corrected arm converges to the
            full-softmax optimum where the plain one does not). Needs BNS and negative_weight 1.
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
        match_objective: str = "listwise",
        match_negatives: int = 4,
        match_pool: str = "retrieved_and_batch",
        cla_form: str = "discriminative",
        cla_temperature: float = 0.1,
        beta: float = 1.0,
        omega_size: int = 8,
        negative_weight: float = 1.0,
        sampling_correction: bool = False,
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
        for name, value, choices in (("match_objective", match_objective, MATCH_OBJECTIVES),
                                     ("match_pool", match_pool, MATCH_POOLS), ("cla_form", cla_form, CLA_FORMS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        self.match_objective, self.match_pool, self.cla_form = match_objective, match_pool, cla_form
        if isinstance(match_negatives, bool) or not isinstance(match_negatives, int) or match_negatives < 1:
            raise ValueError(f"match_negatives must be a positive integer, got {match_negatives!r}")
        self.match_negatives = match_negatives
        self.cla_temperature = check_positive_number("cla_temperature", cla_temperature)
        if isinstance(omega_size, bool) or not isinstance(omega_size, int) or omega_size < 1:
            raise ValueError(f"omega_size must be a positive integer, got {omega_size!r}")
        self.omega_size = omega_size
        if cla_anchors is not None and (isinstance(cla_anchors, bool) or not isinstance(cla_anchors, int) or cla_anchors < 1):
            raise ValueError(f"cla_anchors must be a positive integer or None, got {cla_anchors!r}")
        self.cla_anchors = cla_anchors
        if not isinstance(sampling_correction, bool):
            raise ValueError(f"sampling_correction must be a bool, got {sampling_correction!r}")
        if sampling_correction and (not use_bns or negative_weight != 1.0):
            raise ValueError("sampling_correction needs use_bns=True and negative_weight=1 (the correction "
                             f"is the draw's own; got use_bns={use_bns}, negative_weight={negative_weight})")
        self.sampling_correction = sampling_correction
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
        text_token_ids: torch.Tensor | None = None,
        candidate_text_token_ids: torch.Tensor | None = None,
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
            text_token_ids: (B, Lt) integer token ids of the captions (those the text tower
                read), for the discriminative CLA's token alignment; candidate_text_token_ids:
                (B, P, Lt') those of the retrieved text candidates.
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
                                          candidate_text_mask, candidate_text_tokens, candidate_text_token_mask,
                                          candidate_text_token_ids)
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

        local = (offset, offset + image_features.shape[0])
        extra_image = extra_text = None
        draw = text_pool = None
        if self.use_bns or self.use_cla:
            text_pool = NegativePool(image_features, text_features, all_text, text_candidates, anchor_labels, local,
                                     text_tokens, text_token_mask, text_token_ids)
        if self.use_bns:
            if progress is None:
                raise ValueError("progress (training progress eta in [0, 1]) is required when use_bns=True")
            draw, extra_image = self._extra_negatives(image_features, text_pool, logit_scale, logit_bias, progress,
                                                      generator)
            image_pool = NegativePool(text_features, image_features, all_image, image_candidates, anchor_labels, local)
            draw_text, extra_text = self._extra_negatives(text_features, image_pool, logit_scale, logit_bias, progress,
                                                          generator)
            rows, retrieved = text_pool.store_rows(draw.index, draw.valid)
            self.last_draw = {
                "alpha": draw.alpha,
                "image_to_text_boundary_score": draw.boundary_score[draw.valid].detach(),
                "text_to_image_boundary_score": draw_text.boundary_score[draw_text.valid].detach(),
                # rows of the retrieved store (the training split in bacl.train), valid where retrieved
                "image_to_text_rows": rows, "image_to_text_valid": retrieved,
            }
        if self.sampling_correction:  # the drawn set is its own softmax: the positive against the K drawn
            zeros = torch.zeros_like(labels[: per_image.shape[0]])
            drawn_set = (contrastive_logits_loss(per_image.gather(1, labels[:, None]), zeros, extra_image)
                         + contrastive_logits_loss(per_text.gather(1, labels[:, None]), zeros, extra_text)) / 2
            extra_image = extra_text = None
        losses = {
            "contrastive_loss": (
                contrastive_logits_loss(per_image, labels, extra_image)
                + contrastive_logits_loss(per_text, labels, extra_text)
            ) / 2
        }
        if self.sampling_correction:
            losses["drawn_set_loss"] = drawn_set
        if self.use_bns:
            losses["policy_loss"] = (draw.policy_loss + draw_text.policy_loss) / 2
        if self.use_cla:
            if image_tokens is None or text_tokens is None:
                raise ValueError("image_tokens and text_tokens are required when use_cla=True")
            match_pool, match_draw = text_pool, draw
            if self.match_pool == "retrieved_and_batch" and text_pool.batch is None:
                match_pool = text_pool.with_batch(image_features)
                if draw is not None:  # the same sampler and curriculum; the policy learns from its own draw only
                    # drawn only for the anchors whose list is scored, each as a draw of all anchors would
                    match_draw = self.sampler.draws_by_row(match_pool.similarities, progress, match_pool.mask,
                                                           generator, self.rank, self.world_size)
            local_term, match = self._local_terms(match_pool, match_draw, image_tokens, image_token_mask, text_tokens,
                                                  text_token_mask, text_token_ids, generator)
            losses["local_loss"] = self.lambda_local * local_term
            losses["match_loss"] = self.lambda_match * match
        return losses if output_dict else sum(losses.values())

    def _extra_negatives(self, anchor, pool: NegativePool, logit_scale, logit_bias, progress, generator):
        draw = self.sampler.draw(pool.similarities, progress, candidate_mask=pool.mask, generator=generator,
                                 rank=self.rank, world_size=self.world_size)
        # Only the drawn candidates' embeddings carry gradient: retrieved ones are embedded again.
        extra = logit_scale * torch.einsum("bd,bkd->bk", anchor, pool.embed(draw.index))
        if logit_bias is not None:
            extra = extra + logit_bias
        if self.sampling_correction:
            extra = extra + sampling_log_correction(draw.logits, draw.index, draw.valid, draw.positive_logit).to(extra.dtype)
        # The weights enter detached: the aligner must not teach the policy to pick easy negatives.
        return draw, extra + self.log_negative_weight + torch.log(draw.weights.detach())

    def _match_lists(self, pool: NegativePool, draw, generator):
        """The anchors whose match list is scored, the first ``cla_anchors`` with a valid negative (A,),
        and their negatives' pool positions and validity (A, K).

        ``draw``: the contrastive term's BNS draw of all anchors, None (no BNS), or a function of
        anchor rows drawing the lists' own negatives (:meth:`BoundarySampler.draws_by_row`), called
        on ``cla_anchors`` anchors at a time until enough of them have a valid negative: the lists a
        draw for every anchor would give, at the cost of drawing for a few.
        """
        if not callable(draw):
            index, valid = pool.match_negatives(draw, self.match_objective, self.match_negatives, generator)
            keep = valid.any(1).nonzero().squeeze(1)[: self.cla_anchors]
            return keep, index[keep], valid[keep]
        anchors = pool.mask.shape[0]
        wanted = self.cla_anchors or anchors
        parts, found = [], 0
        for start in range(0, anchors, wanted):
            rows = torch.arange(start, min(start + wanted, anchors), device=pool.mask.device)
            with torch.no_grad():
                index, valid = pool.match_negatives(draw(rows), self.match_objective, self.match_negatives, generator,
                                                    rows=rows)
            has_negative = valid.any(1)
            parts.append((rows[has_negative], index[has_negative], valid[has_negative]))
            found += len(parts[-1][0])
            if found >= wanted:
                break
        keep, index, valid = (torch.cat(column)[:wanted] for column in zip(*parts))
        return keep, index, valid

    def _local_terms(self, pool: NegativePool, draw, image_tokens, image_token_mask, text_tokens, text_token_mask,
                     text_token_ids, generator):
        """CLA and match losses on each image anchor's list: its positive and its negatives (:mod:`bacl.matching`)."""
        check_floating("image_tokens", image_tokens)  # their values: by the Transformer, on the rows it sees
        check_floating("text_tokens", text_tokens)
        text_token_mask = checked_token_mask(text_token_mask, text_tokens, "text_token_mask")
        image_token_mask = checked_token_mask(image_token_mask, image_tokens, "image_token_mask")
        if pool.retrieved is not None and pool.retrieved.candidates.tokens_store is None:
            raise ValueError("candidate_text_tokens are required for CLA when candidate_text_features are given")
        needs_ids = self.cla_form == "discriminative" and self.lambda_local > 0
        if needs_ids and text_token_ids is None:
            raise ValueError("text_token_ids are required for cla_form='discriminative' (token alignment); "
                             "use cla_form='literal' or pass the captions' token ids")
        keep, index, valid = self._match_lists(pool, draw, generator)
        if self.use_bns:  # the negatives the Transformer saw, by row of the retrieved store (diagnostics)
            rows, retrieved = pool.store_rows(index, valid)
            rows, anchors = rows.to(keep.device), pool.mask.shape[0]
            self.last_draw["match_rows"] = rows.new_zeros(anchors, rows.shape[1]).index_copy(0, keep, rows)
            self.last_draw["match_valid"] = retrieved.new_zeros(anchors, rows.shape[1]).index_copy(0, keep, retrieved)
            # share of the scored lists' negatives that are retrieved candidates (not from the batch)
            self.last_draw["match_retrieved_share"] = retrieved.sum() / valid.sum().clamp_min(1)
        if keep.numel() == 0:
            zero = pool.all_positive.sum() * 0.0
            return zero, zero
        pairs = valid.nonzero()
        negatives, negatives_mask, negative_ids = pool.read_tokens(keep[pairs[:, 0]], index[pairs[:, 0], pairs[:, 1]],
                                                                  needs_ids)
        negatives_mask = checked_token_mask(negatives_mask, negatives, "candidate_text_token_mask")
        # Tokens of any float dtype: only the rows the Transformer sees are cast to its dtype.
        dtype = next(self.cross_modal.parameters()).dtype
        match_list = score_match_list(self.cross_modal, image_tokens[keep].to(dtype), image_token_mask[keep],
                                      text_tokens[keep].to(dtype), text_token_mask[keep], negatives.to(dtype),
                                      negatives_mask, valid)
        match = match_loss(match_list, self.match_objective)
        if self.lambda_local == 0:  # nothing to weigh: skip the alignment (and the need for ids)
            return match_list.logits[:, 0].sum() * 0.0, match
        local = local_loss(match_list, self.cla_form, image_token_mask[keep], beta=self.beta,
                           omega_size=self.omega_size, temperature=self.cla_temperature,
                           positive_ids=None if text_token_ids is None else text_token_ids[keep],
                           negative_ids=negative_ids)
        return local, match

