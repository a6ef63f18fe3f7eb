"""BACLLoss's CLA terms: the rows the Transformer sees (token masks and dtypes, cla_anchors, never a
duplicate of the positive), the listwise and hardest match objectives, the match list's pool and
draws, the discriminative form's token ids."""

import pytest
import torch
import torch.nn.functional as F
from loss_fixtures import features, small_transformer, token_ids, tokens

from bacl.losses import BACLLoss
from bacl.sampler import BoundarySampler


def test_tokens_of_any_float_dtype_are_cast_where_the_transformer_sees_them():
    """Token features may stay in their stored dtype (fp16 in the cache): the loss casts the rows
    the Transformer sees, so fp16 tokens give exactly the loss of the same values in fp32."""
    image, text = features(9, 6)
    image_tokens, text_tokens = tokens(0, 6).half(), tokens(1, 6).half()
    loss_fn = BACLLoss(sampler=BoundarySampler(num_negatives=2), cross_modal=small_transformer(), cla_anchors=3)
    kwargs = dict(progress=0.4, output_dict=True, text_token_ids=token_ids(0, 6))
    half = loss_fn(image, text, torch.tensor(10.0), image_tokens=image_tokens, text_tokens=text_tokens,
                   generator=torch.Generator().manual_seed(1), **kwargs)
    full = loss_fn(image, text, torch.tensor(10.0), image_tokens=image_tokens.float(), text_tokens=text_tokens.float(),
                   generator=torch.Generator().manual_seed(1), **kwargs)
    for key in full:
        torch.testing.assert_close(half[key], full[key], rtol=0, atol=0)


