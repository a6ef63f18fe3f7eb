"""CLA: the cross-modal Transformer's attention maps and masks, the local loss, the divergent token."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from bacl.attention import (
    CrossModalOutput,
    CrossModalTransformer,
    attention_divergence,
    contrastive_local_attention_loss,
    most_divergent_token,
)

TEXT_DIM, CONTEXT_DIM = 6, 5


def transformer(depth=2, heads=2, width=8, seed=0):
    torch.manual_seed(seed)
    return CrossModalTransformer(TEXT_DIM, CONTEXT_DIM, width=width, depth=depth, heads=heads).eval()


def random_mask(gen, batch, length):
    """(B, L) bool with at least one True per row."""
    mask = torch.rand(batch, length, generator=gen) < 0.6
    mask[torch.arange(batch), torch.randint(length, (batch,), generator=gen)] = True
    return mask


def token_batch(seed, batch, text_length, context_length):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, text_length, TEXT_DIM, generator=gen),
            torch.randn(batch, context_length, CONTEXT_DIM, generator=gen),
            random_mask(gen, batch, text_length), random_mask(gen, batch, context_length))


def attention_pair(seed, batch, text_length, context_length):
    """Two random (B, Lt, Lc) softmax maps and a random pair mask with a valid entry per sample."""
    gen = torch.Generator().manual_seed(seed)
    positive = torch.randn(batch, text_length, context_length, generator=gen).mul(2).softmax(-1)
    negative = torch.randn(batch, text_length, context_length, generator=gen).mul(2).softmax(-1)
    mask = random_mask(gen, batch, text_length * context_length).view(batch, text_length, context_length)
    return positive, negative, mask


def reference_loss(positive, negative, mask, beta, omega_size, eps=1e-6):
    """The CLA loss written out per sample with Python sorting (ties to the lower flat index)."""
    # Ranked by dA in the inputs' float32, as the loss ranks it: rows of two keys tie exactly in
    # exact arithmetic (|p0 - n0| = |p1 - n1|), and only float32 decides which one comes first.
    def rows(x):
        return x.reshape(len(x), -1).tolist()

    losses = []
    for p, n, d, m in zip(rows(positive), rows(negative), rows((positive - negative).abs()), rows(mask), strict=True):
        valid = [index for index in range(len(p)) if m[index]]
        omega = sorted(valid, key=lambda index: (-d[index], index))[:omega_size]
        terms = [-math.log(max(n[i] * (1 + beta * abs(p[i] - n[i])), eps)) for i in omega]
        losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses)


sizes = dict(seed=st.integers(0, 10_000), batch=st.integers(1, 4), text_length=st.integers(1, 5),
             context_length=st.integers(1, 6))


@given(**sizes, depth=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]))
def test_output_shapes(seed, batch, text_length, context_length, depth, heads):
    text, context, text_mask, context_mask = token_batch(seed, batch, text_length, context_length)
    out = transformer(depth=depth, heads=heads)(text, context, text_mask, context_mask)
    assert out.match_logit.shape == (batch,)
    assert out.attention.shape == (batch, text_length, context_length)
    assert len(out.layer_attentions) == depth
    assert all(a.shape == (batch, heads, text_length, context_length) for a in out.layer_attentions)
    assert out.layer_attentions[-1] is out.layer_attentions[depth - 1]  # shaped once, when read
    assert len(out.layer_attentions[1:]) == depth - 1
    assert out.text_states.shape == (batch, text_length, 8)
    torch.testing.assert_close(out.attention, out.layer_attentions[-1].mean(1))


@given(**sizes)
def test_attention_is_a_distribution_over_valid_keys(seed, batch, text_length, context_length):
    text, context, text_mask, context_mask = token_batch(seed, batch, text_length, context_length)
    out = transformer()(text, context, text_mask, context_mask)
    for attention in (out.attention, *out.layer_attentions):
        attention = attention if attention.dim() == 4 else attention[:, None]
        assert (attention >= 0).all()
        assert (attention.masked_select(~context_mask[:, None, None, :]) == 0).all()
        assert (attention.masked_select(~text_mask[:, None, :, None]) == 0).all()
        row_sums = attention.sum(-1)
        torch.testing.assert_close(row_sums, text_mask[:, None, :].float().expand_as(row_sums))


@given(**sizes)
def test_padding_does_not_change_valid_outputs(seed, batch, text_length, context_length):
    text, context, text_mask, context_mask = token_batch(seed, batch, text_length, context_length)
    model = transformer()
    before = model(text, context, text_mask, context_mask)
    gen = torch.Generator().manual_seed(seed + 1)
    noisy_text = torch.where(text_mask[..., None], text, 100 * torch.randn(text.shape, generator=gen))
    noisy_context = torch.where(context_mask[..., None], context, 100 * torch.randn(context.shape, generator=gen))
    after = model(noisy_text, noisy_context, text_mask, context_mask)
    torch.testing.assert_close(after.match_logit, before.match_logit)
    torch.testing.assert_close(after.attention, before.attention)
    torch.testing.assert_close(after.text_states, before.text_states)
    torch.testing.assert_close(after.layer_attentions, before.layer_attentions)


def test_padded_sample_equals_the_unpadded_one():
    text, context, _, _ = token_batch(3, 1, 6, 7)
    model = transformer()
    short = model(text[:, :4], context[:, :5])
    text_mask, context_mask = torch.arange(6)[None] < 4, torch.arange(7)[None] < 5
    padded = model(text, context, text_mask, context_mask)
    torch.testing.assert_close(padded.match_logit, short.match_logit)
    torch.testing.assert_close(padded.attention[:, :4, :5], short.attention)
    torch.testing.assert_close(padded.text_states[:, :4], short.text_states)


def test_context_positions_tell_a_sequence_from_its_reversal():
    """Without context positions the Transformer reads the context as a set (a video clip and its
    time reversal score the same); with them it does not, and padding still changes nothing."""
    text, context, _, _ = token_batch(4, 2, 5, 6)
    reversed_context = context.flip(1)
    without = transformer()
    torch.testing.assert_close(without(text, reversed_context).match_logit, without(text, context).match_logit)
    torch.manual_seed(0)
    with_positions = CrossModalTransformer(text_dim=text.shape[-1], context_dim=context.shape[-1], width=16, heads=2,
                                           depth=2, context_positions=8)
    assert not torch.allclose(with_positions(text, reversed_context).match_logit, with_positions(text, context).match_logit)
    padded = torch.cat([context, torch.zeros(2, 2, context.shape[-1])], 1)
    mask = torch.arange(8)[None].expand(2, -1) < 6
    torch.testing.assert_close(with_positions(text, padded, context_mask=mask).match_logit,
                               with_positions(text, context).match_logit)
    with pytest.raises(ValueError, match="context_positions"):
        with_positions(text, torch.cat([padded, context[:, :1]], 1))


def test_cross_attention_matches_scaled_dot_product_attention():
    """The probabilities returned are the ones that weight the values (checked against torch's SDPA)."""
    text, context, text_mask, context_mask = token_batch(5, 3, 4, 6)
    text_mask[:] = True  # SDPA gives padded queries non-zero rows; ours are zeroed, compared on valid ones
    model = transformer(heads=2)
    captured = {}
    block = model.layers[-1].cross_attention
    block.register_forward_hook(lambda module, inputs, output: captured.update(inputs=inputs, output=output))
    out = model(text, context, text_mask, context_mask)
    queries, keys = captured["inputs"][:2]

    def split(x):  # (B, L, W) -> (B, heads=2, L, W / 2)
        return x.view(*x.shape[:2], 2, -1).transpose(1, 2)

    q = split(block.query(queries))
    k, v = (split(part) for part in block.key_value(keys).chunk(2, dim=-1))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=context_mask[:, None, None, :])
    expected = block.out(expected.transpose(1, 2).reshape(queries.shape))
    torch.testing.assert_close(captured["output"][0], expected)
    torch.testing.assert_close(captured["output"][1], out.layer_attentions[-1])


