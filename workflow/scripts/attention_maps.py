"""CLA's cross-attention for a few boundary negatives of a trained run: A+ (true caption), A-
(the negative), their per-token divergence and the truly wrong tokens, for fig_attention.py.

The examples are chosen without looking at the model (:func:`pick_examples`): one negative per
type, each from a different test sample, in the order of the split. Output JSON::

    {"method", "benchmark", "seed", "examples": [{"sample", "slot", "type", "positive_caption",
      "negative_caption", "positive_tokens", "negative_tokens", "wrong_tokens", "attention_positive"
      (Lt x Lx), "attention_negative", "token_divergence" (Lt), "most_divergent_token", "hit",
      "image" (H x W x 3 or null)}]}

Lt counts the valid tokens of both captions (start and end tokens included), Lx the valid x tokens.
"""

import logging
import os
from collections.abc import Callable

import numpy as np
import torch

from joblog import redirect_to_log
from paper_common import write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tokenizer must not reach a hub


def pick_examples(negatives: list[list[dict]], max_examples: int = 4) -> list[tuple[int, int]]:
    """(sample, slot) of one negative per type, each from a different sample: walking the samples
    in order, each takes its first negative of a type not yet shown that has a wrong word; at most
    ``max_examples`` (default 4: the image benchmark's four negative types)."""
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive integer, got {max_examples!r}")
    chosen, seen = [], set()
    for sample, records in enumerate(negatives):
        slot = next((slot for slot, record in enumerate(records)
                     if record["type"] not in seen and record["wrong_words"]), None)
        if slot is not None:
            seen.add(records[slot]["type"])
            chosen.append((sample, slot))
            if len(chosen) == max_examples:
                return chosen
    if not chosen:
        raise ValueError("no boundary negative with a wrong word: nothing to show")
    return chosen


def token_strings(ids, decode: Callable[[int], str]) -> list[str]:
    """Readable token strings of a token-id row; padding (id 0) is dropped."""
    return [decode(int(i)) for i in ids if int(i) != 0]


