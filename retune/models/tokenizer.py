"""retune's character-level tokenizer: one token per character, saved in the plain transformers format.

The vocabulary is four special tokens (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``, ids 0-3) followed by
every printable ASCII character and ``"\\n"``. Encoding is exactly one token per character: no special
token is added, no whitespace is normalised, and the text of a special token inside the input is split into
its characters like any other text, so ``decode(encode(s)) == s`` for any printable ASCII text with newlines.
Characters outside the vocabulary become ``<unk>``.

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


def build_tokenizer(model_max_length: int = 4096) -> PreTrainedTokenizerFast:
    """The character-level tokenizer (deterministic: the same ids on every call)."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
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