@given(seed=st.integers(0, 10_000), texts=st.integers(1, 9), contexts=st.integers(1, 4),
       text_length=st.integers(1, 5), context_length=st.integers(1, 6), positions=st.booleans())
def test_a_shared_context_gives_the_outputs_and_gradients_of_its_copies(seed, texts, contexts, text_length,
                                                                         context_length, positions):
    """``context_index`` (each context projected once, its captions' queries stacked) gives every
    output and every parameter's gradient of pairing each text with a copy of its context."""
    text, _, text_mask, _ = token_batch(seed, texts, text_length, context_length)
    _, context, _, context_mask = token_batch(seed + 1, contexts, text_length, context_length)
    index = torch.randint(contexts, (texts,), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = CrossModalTransformer(TEXT_DIM, CONTEXT_DIM, width=8, depth=2, heads=2,
                                  context_positions=context_length if positions else 0)
    weights = torch.randn(texts, text_length, context_length, generator=torch.Generator().manual_seed(seed + 2))

    def run(**pairing):
        model.zero_grad()
        out = model(text, **pairing)
        # every output reaches the loss, so every path's gradient is compared (gradients of order 1,
        # so that the default tolerances are float32 rounding)
        loss = (out.match_logit.sum() + (weights * out.attention).sum() + out.text_states.square().mean()
                + sum((a * weights[:, None]).sum() for a in out.layer_attentions))
        loss.backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters()}

    shared, shared_grads = run(context_tokens=context, text_mask=text_mask, context_mask=context_mask,
                               context_index=index)
    copied, copied_grads = run(context_tokens=context[index], text_mask=text_mask, context_mask=context_mask[index])
    for name in CrossModalOutput._fields:
        torch.testing.assert_close(getattr(shared, name), getattr(copied, name), msg=name)
    assert shared_grads.keys() == copied_grads.keys()
    for name, grad in copied_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, msg=name)


