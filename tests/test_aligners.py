"""The aligners and the BACL plug-in: each learns on features with learnable structure, starts
from the frozen alignment, and wires its loss terms and parameters as documented."""

import json

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from fixtures import held_out_contrastive_loss, latent_features, tiny_config
from hypothesis import given
from open_clip.loss import ClipLoss
from sibling_fixtures import sibling_batch, sibling_data, sibling_dims

from bacl.aligners import BLIPAligner, GRAMAligner, add_bacl, build_aligner
from bacl.aligners.blip import similarity_drawn_negatives
from bacl.aligners.gram import gram_volume, paired_gram_volume
from bacl.aligners.m3jepa import MixtureOfExperts
from bacl.config import method_settings, validate_config
from bacl.featureset import FeatureSet
from bacl.train import TrainSettings, train

EXPERTS = {"num_experts": 4, "top_k": 2}  # a tiny mixture: 4 experts, top-2 routing
# case name -> (method spec, whether the split has separate video and audio modalities, loss terms)
CASES = {
    "clip": ({"aligner": "clip"}, False, {"contrastive_loss"}),
    "blip": ({"aligner": "blip"}, False, {"contrastive_loss", "match_loss"}),
    "gram_video_audio": ({"aligner": "gram"}, True, {"contrastive_loss"}),
    "gram_single_x": ({"aligner": "gram"}, False, {"contrastive_loss"}),
    "m3jepa": ({"aligner": "m3jepa", "options": EXPERTS}, False, {"contrastive_loss", "regression_loss"}),
    "clip_bacl": ({"aligner": "clip", "bns": True, "cla": True}, False,
                  {"contrastive_loss", "policy_loss", "local_loss", "match_loss"}),
    "m3jepa_bacl": ({"aligner": "m3jepa", "bns": True, "cla": True, "options": EXPERTS}, False,
                    {"contrastive_loss", "regression_loss", "policy_loss", "local_loss", "match_loss"}),
    "clip_bns": ({"aligner": "clip", "bns": True}, False, {"contrastive_loss", "policy_loss"}),
    "clip_cla": ({"aligner": "clip", "cla": True}, False, {"contrastive_loss", "local_loss", "match_loss"}),
}


