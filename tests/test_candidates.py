"""The optimised training step equals the straightforward one (issue #14), draws and all:

* CandidatePool: scoring the BNS pools without gradient (each distinct store row once) and
  re-embedding only the drawn, against embedding every candidate with gradient;
* the cross-modal Transformer's shared contexts (``context_index``), against a copy of the context
  per caption;
* the match lists' BNS draw made only for the anchors whose list is scored, against a draw for
  every anchor of which the first ``cla_anchors`` lists are kept.
"""

import copy
import dataclasses

import pytest
import torch
from fixtures import context_copies, latent_features, tiny_config

from bacl.aligners import build_aligner
from bacl.candidates import CandidatePool
from bacl.config import method_settings, validate_config
from bacl.losses import BACLLoss
from bacl.sampler import BoundarySampler

EXPERTS = {"num_experts": 4, "top_k": 2}
SPECS = {
    "clip_bns": {"aligner": "clip", "bns": True},
    "clip_cla": {"aligner": "clip", "cla": True},
    "clip_bacl": {"aligner": "clip", "bns": True, "cla": True, "bacl": {"cla_anchors": 6}},  # of 20 anchors
    "m3jepa_bacl": {"aligner": "m3jepa", "bns": True, "cla": True, "options": EXPERTS},
    "blip_bacl": {"aligner": "blip", "bns": True, "cla": True, "bacl": {"cla_anchors": 6}},
}


def perturbed_aligner(spec: dict, dims):
    """An aligner built as the pipeline builds it, every parameter moved off its initial value (the
    heads start at the identity, where some gradients are exactly zero and would prove nothing)."""
    settings = method_settings(validate_config(tiny_config({"method": spec})), "method")
    torch.manual_seed(0)
    aligner = build_aligner(settings["spec"], dims, bacl=settings["bacl"], transformer=settings["transformer"])
    with torch.no_grad():
        for parameter in aligner.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return aligner


def whole_pool_terms(aligner, x_embedding, text_embedding, batch, progress, generator):
    """``CLIPAligner.contrastive_terms`` as it was before CandidatePool: every candidate of the
    (B, P) pools embedded with gradient, the pools' tensors gathered into (B, P, ...) copies."""
    text_rows, x_rows = batch.candidate_text.rows, batch.candidate_x.rows
    text_store, x_store = batch.candidate_text, batch.candidate_x
    terms = aligner.contrastive(
        x_embedding, text_embedding, aligner.scale(), progress=progress,
        candidate_text_features=aligner.encode_text(text_store.features[text_rows].float()),
        candidate_text_tokens=text_store.tokens_store[text_rows],
        candidate_text_token_mask=text_store.token_mask_store[text_rows],
        candidate_text_token_ids=text_store.token_ids_store[text_rows], text_token_ids=batch.text_token_ids,
        candidate_image_features=aligner.encode_x(x_store.features[x_rows].float()),
        image_tokens=batch.x_tokens, image_token_mask=batch.x_token_mask,
        text_tokens=batch.text_tokens, text_token_mask=batch.text_token_mask,
        generator=generator, output_dict=True,
    )
    terms["contrastive_loss"] = aligner.contrastive_weight * terms["contrastive_loss"]
    return terms


def rows_of(draw, rows):
    """The rows ``rows`` of a BNS draw (its per-anchor fields; policy_loss is the whole draw's)."""
    per_anchor = [field.name for field in dataclasses.fields(draw) if field.name not in ("policy_loss", "alpha")]
    return dataclasses.replace(draw, **{name: getattr(draw, name)[rows] for name in per_anchor})


def one_step(aligner, batch, reference: bool):
    """Loss terms, every parameter's gradient and every BNS draw of one training step (the reference:
    the straightforward computation of each optimised part)."""
    draws = []
    sampler = aligner.contrastive.sampler
    if sampler is not None:
        original = sampler.draws_by_row  # every draw goes through it

        def recording(*args, **kwargs):
            draw_rows = original(*args, **kwargs)
            if reference:  # draw for every anchor, then take the rows asked for
                return lambda rows: draws.append(rows_of(draw_rows(None), slice(None) if rows is None else rows)) \
                    or draws[-1]
            return lambda rows: draws.append(draw_rows(rows)) or draws[-1]

        sampler.draws_by_row = recording
    if reference:
        aligner.contrastive_terms = lambda *args: whole_pool_terms(aligner, *args)
        if aligner.cross_modal is not None:
            context_copies(aligner.cross_modal)
    terms = aligner(batch, 0.7, torch.Generator().manual_seed(3))
    sum(terms.values()).backward()
    grads = {name: p.grad for name, p in aligner.named_parameters()}
    return terms, grads, draws