@pytest.mark.parametrize("index, message", [
    (torch.tensor([0, 1, 1.0]), "context_index must be an integer tensor of shape \\(3,\\)"),
    (torch.tensor([0, 1]), "context_index must be an integer tensor of shape \\(3,\\)"),
    (torch.tensor([True, False, True]), "context_index must be an integer tensor"),
    (torch.tensor([0, 2, 1]), "context_index must index the 2 rows of context_tokens"),
    (torch.tensor([0, -1, 1]), "context_index must index the 2 rows of context_tokens"),
    (None, "context_tokens has batch size 2, text_tokens has 3"),
])
def test_bad_context_index_is_named(index, message):
    text, context, _, _ = token_batch(0, 3, 4, 5)
    with pytest.raises(ValueError, match=message):
        transformer()(text, context[:2], context_index=index)


def test_gradients_reach_the_transformer_through_the_local_loss():
    text, context, text_mask, context_mask = token_batch(1, 4, 5, 6)
    negative_text = torch.randn(text.shape, generator=torch.Generator().manual_seed(9))
    model = transformer()
    positive = model(text, context, text_mask, context_mask)
    negative = model(negative_text, context, text_mask, context_mask)
    pair_mask = text_mask[:, :, None] & context_mask[:, None, :]
    contrastive_local_attention_loss(positive.attention, negative.attention, mask=pair_mask).backward()
    reached = [model.text_projection[0].weight, model.context_projection[0].weight,
               *(layer.cross_attention.query.weight for layer in model.layers)]
    for parameter in reached:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0
    assert model.match_head[1].weight.grad is None  # the match head plays no part in the attention