def make_aligner(spec: dict, dims, seed: int = 0):
    settings = method_settings(validate_config(tiny_config({"method": spec})), "method")
    torch.manual_seed(seed)
    return build_aligner(settings["spec"], dims, bacl=settings["bacl"], transformer=settings["transformer"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_lowers_the_held_out_contrastive_loss(case, tmp_path):
    spec, modalities, terms = CASES[case]
    train_set, test_set = (latent_features(n, seed=seed, modalities=modalities)
                           for n, seed in ((128, 0), (64, 1)))
    aligner = make_aligner(spec, train_set.dims)
    before = held_out_contrastive_loss(aligner, test_set)
    initial = {name: p.detach().clone() for name, p in aligner.named_parameters()}
    settings = TrainSettings(steps=30, batch_size=16, lr=1e-2, checkpoint_every=30, log_every=1)
    train(aligner, train_set, settings, tmp_path, progress=False)
    after = held_out_contrastive_loss(aligner, test_set)
    assert after < 0.85 * before, f"{case}: held-out loss {before:.3f} -> {after:.3f}"
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(log) == settings.steps
    for line in log:
        record = json.loads(line)
        assert terms <= set(record) and all(torch.isfinite(torch.tensor(record[t])) for t in terms | {"loss"})
    # every parameter (heads, policy, Transformer) is trained: each receives a gradient
    unchanged = [name for name, p in aligner.named_parameters() if torch.equal(p.detach(), initial[name])]
    assert not unchanged


@pytest.mark.parametrize("case", ["clip", "blip", "m3jepa", "clip_bacl", "m3jepa_bacl"])
def test_untrained_heads_are_the_frozen_alignment(case):
    """Residual heads start at zero (and M3-JEPA's experts at the identity): before training, every
    method embeds exactly as the frozen encoder, so methods differ only by what they learn."""
    features = latent_features(24)
    aligner = make_aligner(CASES[case][0], features.dims)
    torch.testing.assert_close(aligner.encode_x(features["x"]), F.normalize(features["x"], dim=-1))
    torch.testing.assert_close(aligner.encode_text(features["text"]), F.normalize(features["text"], dim=-1))


def test_gram_embeds_each_modality_apart():
    features = latent_features(24, modalities=True)
    aligner = make_aligner({"aligner": "gram"}, features.dims)
    batch = features.batch(torch.arange(5))
    embedded = aligner.encode_x(batch.x, batch.modalities)
    assert embedded.shape == (5, 2, 16)  # (B, modalities audio + video, E)
    torch.testing.assert_close(embedded[:, 0], F.normalize(batch.modalities["audio"], dim=-1))
    with pytest.raises(ValueError, match="video"):
        aligner.encode_x(batch.x, {"audio": batch.modalities["audio"]})


def test_clip_aligner_loss_is_open_clip_loss():
    features = latent_features(24)
    aligner = make_aligner({"aligner": "clip"}, features.dims)
    batch = features.batch(torch.arange(16))
    x, text = aligner.encode_x(batch.x), aligner.encode_text(batch.text)
    expected = ClipLoss()(x, text, aligner.scale())
    torch.testing.assert_close(aligner.loss(batch, 0.5)["contrastive_loss"], expected)


@given(k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_gram_volume_is_sqrt_det_of_the_gram_matrix(k, seed):
    gen = torch.Generator().manual_seed(seed)
    text = F.normalize(torch.randn(3, 5, generator=gen, dtype=torch.float64), dim=-1)
    others = F.normalize(torch.randn(4, k, 5, generator=gen, dtype=torch.float64), dim=-1)
    volumes = gram_volume(text, others, eps=0.0)
    for i in range(4):
        for j in range(3):
            vectors = torch.cat([text[j:j + 1], others[i]])
            expected = torch.linalg.det(vectors @ vectors.T).clamp_min(0).sqrt()
            torch.testing.assert_close(volumes[i, j], expected)
    paired = paired_gram_volume(text[None].expand(4, -1, -1), others, eps=0.0)
    torch.testing.assert_close(paired, volumes)


def test_a_caption_in_the_span_of_its_modalities_has_zero_volume():
    video, audio = F.normalize(torch.randn(2, 4, dtype=torch.float64), dim=-1)
    text = F.normalize(video + audio, dim=-1)
    assert gram_volume(text[None], torch.stack([video, audio])[None], eps=0.0).item() < 1e-6


def test_bacl_plugs_into_infonce_aligners_only():
    dims = latent_features(24).dims
    for name in ("gram", "zero_shot"):
        with pytest.raises(ValueError, match="cannot take BACL"):
            build_aligner({"aligner": name, "bns": True}, dims)
    with pytest.raises(ValueError, match="InfoNCE"):
        add_bacl(GRAMAligner(dims), dims, use_bns=True, use_cla=False)
    with pytest.raises(ValueError, match="unknown"):
        build_aligner({"aligner": "nope"}, dims)
    with pytest.raises(ValueError, match="bogus"):
        build_aligner({"aligner": "clip", "bns": True}, dims, bacl={"bogus": 1})


def test_bacl_settings_reach_the_sampler_and_the_loss():
    dims = latent_features(24).dims
    schedule = {"alpha_early": 0.2, "alpha_late": -0.4, "steepness": 3.0}
    aligner = build_aligner({"aligner": "clip", "bns": True, "cla": True}, dims,
                            bacl={"num_negatives": 3, "schedule": schedule, "lambda_local": 0.5},
                            transformer={"width": 16, "depth": 1, "heads": 2})
    sampler = aligner.contrastive.sampler
    assert sampler.num_negatives == 3 and (sampler.schedule.alpha_early, sampler.schedule.steepness) == (0.2, 3.0)
    assert aligner.contrastive.lambda_local == 0.5 and len(aligner.cross_modal.layers) == 1
    assert aligner.has_match_head


def test_cla_on_blip_shapes_its_matching_transformer():
    dims = latent_features(24).dims
    aligner = build_aligner({"aligner": "blip", "cla": True}, dims, transformer={"width": 16, "depth": 1, "heads": 2})
    assert isinstance(aligner, BLIPAligner) and aligner.contrastive.cross_modal is aligner.matcher


# Every method with a cross-modal Transformer (K = 3 negatives: a sample's three siblings fit its pool).
TRANSFORMER_METHODS = {"blip": {"aligner": "blip"}, "clip_cla": {"aligner": "clip", "cla": True},
                       "clip_bacl": {"aligner": "clip", "bns": True, "cla": True},
                       "m3jepa_bacl": {"aligner": "m3jepa", "bns": True, "cla": True, "options": EXPERTS}}


def _train_on_siblings(spec: dict, shuffled: bool, steps: int = 200) -> tuple[object, float]:
    """Train on sibling groups (8 whole groups per batch); ``shuffled`` pairs every caption with a
    random sample's x, drawn afresh each step (nothing to learn or memorise). Returns the aligner
    and its mean match loss over the last 10 steps."""
    train_set = sibling_data(64, seed=0)
    torch.manual_seed(0)
    aligner = build_aligner(spec, sibling_dims(), bacl={"num_negatives": 3},
                            transformer={"width": 32, "depth": 2, "heads": 2})
    optimizer = torch.optim.AdamW(aligner.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        rows = (torch.randperm(64, generator=gen)[:8, None] * 4 + torch.arange(4)).flatten()
        order = torch.randperm(len(train_set["x"]), generator=gen) if shuffled else None
        terms = aligner.loss(sibling_batch(train_set, rows, order), step / steps, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
        losses.append(terms["match_loss"].item())
    return aligner, sum(losses[-10:]) / 10


def _sibling_accuracy(aligner, data) -> tuple[float, int]:
    """Share of (base scene, sibling) pairs where the base caption outscores the sibling's caption."""
    base = torch.arange(0, len(data["x"]), 4)
    x, x_mask = data["x_tokens"][base], data["x_token_mask"][base]
    with torch.no_grad():
        positive = aligner.match_logits(x, x_mask, data["text_tokens"][base], data["text_token_mask"][base])
        wins = [positive > aligner.match_logits(x, x_mask, data["text_tokens"][base + k], data["text_token_mask"][base + k])
                for k in (1, 2, 3)]
    wins = torch.cat(wins)
    return wins.float().mean().item(), wins.numel()


@pytest.mark.parametrize("method", sorted(TRANSFORMER_METHODS))
def test_match_head_learns_from_the_methods_own_negatives(method):
    """On one-edit sibling data, every method's match head learns: its training match loss ends
    below that of the same model trained with shuffled labels (which stays at the loss's chance
    level: log(1 + K) listwise, the base-rate entropy for BLIP's BCE), and on held-out groups it
    tells a scene's caption from its siblings' better than the shuffled model, by more than three
    standard errors of the difference (no tuned threshold)."""
    spec = TRANSFORMER_METHODS[method]
    trained, trained_loss = _train_on_siblings(spec, shuffled=False)
    control, control_loss = _train_on_siblings(spec, shuffled=True)
    assert trained_loss < control_loss, f"{method}: match loss {trained_loss:.3f} vs shuffled {control_loss:.3f}"
    held_out = sibling_data(32, seed=1)
    (accuracy, pairs), (control_accuracy, _) = _sibling_accuracy(trained, held_out), _sibling_accuracy(control, held_out)
    standard_error = (2 * 0.25 / pairs) ** 0.5  # of a difference of two proportions near 1/2, at most
    assert accuracy - control_accuracy > 3 * standard_error, f"{method}: {accuracy:.3f} vs shuffled {control_accuracy:.3f}"


def _reached(term: torch.Tensor, parameters: dict) -> set[str]:
    """Names of the ``parameters`` that ``term``'s gradient reaches (non-zero)."""
    grads = torch.autograd.grad(term, list(parameters.values()), retain_graph=True, allow_unused=True)
    return {name for (name, _), grad in zip(parameters.items(), grads) if grad is not None and grad.abs().sum() > 0}


@pytest.mark.parametrize("method", ["clip_bacl", "m3jepa_bacl", "blip"])
def test_each_loss_term_reaches_only_its_own_parameters(method):
    """Gradient paths: the contrastive (and regression) terms train the heads, the policy only its
    own objective, the match and CLA terms only the cross-modal Transformer (it reads frozen tokens,
    so nothing of the embedding); CLA never reaches the match head, which reads no attention map."""
    data = sibling_data(8, seed=0)
    aligner = build_aligner(TRANSFORMER_METHODS[method], sibling_dims(), bacl={"num_negatives": 3},
                            transformer={"width": 16, "depth": 2, "heads": 2})
    with torch.no_grad():  # heads away from their zero-initialised last layer, so gradients can pass
        for name, parameter in aligner.named_parameters():
            if "cross_modal" not in name and "matcher" not in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    terms = aligner.loss(sibling_batch(data, torch.arange(32)), 0.5, torch.Generator().manual_seed(0))
    parameters = dict(aligner.named_parameters())
    transformer = {n for n in parameters if n.startswith(("contrastive.cross_modal.", "matcher."))}
    policy = {n for n in parameters if n.startswith("contrastive.sampler.")}
    heads = set(parameters) - transformer - policy
    assert _reached(terms["contrastive_loss"], parameters) <= heads
    assert _reached(terms["match_loss"], parameters) <= transformer
    assert {n for n in transformer if "match_head" in n} <= _reached(terms["match_loss"], parameters)
    if "policy_loss" in terms:
        assert _reached(terms["policy_loss"], parameters) == policy
    if "local_loss" in terms:
        local = _reached(terms["local_loss"], parameters)
        assert local and local <= transformer and not any("match_head" in n for n in local)
    if "regression_loss" in terms:
        assert _reached(terms["regression_loss"], parameters) <= heads


def test_blip_draws_its_negatives_with_the_contrastive_temperature():
    """softmax(similarity * logit scale), as ALBEF/BLIP's softmax(sim / temp): with a large scale
    the hardest in-batch negative is drawn almost always; at scale 1 the draw is near uniform."""
    gen = torch.Generator().manual_seed(0)
    similarity = torch.rand(1, 8, generator=gen) * 0.5
    similarity[0, 3] = 0.9  # the hardest negative
    same = torch.zeros(1, 8, dtype=torch.bool)
    same[0, 0] = True
    hardest = [int(similarity_drawn_negatives(scale * similarity, same, torch.Generator().manual_seed(s)))
               for scale in (100.0, 1.0) for s in range(200)]
    assert sum(h == 3 for h in hardest[:200]) > 190 and sum(h == 3 for h in hardest[200:]) < 60
    # the positive's weight never crowds out the negatives (no underflow to a uniform draw)
    similarity[0, 0] = 1.0
    assert int(similarity_drawn_negatives(100.0 * similarity, same, torch.Generator().manual_seed(1))) == 3


def test_similarity_drawn_negatives_avoid_positives_and_repeat_with_the_generator():
    similarity = torch.randn(6, 6)
    same = torch.eye(6, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    draws = torch.stack([similarity_drawn_negatives(similarity, same, torch.Generator().manual_seed(seed))
                         for seed in range(50)])
    assert not same[torch.arange(6).expand(50, -1), draws].any()
    again = similarity_drawn_negatives(similarity, same, torch.Generator().manual_seed(7))
    assert torch.equal(again, draws[7])


def test_blip_never_matches_a_caption_against_its_duplicate():
    """Rows 0 and 1 share a caption (caption_id, identical text features); row 2 differs. The
    ITM negatives must come from other captions: the only one here is row 2's."""
    features = latent_features(24, duplicate_pairs=True)
    aligner = make_aligner({"aligner": "blip"}, features.dims)
    batch = features.batch(torch.tensor([0, 1, 2]))
    calls = []
    original = aligner.match_logits

    def spy(x_tokens, x_mask, text_tokens, text_mask, context_index):
        calls.append((x_tokens[context_index], text_tokens))  # the x of each pair
        return original(x_tokens, x_mask, text_tokens, text_mask, context_index)

    aligner.match_logits = spy
    for seed in range(10):
        calls.clear()
        aligner.loss(batch, 0.5, torch.Generator().manual_seed(seed))
        (pair_x, pair_text), = calls  # the 3 x 3 pairs: positives, negative texts, negative x
        negative_text, negative_x = pair_text[3:6], pair_x[6:9]
        assert torch.equal(negative_text[:2], batch.text_tokens[[2, 2]]), f"seed {seed}: duplicate caption drawn"
        assert torch.equal(negative_x[:2], batch.x_tokens[[2, 2]]), f"seed {seed}: x of a duplicate caption drawn"


def test_mixture_of_experts_starts_at_the_identity_and_checks_top_k():
    experts = MixtureOfExperts(8, 8, num_experts=4, top_k=2)
    inputs = torch.randn(3, 5, 8)
    torch.testing.assert_close(experts(inputs), inputs)
    with pytest.raises(ValueError, match="top_k"):
        MixtureOfExperts(8, 8, num_experts=2, top_k=3)


def test_mixture_of_experts_routes_each_row_to_its_top_k_experts_only():
    torch.manual_seed(0)
    experts = MixtureOfExperts(6, 5, num_experts=4, top_k=2)
    torch.nn.init.normal_(experts.second)
    inputs = torch.randn(7, 6, requires_grad=True)
    scores = experts.gate(inputs)
    top = scores.topk(2, dim=-1)
    gates = torch.zeros_like(scores).scatter(-1, top.indices, torch.softmax(top.values, dim=-1))
    # The dense reference: every expert on every row, weighted by a gate that is 0 off the top k.
    dense = torch.einsum("ne,neh,eho->no", gates, F.gelu(torch.einsum("nd,edh->neh", inputs, experts.first)),
                         experts.second)
    routed = experts(inputs)
    torch.testing.assert_close(routed, dense)
    (routed_grad,) = torch.autograd.grad(routed.square().sum(), inputs)
    (dense_grad,) = torch.autograd.grad(dense.square().sum(), inputs)
    torch.testing.assert_close(routed_grad, dense_grad)


def test_m3jepa_regression_pulls_only_the_prediction():
    features = latent_features(24)
    aligner = make_aligner({"aligner": "m3jepa", "options": {**EXPERTS, "alpha": 1.0}}, features.dims)
    assert aligner.contrastive_weight == 0.0
    with torch.no_grad():  # move the predictor off the identity so the regression is not zero
        aligner.predictor.second.normal_()
    aligner.loss(features.batch(torch.arange(8)), 0.5)["regression_loss"].backward()
    assert aligner.text_head.mlp[-1].weight.grad is None or not aligner.text_head.mlp[-1].weight.grad.any()
    assert aligner.predictor.second.grad.any()
    with pytest.raises(ValueError, match="alpha"):
        make_aligner({"aligner": "m3jepa", "options": {"alpha": 1.5}}, features.dims)