@pytest.mark.parametrize("case", sorted(SPECS))
def test_a_step_equals_the_straightforward_step(case):
    features = latent_features(40)
    batch = features.batch(torch.arange(0, 40, 2), candidates=True)
    aligner = perturbed_aligner(SPECS[case], features.dims)
    terms, grads, draws = one_step(copy.deepcopy(aligner), batch, reference=False)
    expected_terms, expected_grads, expected_draws = one_step(aligner, batch, reference=True)
    # BNS draws once per direction; with CLA too, once more for the match list (over pool and batch).
    spec = SPECS[case]
    assert len(draws) == len(expected_draws) == ((2 + bool(spec.get("cla"))) if spec.get("bns") else 0)
    for draw, expected in zip(draws, expected_draws):  # the same negatives are drawn, bit for bit
        for field in ("index", "valid", "boundary_score", "probabilities"):
            assert torch.equal(getattr(draw, field), getattr(expected, field)), field
    if "cla_anchors" in spec.get("bacl", {}):  # the match lists' draw was made for the scored anchors only
        assert len(draws[-1].index) == spec["bacl"]["cla_anchors"] < len(batch.x)
    assert set(terms) == set(expected_terms)
    for name in terms:  # the same loss values, bit for bit but for the Transformer's terms' float32 rounding
        exact = {} if name in ("match_loss", "local_loss") else {"rtol": 0, "atol": 0}  # measured: <= 1.2e-7
        torch.testing.assert_close(terms[name], expected_terms[name], msg=name, **exact)
    # The same gradients up to float32 summation order: a weight's gradient was a sum over all B x P
    # candidates' rows (zero but for the drawn), now over the drawn rows (measured: <= 1.1e-7 relative).
    assert set(grads) == set(expected_grads)
    for name, grad in expected_grads.items():  # heads, policy, Transformer, logit scale
        assert (grads[name] is None) == (grad is None), name
        if grad is not None:
            torch.testing.assert_close(grads[name], grad, msg=name)
    policy = [name for name in grads if ".policy." in name]
    assert all(grads[name] is not None and grads[name].any() for name in policy)


def test_pool_embeds_what_is_asked_and_no_more():
    gen = torch.Generator().manual_seed(0)
    store, tokens = torch.randn(10, 4, generator=gen), torch.randn(10, 3, 5, generator=gen).half()
    token_mask = torch.rand(10, 3, generator=gen) > 0.3
    rows = torch.tensor([[1, 4, 4, 9], [0, 1, 2, 3]])
    head = torch.nn.Linear(4, 6)
    calls = []
    head.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[:-1].numel()))
    pool = CandidatePool(rows, store, tokens=tokens, token_mask=token_mask).encoded_by(head)
    everything = pool.embeddings()
    assert calls == [6] and not everything.requires_grad  # 6 distinct rows, each embedded once
    torch.testing.assert_close(everything, head(store[rows]), rtol=0, atol=0)
    drawn = pool.embed(torch.tensor([[2, 0], [3, 1]]))
    assert calls[-1] == 4 and drawn.requires_grad
    torch.testing.assert_close(drawn, head(store[torch.tensor([[4, 1], [3, 1]])]), rtol=0, atol=0)
    picked, picked_mask, picked_ids = pool.tokens(torch.tensor([1]), torch.tensor([2]))
    assert picked.dtype == torch.half and torch.equal(picked, tokens[[2]]) and torch.equal(picked_mask, token_mask[[2]])
    assert picked_ids is None  # a store without ids
    ids = torch.arange(tokens.shape[0] * tokens.shape[1]).view(tokens.shape[:-1])
    with_ids = CandidatePool(rows, store, tokens=tokens, token_mask=token_mask, token_ids=ids)
    assert torch.equal(with_ids.tokens(torch.tensor([1, 0]), torch.tensor([2, 1]))[2], ids[[2, 4]])


@pytest.mark.parametrize("kwargs, name", [
    (dict(rows=torch.zeros(2, 3)), "rows"),
    (dict(rows=torch.tensor([[0, 10]])), "rows"),
    (dict(features=torch.zeros(10)), "features"),
    (dict(mask=torch.ones(2, 2, dtype=torch.bool)), "mask"),
    (dict(tokens=torch.zeros(9, 3, 5)), "tokens"),
    (dict(tokens=torch.zeros(10, 3, 5), token_mask=torch.ones(10, 3)), "token_mask"),
    (dict(token_ids=torch.zeros(10, 3, dtype=torch.long)), "token_ids"),
    (dict(tokens=torch.zeros(10, 3, 5), token_ids=torch.zeros(10, 3)), "token_ids"),
])
def test_pool_names_a_bad_argument(kwargs, name):
    arguments = {"rows": torch.zeros(2, 3, dtype=torch.long), "features": torch.zeros(10, 4), **kwargs}
    with pytest.raises(ValueError, match=name):
        CandidatePool(arguments.pop("rows"), arguments.pop("features"), **arguments)


def test_loss_takes_a_pool_or_tensors_not_both():
    image = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    pool = CandidatePool(torch.zeros(3, 2, dtype=torch.long), torch.randn(5, 4))
    loss = BACLLoss(use_cla=False, sampler=BoundarySampler(num_negatives=1))
    with pytest.raises(ValueError, match="candidate_text_features must be None"):
        loss(image, image, 10.0, progress=0.5, candidate_text=pool, candidate_text_features=torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="candidate_image must be a CandidatePool"):
        loss(image, image, 10.0, progress=0.5, candidate_image=torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="candidate_text_tokens"):
        BACLLoss(sampler=BoundarySampler(num_negatives=1), cross_modal=torch.nn.Identity())(
            image, image, 10.0, progress=0.5, candidate_text_features=torch.randn(3, 2, 4),
            candidate_text_tokens=torch.randn(3, 5, 2, 6), image_tokens=torch.randn(3, 2, 6),
            text_tokens=torch.randn(3, 2, 6))