def test_learns_a_cross_modal_match_quickly():
    """Positive texts are copies of some context tokens, negatives fresh noise: only attention can tell."""
    torch.manual_seed(0)
    model = CrossModalTransformer(TEXT_DIM, TEXT_DIM, width=16, depth=1, heads=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def pairs(batch):
        context = torch.randn(batch, 4, TEXT_DIM, generator=gen)
        positive = context[:, torch.randperm(4, generator=gen)[:2]]
        negative = torch.randn(batch, 2, TEXT_DIM, generator=gen)
        target = torch.cat([torch.ones(batch), torch.zeros(batch)])
        return torch.cat([positive, negative]), torch.cat([context, context]), target

    for _ in range(200):
        text, context, target = pairs(32)
        loss = F.binary_cross_entropy_with_logits(model(text, context).match_logit, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    text, context, target = pairs(256)
    with torch.no_grad():
        accuracy = ((model(text, context).match_logit > 0).float() == target).float().mean()
    assert accuracy > 0.9


# --- the contrastive local attention loss ---------------------------------------------------------


@given(**sizes, beta=st.floats(0, 5), omega_size=st.integers(1, 40))
def test_loss_matches_its_definition_and_is_finite(seed, batch, text_length, context_length, beta, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    out = contrastive_local_attention_loss(positive, negative, beta=beta, omega_size=omega_size, mask=mask,
                                           output_dict=True)
    assert torch.isfinite(out["local_loss"])
    assert out["local_loss"].item() == pytest.approx(reference_loss(positive, negative, mask, beta, omega_size),
                                                     rel=1e-5, abs=1e-5)
    torch.testing.assert_close(out["divergence"], attention_divergence(positive, negative, mask))
    assert out["omega_index"].shape == (batch, omega_size)


@given(**sizes, omega_size=st.integers(1, 40))
def test_masked_entries_are_never_in_omega(seed, batch, text_length, context_length, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    # Make every masked pair maximally divergent: a loss that ignored the mask would pick them.
    positive, negative = positive.masked_fill(~mask, 1.0), negative.masked_fill(~mask, 0.0)
    out = contrastive_local_attention_loss(positive, negative, omega_size=omega_size, mask=mask, output_dict=True)
    omega = out["omega_index"]
    used = omega >= 0
    flat_mask = mask.reshape(batch, -1)
    assert flat_mask.gather(1, omega.clamp_min(0))[used].all()
    # Omega takes min(omega_size, valid pairs) entries, without repeats
    torch.testing.assert_close(used.sum(1), flat_mask.sum(1).clamp_max(omega_size))
    assert all(len(set(row[row >= 0].tolist())) == int(row.ge(0).sum()) for row in omega)
    # the masked values play no part
    other = contrastive_local_attention_loss(positive.masked_fill(~mask, 0.5), negative.masked_fill(~mask, 0.3),
                                             omega_size=omega_size, mask=mask)
    torch.testing.assert_close(other, out["local_loss"])


@given(seed=st.integers(0, 10_000), beta=st.floats(0, 5), omega_size=st.integers(1, 12))
def test_no_divergence_means_no_amplification(seed, beta, omega_size):
    _, negative, _ = attention_pair(seed, 3, 4, 5)
    out = contrastive_local_attention_loss(negative, negative, beta=beta, omega_size=omega_size, output_dict=True)
    assert (out["divergence"] == 0).all()
    # all pairs tie, so Omega is the first omega_size flat indices, and A_b = A-
    assert torch.equal(out["omega_index"], torch.arange(omega_size).expand(3, -1))
    expected = -negative.reshape(3, -1)[:, :omega_size].log().mean()
    torch.testing.assert_close(out["local_loss"], expected)


def test_finite_for_exact_zeros_and_ones():
    positive = F.one_hot(torch.tensor([[0, 1, 2], [3, 3, 0]]), 4).float()
    negative = F.one_hot(torch.tensor([[1, 1, 3], [0, 2, 0]]), 4).float()
    for beta in (0.0, 1.0, 10.0):
        for omega_size in (1, 5, 12):
            leaves = positive.clone().requires_grad_(), negative.clone().requires_grad_()
            loss = contrastive_local_attention_loss(*leaves, beta=beta, omega_size=omega_size)
            loss.backward()
            assert torch.isfinite(loss) and all(torch.isfinite(leaf.grad).all() for leaf in leaves)
    # no divergence: Omega is each sample's first 8 pairs (rows 0 and 1), 6 of them at A- = 0, hence -log(eps)
    assert contrastive_local_attention_loss(negative, negative) == pytest.approx(-math.log(1e-6) * 6 / 8, rel=1e-6)


# beta is 0 or not so small that its gradient contribution underflows float32
@given(seed=st.integers(0, 10_000), beta=st.one_of(st.just(0.0), st.floats(1e-3, 1)), omega_size=st.integers(1, 12))
def test_loss_falls_as_negative_attention_grows_on_omega(seed, beta, omega_size):
    """For beta <= 1, A- * (1 + beta * |A+ - A-|) increases with A-: the gradient is < 0 on Omega, 0 elsewhere.
    A+ gets a gradient through dA, on Omega only, when beta > 0."""
    positive, negative, mask = attention_pair(seed, 2, 4, 5)
    positive, negative = positive.requires_grad_(), negative.requires_grad_()
    out = contrastive_local_attention_loss(positive, negative, beta=beta, omega_size=omega_size, mask=mask,
                                           output_dict=True)
    out["local_loss"].backward()
    gradient = negative.grad.reshape(2, -1)
    in_omega = torch.zeros_like(gradient, dtype=torch.bool)
    for row, indices in enumerate(out["omega_index"]):
        in_omega[row, indices[indices >= 0]] = True
    assert (gradient[in_omega] < 0).all() and (gradient[~in_omega] == 0).all()
    positive_gradient = positive.grad.reshape(2, -1)
    assert (positive_gradient[~in_omega] == 0).all()
    assert (positive_gradient[in_omega].abs().sum() > 0) == (beta > 0)


def test_loss_falls_when_negative_attention_grows_at_the_divergent_pair():
    positive = torch.tensor([[[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]])
    negative = torch.tensor([[[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]])
    before = contrastive_local_attention_loss(positive, negative, omega_size=2, output_dict=True)
    assert sorted(before["omega_index"][0].tolist()) == [0, 1]
    grown = negative.clone()
    grown[0, 0, 1] = 0.8  # A- grows where it already exceeds A+: the pair stays in Omega
    assert contrastive_local_attention_loss(positive, grown, omega_size=2) < before["local_loss"]


@given(**sizes, omega_size=st.integers(1, 12))
def test_permuting_the_batch_leaves_the_loss_unchanged(seed, batch, text_length, context_length, omega_size):
    positive, negative, mask = attention_pair(seed, batch, text_length, context_length)
    permutation = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        contrastive_local_attention_loss(positive[permutation], negative[permutation], omega_size=omega_size,
                                         mask=mask[permutation]),
        contrastive_local_attention_loss(positive, negative, omega_size=omega_size, mask=mask))


def test_half_precision_maps_are_scored_in_float32():
    positive, negative, mask = attention_pair(2, 3, 4, 5)
    positive, negative = positive.bfloat16(), negative.bfloat16()
    loss = contrastive_local_attention_loss(positive, negative, mask=mask)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, contrastive_local_attention_loss(positive.float(), negative.float(), mask=mask))


# --- the most divergent token -----------------------------------------------------------------------


def test_most_divergent_token_finds_the_swapped_word():
    # "a red cube left of a blue ball" vs its negative with "red" -> "green" (token 1): only
    # token 1's attention moves (from the red patch 0 to patch 2); token 4 is padding that moved more.
    positive = torch.full((2, 5, 3), 1 / 3)
    positive[:, 1] = torch.tensor([0.8, 0.1, 0.1])
    negative = positive.clone()
    negative[:, 1] = torch.tensor([0.1, 0.1, 0.8])
    negative[1, 4] = torch.tensor([0.0, 0.0, 1.0])
    positive[1, 4] = torch.tensor([1.0, 0.0, 0.0])
    text_mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    assert most_divergent_token(positive, negative, text_mask).tolist() == [1, 1]
    assert most_divergent_token(positive, negative).tolist() == [1, 4]


# --- bad input -----------------------------------------------------------------------------------------


def _nan_at_first(tensor):
    tensor = tensor.clone()
    tensor.view(-1)[0] = float("nan")
    return tensor


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda t, c, tm, cm: (t[..., :4], c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c[..., :4], tm, cm), "context_tokens"),
        (lambda t, c, tm, cm: (t[0], c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c[:1], tm, cm), "context_tokens"),
        (lambda t, c, tm, cm: (_nan_at_first(t), c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c * float("inf"), tm, cm), "context_tokens"),
        (lambda t, c, tm, cm: (t.long(), c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t.double(), c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c, tm.float(), cm), "text_mask"),
        (lambda t, c, tm, cm: (t, c, tm[:, :2], cm), "text_mask"),
        (lambda t, c, tm, cm: (t, c, tm, cm & False), "context_mask"),
        (lambda t, c, tm, cm: (t, c, tm.index_fill(0, torch.tensor([1]), False), cm), "text_mask"),
    ],
)
def test_bad_transformer_inputs_name_the_argument(change, name):
    with pytest.raises(ValueError, match=name):
        transformer()(*change(*token_batch(0, 2, 3, 4)))


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(width=0), "width"), (dict(depth=1.5), "depth"), (dict(heads=3), "heads"), (dict(text_dim=-1), "text_dim"),
     (dict(mlp_ratio=0.0), "mlp_ratio"), (dict(dropout=1.0), "dropout"), (dict(context_positions=-1), "context_positions"),
     (dict(context_positions=True), "context_positions")],
)
def test_bad_transformer_settings_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CrossModalTransformer(**{"text_dim": 4, "context_dim": 4, "width": 8, "heads": 2, **kwargs})


