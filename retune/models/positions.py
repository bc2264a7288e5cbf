"""Position ids of the default model: where each token sits in the text's lines and segments.

With the ``"hierarchical"`` scheme (the first default model's) a token's position id is ``line * LINE + segment *
SEGMENT + column``: a newline ends a line (the token after it starts line+1, segment 0, column 0), a ``[`` starts a
new segment of its line (the ``[`` itself is column 0 of it), and every other token is the next column. RoPE sees
only differences of position ids, so every copy a recursive call makes (the problem's list minus its first element
into the ``Call:`` line, a returned list into the answer) sits at a small *constant* relative offset, however long
the problem is; with plain sequential ids that offset grows with the problem. It is generic text structure (lines,
brackets), with nothing task-specific.

``"words"`` (the default model's scheme) also starts a segment at every token that follows a space, with
``WORDS_LINE`` and ``WORDS_SEGMENT`` spacing (up to 256 segments of 128 columns per line). Then every word, number
and list item is its own segment: both operands of ``a + b`` copy into the call at the *same* constant offset, and
the first digit of each operand sits at a constant offset from the answer line whatever the operands' length (with
``"hierarchical"`` the second operand's column grows with the first's length). Measured
(docs/length-generalization.md): it learns addition's training range in every run, but a list's items lie 128 ids
apart, and parity at 50 bits fell short in about half the runs: fine-tuning on short lists wears down the copy of
long ones, which replaying pretraining records (``TrainConfig.replay``) prevents (session 7; with the default
model's recipe parity is 0.995-1.00 at 50 bits in five seeds, session 8).

``"wordlists"`` (opt-in) is ``"words"`` outside brackets and ``"hierarchical"`` inside them: a token that
follows a space starts a segment only outside ``[...]``, so a bracketed list is one segment whose items are
columns (as with ``"hierarchical"``, which copies and looks up long lists better), while the words and numbers
around it are segments of their own (as with ``"words"``, which keeps both operands of ``a + b`` at constant
offsets). Segments are ``WORDLISTS_SEGMENT`` columns long (a list of up to ~80 one-digit items fits in one).
Measured once, on weights pretrained for half as long as the others (session 6): not better yet.

``"sequential"`` is ``0, 1, 2, ...`` (what a model does without explicit ids). The scheme of a model is the
``retune_position_scheme`` entry of its ``config.json`` (:data:`CONFIG_KEY`); a model without it uses
sequential positions.

Training and inference must compute the same ids: for a context (the prompt) take :func:`position_ids` of
its text; for each generated token, :meth:`PositionTracker.push` its text on a tracker that has seen the
context (the tracker holds the state, so generation costs O(1) per token). Position ids start at 0 at the
first token of the context whatever padding surrounds it; padding tokens may take any id (e.g. 0).
"""

from __future__ import annotations

from collections.abc import Sequence

CONFIG_KEY = "retune_position_scheme"
SCHEMES = ("sequential", "hierarchical", "words", "wordlists")
LINE = 8192
SEGMENT = 1024
# "words": more, shorter segments; ids stay below ~2**17 for a few lines, where float32 RoPE angles are exact
# enough (the rotary embedding multiplies ids by its frequencies in float32)
WORDS_LINE = 32768
WORDS_SEGMENT = 128
WORDLISTS_SEGMENT = 256  # "wordlists": up to 128 segments of 256 columns per line (WORDS_LINE apart)
# (line, segment) spacing of the ids of each scheme but "sequential"
SPACING = {"hierarchical": (LINE, SEGMENT), "words": (WORDS_LINE, WORDS_SEGMENT),
           "wordlists": (WORDS_LINE, WORDLISTS_SEGMENT)}


class PositionTracker:
    """Position ids of a growing text, one token at a time (a token is its decoded text, maybe empty)."""

    def __init__(self, scheme: str = "hierarchical"):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown position scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
        self.scheme = scheme
        self.index = -1  # sequential position of the last token
        self.line = self.segment = 0
        self.column = -1
        self.after_newline = False
        self.after_space = False
        self.depth = 0  # brackets open on this line

    def push(self, token: str) -> int:
        """The position id of the next token, whose text is ``token``."""
        self.index += 1
        if self.scheme == "sequential":
            return self.index
        word = self.after_space and (self.scheme == "words" or (self.scheme == "wordlists" and not self.depth))
        if self.after_newline:
            self.line += 1
            self.segment = self.column = self.depth = 0
        elif token.startswith("[") or word:
            self.segment += 1
            self.column = 0
        else:
            self.column += 1
        self.after_newline = token.endswith("\n")
        self.after_space = token.endswith(" ")
        self.depth = max(0, self.depth + token.count("[") - token.count("]"))
        line, segment = SPACING[self.scheme]
        return self.line * line + self.segment * segment + self.column

    def extend(self, tokens: Sequence[str] | str) -> list[int]:
        """Position ids of several tokens (a string is one token per character)."""
        return [self.push(token) for token in tokens]


def position_ids(text_or_tokens: str | Sequence[str] | Sequence[int], scheme: str = "hierarchical",
                 tokenizer=None, cache: dict[int, str] | None = None) -> list[int]:
    """Position ids of a whole text: a string (one token per character, as the default tokenizer encodes
    it), a list of token texts, or a list of token ids with the ``tokenizer`` that decodes them (``cache``:
    a dict of token texts by id to reuse across calls, as :func:`token_texts`)."""
    if text_or_tokens and not isinstance(text_or_tokens, str) and isinstance(text_or_tokens[0], int):
        if tokenizer is None:
            raise ValueError("position ids of token ids need the tokenizer")
        text_or_tokens = token_texts(text_or_tokens, tokenizer, cache)
    return PositionTracker(scheme).extend(text_or_tokens)


def token_texts(ids: Sequence[int], tokenizer, cache: dict[int, str] | None = None) -> list[str]:
    """The text of every token (special tokens as their own text, which contains no newline); ``cache``
    (filled as it goes) keeps the texts of one tokenizer across calls."""
    texts = {} if cache is None else cache
    for i in set(ids) - texts.keys():
        texts[i] = tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)])
    return [texts[i] for i in ids]


def scheme_of(model_config) -> str:
    """The position scheme a model was trained with (``sequential`` when its config names none)."""
    return getattr(model_config, CONFIG_KEY, None) or "sequential"