@torch.no_grad()
def attention_examples(aligner, features, captions: list[str], negatives: list[list[dict]],
                       examples: list[tuple[int, int]], tokens_of: Callable[[str], list[str]],
                       images: np.ndarray | None = None) -> list[dict]:
    """A+ / A- of each (sample, slot) in ``examples``.

    Args:
        aligner: a trained aligner with a cross-modal Transformer (``local_attention``).
        features: the test FeatureSet with token features and boundary negatives.
        captions: the dataset's true caption per sample.
        negatives: the dataset's negatives per sample, in the feature set's slot order.
        tokens_of: caption -> its token strings as the text tower sees them (start/end included).
        images: optional (N, H, W, 3) uint8 images shown beside the maps.
    """
    from bacl.attention import attention_divergence, most_divergent_token

    if getattr(aligner, "cross_modal", None) is None:
        raise ValueError(f"{type(aligner).__name__} has no cross-modal Transformer: no attention to show")
    needed = ["x_tokens", "x_token_mask", "text_tokens", "text_token_mask", "negative_text_tokens",
              "negative_text_token_mask", "negative_mask", "negative_wrong_tokens"]
    missing = [name for name in needed if name not in features]
    if missing:
        raise ValueError(f"feature set {features.source} lacks {missing}")
    if not len(captions) == len(negatives) == len(features):
        raise ValueError(f"captions ({len(captions)}) and negatives ({len(negatives)}) must have one entry per "
                         f"sample of the feature set ({len(features)})")
    aligner.eval()
    out = []
    for sample, slot in examples:
        if not (0 <= sample < len(features) and 0 <= slot < len(negatives[sample])):
            raise ValueError(f"example (sample {sample}, slot {slot}) is not a boundary negative of the dataset")
        if int(features["negative_mask"][sample].sum()) != len(negatives[sample]):
            raise ValueError(f"sample {sample}: the feature set has {int(features['negative_mask'][sample].sum())} "
                             f"negative slots, the dataset {len(negatives[sample])}: they are not the same split")
        record = negatives[sample][slot]
        x_tokens, x_mask = features["x_tokens"][[sample]].float(), features["x_token_mask"][[sample]]
        positive_mask = features["text_token_mask"][[sample]]
        negative_mask = features["negative_text_token_mask"][sample, [slot]]
        a_pos = aligner.local_attention(x_tokens, x_mask, features["text_tokens"][[sample]].float(), positive_mask)
        a_neg = aligner.local_attention(x_tokens, x_mask, features["negative_text_tokens"][sample, [slot]].float(),
                                        negative_mask)
        both = positive_mask & negative_mask
        per_token = attention_divergence(a_pos, a_neg, both[:, :, None] & x_mask[:, None, :]).sum(-1)[0]
        divergent = int(most_divergent_token(a_pos, a_neg, both)[0])
        wrong = torch.nonzero(features["negative_wrong_tokens"][sample, slot]).flatten().tolist()
        text_rows = int(both.sum())  # valid tokens are a prefix of the sequence
        x_columns = x_mask[0].nonzero().flatten()
        positive_tokens, negative_tokens = tokens_of(captions[sample]), tokens_of(record["caption"])
        if (len(positive_tokens), len(negative_tokens)) != (int(positive_mask.sum()), int(negative_mask.sum())):
            raise ValueError(f"sample {sample} slot {slot}: the tokenizer gives {len(positive_tokens)} and "
                             f"{len(negative_tokens)} tokens, the feature set {int(positive_mask.sum())} and "
                             f"{int(negative_mask.sum())}: not the text tower's tokenizer")
        out.append({
            "sample": sample, "slot": slot, "type": record["type"], "positive_caption": captions[sample],
            "negative_caption": record["caption"],
            "positive_tokens": positive_tokens, "negative_tokens": negative_tokens, "wrong_tokens": wrong,
            "attention_positive": a_pos[0, :text_rows][:, x_columns].tolist(),
            "attention_negative": a_neg[0, :text_rows][:, x_columns].tolist(),
            "token_divergence": per_token[:text_rows].tolist(), "most_divergent_token": divergent,
            "hit": divergent in wrong, "image": None if images is None else np.asarray(images[sample]).tolist(),
        })
    return out


def main(snakemake) -> None:
    import open_clip
    from safetensors.torch import load_file

    import bacl.encoders  # noqa: F401 (registers the small towers' configs with open_clip)
    from bacl.aligners import build_aligner
    from bacl.config import load_config, method_settings
    from bacl.data.synthetic import load_dataset
    from bacl.featureset import FeatureSet

    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    config = load_config(snakemake.input.config)
    settings = method_settings(config, params.method)
    features = FeatureSet.load(snakemake.input.features)
    aligner = build_aligner(settings["spec"], features.dims, bacl=settings["bacl"], transformer=settings["transformer"])
    aligner.load_state_dict(load_file(snakemake.input.weights))
    dataset = load_dataset(snakemake.input.data)
    tokenizer = open_clip.get_tokenizer(params.tokenizer)
    length = features["text_tokens"].shape[1]

    def decode(token_id: int) -> str:
        text = tokenizer.decoder[token_id]
        return bytearray(tokenizer.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", "")

    def tokens_of(caption: str) -> list[str]:
        return token_strings(tokenizer([caption], context_length=length)[0], decode)

    examples = pick_examples(dataset.negatives, params.max_examples)
    images = getattr(dataset, "images", None)
    maps = attention_examples(aligner, features, list(dataset.captions), dataset.negatives, examples, tokens_of,
                              images)
    write_json(snakemake.output[0], {"method": params.method, "benchmark": params.benchmark, "seed": params.seed,
                                     "examples": maps})
    logging.info("attention maps of %d boundary negatives: hits %s", len(maps), [m["hit"] for m in maps])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
