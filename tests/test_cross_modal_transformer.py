"""The cross-modal Transformer: output shapes, attention maps over valid keys, masks and padding,
context positions, contexts shared by several captions (``context_index``), gradients, learning, bad input."""

import pytest
import torch
import torch.nn.functional as F
from attention_fixtures import nan_at_first, random_mask, sizes
from hypothesis import given
from hypothesis import strategies as st

from bacl.attention import CrossModalOutput, CrossModalTransformer, contrastive_local_attention_loss

TEXT_DIM, CONTEXT_DIM = 6, 5


def transformer(depth=2, heads=2, width=8, seed=0):
    torch.manual_seed(seed)
    return CrossModalTransformer(TEXT_DIM, CONTEXT_DIM, width=width, depth=depth, heads=heads).eval()


def token_batch(seed, batch, text_length, context_length):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, text_length, TEXT_DIM, generator=gen),
            torch.randn(batch, context_length, CONTEXT_DIM, generator=gen),
            random_mask(gen, batch, text_length), random_mask(gen, batch, context_length))


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


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda t, c, tm, cm: (t[..., :4], c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c[..., :4], tm, cm), "context_tokens"),
        (lambda t, c, tm, cm: (t[0], c, tm, cm), "text_tokens"),
        (lambda t, c, tm, cm: (t, c[:1], tm, cm), "context_tokens"),
        (lambda t, c, tm, cm: (nan_at_first(t), c, tm, cm), "text_tokens"),
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