def test_cla_respects_token_masks():
    image, text = features(5, 4)
    image_tokens, text_tokens = tokens(0, 4, length=7), tokens(1, 4, length=6)
    image_mask = torch.ones(4, 7, dtype=torch.bool)
    image_mask[:, 5:] = False
    text_mask = torch.ones(4, 6, dtype=torch.bool)
    text_mask[:, 4:] = False
    loss_fn = BACLLoss(use_bns=False, cross_modal=small_transformer())
    kwargs = dict(image_token_mask=image_mask, text_token_mask=text_mask, output_dict=True,
                  text_token_ids=token_ids(2, 4, length=6), generator=torch.Generator().manual_seed(0))
    before = loss_fn(image, text, torch.tensor(10.0), image_tokens=image_tokens, text_tokens=text_tokens, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(0)
    changed_image, changed_text = image_tokens.clone(), text_tokens.clone()
    changed_image[:, 5:] = 1e3
    changed_text[:, 4:] = -1e3
    after = loss_fn(image, text, torch.tensor(10.0), image_tokens=changed_image, text_tokens=changed_text, **kwargs)
    for key in before:
        torch.testing.assert_close(before[key], after[key])


def test_a_single_pair_has_no_negative_and_zero_local_terms():
    image, text = features(6, 1)
    out = BACLLoss(sampler=BoundarySampler(num_negatives=1), cross_modal=small_transformer())(
        image, text, torch.tensor(10.0), progress=0.1, image_tokens=tokens(0, 1), text_tokens=tokens(1, 1),
        text_token_ids=token_ids(0, 1), output_dict=True)
    assert out["local_loss"] == 0 and out["match_loss"] == 0
    assert torch.isfinite(out["contrastive_loss"])


def test_cla_anchors_bounds_the_rows_the_transformer_sees():
    image, text = features(7, 8)
    transformer = small_transformer()
    seen = []
    transformer.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    kwargs = dict(progress=0.5, image_tokens=tokens(0, 8), text_tokens=tokens(1, 8), text_token_ids=token_ids(0, 8),
                  output_dict=True, generator=torch.Generator().manual_seed(0))
    sampler = BoundarySampler(num_negatives=2)
    everything = BACLLoss(sampler=sampler, cross_modal=transformer)(
        image, text, torch.tensor(10.0), **kwargs)
    assert seen == [8 * 3]  # one call: every anchor's positive and its K = 2 negatives
    seen.clear()
    bounded = BACLLoss(sampler=sampler, cross_modal=transformer, cla_anchors=3)(
        image, text, torch.tensor(10.0), **{**kwargs, "generator": torch.Generator().manual_seed(0)})
    assert seen == [3 * 3]
    torch.testing.assert_close(bounded["contrastive_loss"], everything["contrastive_loss"])
    assert bounded["local_loss"] != everything["local_loss"]
    with pytest.raises(ValueError, match="cla_anchors"):
        BACLLoss(use_bns=False, cross_modal=transformer, cla_anchors=0)


def test_cla_never_takes_a_duplicate_of_the_positive_as_its_negative():
    image, text = features(8, 6)
    text = text.clone()
    text[1] = text[0]  # samples 0 and 1 share a caption
    image = image.clone()
    image[0] = text[0]  # and image 0 is closest to it: the duplicate would be the "hardest" negative
    text_tokens = torch.arange(6, dtype=torch.float)[:, None, None].expand(6, 5, 6).contiguous()
    seen = []
    transformer = small_transformer()
    transformer.register_forward_hook(lambda module, args, output: seen.append(args[0][:, 0, 0].tolist()))
    for objective in ("hardest_bce", "listwise"):
        seen.clear()
        BACLLoss(use_bns=False, cross_modal=transformer, match_objective=objective, match_negatives=5)(
            image, text, torch.tensor(10.0), image_tokens=tokens(0, 6), text_tokens=text_tokens,
            text_token_ids=token_ids(0, 6), generator=torch.Generator().manual_seed(0))
        rows = seen[0]  # the 6 positives, then each anchor's valid negatives in anchor order
        # every admissible text (all but the anchor's own caption and its copy) or the one hardest
        counts = [1] * 6 if objective == "hardest_bce" else [4, 4, 5, 5, 5, 5]
        assert len(rows) == 6 + sum(counts)
        starts = [6 + sum(counts[:anchor]) for anchor in range(6)]
        for anchor in range(6):
            theirs = rows[starts[anchor]:starts[anchor] + counts[anchor]]
            banned = {0.0, 1.0} if anchor in (0, 1) else {float(anchor)}
            assert not banned & set(theirs) and len(set(theirs)) == len(theirs)


def all_pair_logits(transformer, image_tokens, text_tokens):
    """(B, B) match logits of every (image i, text j) pair, computed directly."""
    batch = image_tokens.shape[0]
    rows, cols = torch.arange(batch).repeat_interleave(batch), torch.arange(batch).repeat(batch)
    with torch.no_grad():
        return transformer(text_tokens[cols], image_tokens[rows]).match_logit.view(batch, batch)


def test_listwise_match_loss_is_cross_entropy_over_the_positive_and_its_negatives():
    """Without BNS, K = B - 1 uniform negatives are the whole batch: the listwise loss is the
    cross-entropy of each row of the pair-logit matrix with the diagonal as the target, and the
    hardest-only reading the BCE of the positive against the largest-BS caption."""
    image, text = features(10, 4)
    image_tokens, text_tokens = tokens(0, 4), tokens(1, 4)
    transformer = small_transformer()
    kwargs = dict(image_tokens=image_tokens, text_tokens=text_tokens, text_token_ids=token_ids(0, 4),
                  generator=torch.Generator().manual_seed(0), output_dict=True)
    logits = all_pair_logits(transformer, image_tokens, text_tokens)
    listwise = BACLLoss(use_bns=False, cross_modal=transformer, match_negatives=3)(image, text, 10.0, **kwargs)
    torch.testing.assert_close(listwise["match_loss"], F.cross_entropy(logits, torch.arange(4)), rtol=1e-5, atol=1e-6)
    hardest = BACLLoss(use_bns=False, cross_modal=transformer, match_objective="hardest_bce")(image, text, 10.0, **kwargs)
    score = image @ text.T - (image * text).sum(-1, keepdim=True)
    negative = score.masked_fill(torch.eye(4, dtype=torch.bool), float("-inf")).argmax(1)
    expected = F.binary_cross_entropy_with_logits(torch.cat([logits.diagonal(), logits[torch.arange(4), negative]]),
                                                  torch.cat([torch.ones(4), torch.zeros(4)]))
    torch.testing.assert_close(hardest["match_loss"], expected, rtol=1e-5, atol=1e-6)


def test_match_list_draws_easy_batch_negatives_early_and_retrieved_ones_late():
    """Retrieved candidates are near the anchor (boundary score ~0), the other captions of the
    batch far from it: the match list's BNS draw over both takes mostly batch captions at eta = 0
    and mostly retrieved ones at eta = 1 (the default curriculum). The contrastive term keeps its
    own draws from the retrieved pool: it is the same whatever the match pool."""
    batch, pool = 16, 4
    gen = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(batch, 8, generator=gen), dim=-1)
    text = F.normalize(image + 0.3 * torch.randn(batch, 8, generator=gen), dim=-1)
    near = F.normalize(image[:, None] + 0.3 * torch.randn(batch, pool, 8, generator=gen), dim=-1)
    kwargs = dict(candidate_text_features=near, candidate_image_features=near, output_dict=True,
                  candidate_text_tokens=torch.randn(batch, pool, 5, 6, generator=gen),
                  image_tokens=tokens(0, batch), text_tokens=tokens(1, batch))
    shares, contrastive = {}, {}
    for match_pool in ("retrieved_and_batch", "retrieved"):
        cross_modal = small_transformer()  # seeds torch: both arms' samplers start from the same policy
        loss_fn = BACLLoss(sampler=BoundarySampler(num_negatives=2), cross_modal=cross_modal,
                           match_pool=match_pool, cla_form="literal")
        for progress in (0.0, 1.0):
            draws = []
            for seed in range(10):
                out = loss_fn(image, text, 10.0, progress=progress, generator=torch.Generator().manual_seed(seed), **kwargs)
                draws.append(loss_fn.last_draw["match_retrieved_share"].item())
                contrastive[match_pool, progress, seed] = out["contrastive_loss"]
            shares[match_pool, progress] = sum(draws) / len(draws)
    assert shares["retrieved_and_batch", 0.0] < 0.5 < shares["retrieved_and_batch", 1.0]
    assert shares["retrieved", 0.0] == shares["retrieved", 1.0] == 1.0
    for (match_pool, progress, seed), value in contrastive.items():
        torch.testing.assert_close(value, contrastive["retrieved", progress, seed], rtol=0, atol=0)


