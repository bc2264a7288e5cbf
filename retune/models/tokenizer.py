"""retune's character-level tokenizer: one token per character, saved in the plain transformers format.

The vocabulary is four special tokens (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``, ids 0-3) followed by
every printable ASCII character and ``"\\n"``. Encoding is exactly one token per character: no special
token is added, no whitespace is normalised, and the text of a special token inside the input is split into
its characters like any other text, so ``decode(encode(s)) == s`` for any printable ASCII text with newlines.
Characters outside the vocabulary become ``<unk>``.

With ``numbers=True`` (opt-in, a candidate of issue #5's DP work) the vocabulary also holds every integer of
-99..99 that is more than one character (``"-5"``, ``"12"``, ``"-37"``: :data:`NUMBER_TOKENS`, ids 100 on), and a
*list item* that is such an integer is one token: a number right after ``[`` or ``, `` and right before ``,`` or
``]``. Everything else stays one token per character: the digits of ``73199 + 21439`` or ``Output 38``, and any
one-digit item (so a list of bits or digits, and every text without a bracketed list of signed or two-digit
numbers, encodes to exactly the ids of the character tokenizer). ``decode(encode(s)) == s`` still holds.

It is a ``tokenizers`` WordLevel model behind a ``PreTrainedTokenizerFast``; ``save_pretrained`` writes
``tokenizer.json`` and ``tokenizer_config.json``, which ``AutoTokenizer.from_pretrained`` loads with no
retune code.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
CHARACTERS = tuple(chr(code) for code in range(32, 127)) + ("\n",)
# integers of more than one character, -99..99 (ids after the characters' in the ``numbers`` vocabulary)
NUMBER_TOKENS = tuple(str(n) for n in range(-99, 100) if len(str(n)) > 1)
# a list item that is one of NUMBER_TOKENS (or one character) is one piece; every other character is its own
_NUMBER_ITEM = r"(?<=\[|, )(?:-?[1-9][0-9]?|0)(?=[,\]])"


def build_tokenizer(model_max_length: int = 4096, numbers: bool = False) -> PreTrainedTokenizerFast:
    """The character-level tokenizer (deterministic: the same ids on every call); ``numbers``: with list items
    of -99..99 as single tokens (see the module docstring)."""
    tokens = SPECIAL_TOKENS + CHARACTERS + (NUMBER_TOKENS if numbers else ())
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(WordLevel(vocab, unk_token=UNK))
    pieces = f"{_NUMBER_ITEM}|[\\s\\S]" if numbers else r"[\s\S]"
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(pieces), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        split_special_tokens=True,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="right",
    )