@pytest.mark.parametrize(
    "change, kwargs, name",
    [
        (lambda p, n, m: (p, n[:, :2], m), {}, "attn_neg"),
        (lambda p, n, m: (p[0], n, m), {}, "attn_pos"),
        (lambda p, n, m: (p + 1, n, m), {}, "attn_pos"),
        (lambda p, n, m: (p, -n, m), {}, "attn_neg"),
        (lambda p, n, m: (_nan_at_first(p), n, m), {}, "attn_pos"),
        (lambda p, n, m: (p, n, m.float()), {}, "mask"),
        (lambda p, n, m: (p, n, m & False), {}, "mask"),
        (lambda p, n, m: (p, n, m), dict(beta=-0.1), "beta"),
        (lambda p, n, m: (p, n, m), dict(beta=float("inf")), "beta"),
        (lambda p, n, m: (p, n, m), dict(omega_size=0), "omega_size"),
        (lambda p, n, m: (p, n, m), dict(omega_size=2.0), "omega_size"),
        (lambda p, n, m: (p, n, m), dict(eps=0.0), "eps"),
    ],
)
def test_bad_loss_inputs_name_the_argument(change, kwargs, name):
    positive, negative, mask = change(*attention_pair(0, 2, 3, 4))
    with pytest.raises(ValueError, match=name):
        contrastive_local_attention_loss(positive, negative, mask=mask, **kwargs)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p, n: attention_divergence(p, n, torch.ones(2, 3, 3, dtype=torch.bool)), "mask"),
        (lambda p, n: attention_divergence(p, n[:1]), "attn_neg"),
        (lambda p, n: most_divergent_token(p, n, torch.zeros(2, 3, dtype=torch.bool)), "text_mask"),
        (lambda p, n: most_divergent_token(p + 2, n), "attn_pos"),
    ],
)
def test_bad_divergence_inputs_name_the_argument(call, name):
    positive, negative, _ = attention_pair(0, 2, 3, 4)
    with pytest.raises(ValueError, match=name):
        call(positive, negative)