def test_last_draw_names_the_store_rows_it_drew():
    """The diagnostics name each drawn candidate by its row of the pool's store (the training split
    in bacl.train): the rows the pool lists at the drawn positions; the match list's batch draws
    are not store rows and are marked invalid, and so are the anchors the Transformer did not see."""
    from bacl.candidates import CandidatePool

    gen = torch.Generator().manual_seed(1)
    image = F.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    text = F.normalize(image + 0.3 * torch.randn(6, 8, generator=gen), dim=-1)
    store = F.normalize(torch.randn(30, 8, generator=gen), dim=-1)
    rows = torch.randperm(30, generator=gen)[:24].view(6, 4)
    pool = CandidatePool(rows, store, tokens=torch.randn(30, 5, 6, generator=gen))
    drawn = []
    sampler = BoundarySampler(num_negatives=2)
    original = sampler.draws_by_row  # every draw goes through it (the match list's only for the rows it needs)

    def recording(*args, **kwargs):
        draw_rows = original(*args, **kwargs)
        return lambda rows: drawn.append(draw_rows(rows)) or drawn[-1]

    sampler.draws_by_row = recording
    loss_fn = BACLLoss(sampler=sampler, cross_modal=small_transformer(), cla_form="literal")
    loss_fn(image, text, 10.0, progress=0.5, candidate_text=pool, candidate_image=CandidatePool(rows, store),
            image_tokens=tokens(0, 6), text_tokens=tokens(1, 6), generator=torch.Generator().manual_seed(0))
    first, match = drawn[0], drawn[2]  # image->text, text->image, then the match list's draw
    last = loss_fn.last_draw
    assert torch.equal(last["image_to_text_rows"], rows.gather(1, first.index))
    assert torch.equal(last["image_to_text_valid"], first.valid)
    retrieved = (match.index < 4) & match.valid
    assert torch.equal(last["match_valid"], retrieved)
    assert torch.equal(last["match_rows"][retrieved], rows.gather(1, match.index.clamp(max=3))[retrieved])
    drawn.clear()
    loss_fn.cla_anchors = 2
    loss_fn(image, text, 10.0, progress=0.5, candidate_text=pool, candidate_image=CandidatePool(rows, store),
            image_tokens=tokens(0, 6), text_tokens=tokens(1, 6), generator=torch.Generator().manual_seed(0))
    seen = torch.zeros(6, dtype=torch.bool)
    seen[:2] = True
    assert torch.equal(loss_fn.last_draw["match_valid"], retrieved & seen[:, None])
    assert drawn[2].index.shape == (2, 2)  # the match list's draw: only for the 2 anchors it scores


