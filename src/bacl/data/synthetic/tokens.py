"""Mapping caption word positions to text-token positions, for any word-wise tokenizer.

Negatives record wrong words as indices into ``caption.split()``; attention error localisation
needs them as positions in the token sequence the text tower sees. The mapping takes
``encode_word`` (a word -> its token ids, e.g. ``open_clip.tokenizer.SimpleTokenizer().encode``),
so it is independent of the tokenizer. It assumes that the tokenizer encodes a caption of
space-separated words as the concatenation of the words' encodings after ``start`` leading
tokens (1 for open_clip's start-of-text token); that holds for open_clip's ``SimpleTokenizer``,
which applies BPE to each word separately, and the tests check it on every vocabulary word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["word_to_token_positions", "word_token_spans"]


def word_token_spans(caption: str, encode_word: Callable[[str], Sequence[int]], start: int = 1) -> list[range]:
    """For each word of ``caption.split()``, the range of its token positions (BPE may split a word)."""
    if not isinstance(caption, str) or not caption.split():
        raise ValueError(f"caption must be a non-empty str, got {caption!r}")
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start={start!r} must be an int >= 0")
    spans, position = [], start
    for word in caption.split():
        n_tokens = len(encode_word(word))
        if n_tokens < 1:
            raise ValueError(f"encode_word({word!r}) returned no tokens")
        spans.append(range(position, position + n_tokens))
        position += n_tokens
    return spans


def word_to_token_positions(caption: str, word_positions: Sequence[int], encode_word: Callable[[str], Sequence[int]],
                            start: int = 1, context_length: int | None = None) -> list[int]:
    """Sorted token positions of the words at ``word_positions`` (indices into ``caption.split()``).

    With ``context_length``, raises ``ValueError`` if the caption plus its ``start`` tokens and an
    end token would not fit, since the mapped positions would then point past truncation.
    """
    spans = word_token_spans(caption, encode_word, start)
    bad = [p for p in word_positions if not isinstance(p, int) or not 0 <= p < len(spans)]
    if bad:
        raise ValueError(f"word_positions {bad} are not word indices of a {len(spans)}-word caption")
    if context_length is not None and spans[-1].stop + 1 > context_length:
        raise ValueError(f"caption needs {spans[-1].stop + 1} tokens, more than context_length={context_length}")
    return sorted({t for p in word_positions for t in spans[p]})