def test_the_discriminative_form_needs_token_ids_and_the_literal_does_not():
    image, text = features(11, 4)
    kwargs = dict(image_tokens=tokens(0, 4), text_tokens=tokens(1, 4), output_dict=True)
    with pytest.raises(ValueError, match="text_token_ids"):
        BACLLoss(use_bns=False, cross_modal=small_transformer())(image, text, 10.0, **kwargs)
    for settings in (dict(cla_form="literal"), dict(lambda_local=0.0)):
        out = BACLLoss(use_bns=False, cross_modal=small_transformer(), **settings)(image, text, 10.0, **kwargs)
        assert all(torch.isfinite(v) for v in out.values())
    retrieved = dict(candidate_text_features=F.normalize(torch.randn(4, 5, 8), dim=-1),
                     candidate_text_tokens=torch.randn(4, 5, 5, 6))
    with pytest.raises(ValueError, match="candidate_text_token_ids"):
        BACLLoss(sampler=BoundarySampler(num_negatives=3), cross_modal=small_transformer(), match_pool="retrieved")(
            image, text, 10.0, progress=1.0, text_token_ids=token_ids(0, 4), **retrieved, **kwargs)


def test_without_bns_the_match_list_takes_uniform_in_batch_negatives():
    """CLA only / CLIP+matching: the K negatives are uniform draws from the batch even when retrieved
    candidates are given (with ``match_pool="retrieved"``, from the retrieved candidates)."""
    image, text = features(12, 6)
    candidates = dict(candidate_text_features=F.normalize(torch.randn(6, 3, 8), dim=-1),
                      candidate_text_tokens=torch.full((6, 3, 5, 6), 100.0))  # marked: retrieved tokens
    seen = []
    transformer = small_transformer()
    transformer.register_forward_hook(lambda module, args, output: seen.append(args[0][:, 0, 0]))
    for match_pool, retrieved in (("retrieved_and_batch", False), ("retrieved", True)):
        seen.clear()
        BACLLoss(use_bns=False, cross_modal=transformer, match_negatives=2, match_pool=match_pool, cla_form="literal")(
            image, text, 10.0, image_tokens=tokens(0, 6), text_tokens=tokens(1, 6),
            generator=torch.Generator().manual_seed(0), **candidates)
        negatives = seen[0][6:]
        assert len(negatives) == 6 * 2 and bool((negatives == 100.0).all()) == retrieved
        assert bool((negatives == 100.0).any()) == retrieved
