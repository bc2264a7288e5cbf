"""The embedded default model and its character-level tokenizer."""

from __future__ import annotations

import string

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from retune.models import DEFAULT_ARCHITECTURE, build_default_model, build_tokenizer
from retune.models.tokenizer import CHARACTERS, SPECIAL_TOKENS

TEXT = st.text(alphabet=st.sampled_from(CHARACTERS), max_size=200)
TOKENIZER = build_tokenizer()


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_encoding_is_one_token_per_character_and_round_trips(text):
    ids = TOKENIZER(text)["input_ids"]
    assert len(ids) == len(text)
    assert ids == [TOKENIZER.convert_tokens_to_ids(c) for c in text]
    assert TOKENIZER.decode(ids) == text


def test_spaces_newlines_and_special_token_text_survive():
    text = "  What is the parity of [1, 0]?\nSolution:  \n\nCall: <eos><pad> x  "
    ids = TOKENIZER(text)["input_ids"]
    assert len(ids) == len(text)
    assert TOKENIZER.eos_token_id not in ids and TOKENIZER.pad_token_id not in ids
    assert TOKENIZER.decode(ids) == text
    assert TOKENIZER.decode(ids + [TOKENIZER.eos_token_id], skip_special_tokens=True) == text


def test_vocabulary_is_printable_ascii_newline_and_specials():
    vocab = TOKENIZER.get_vocab()
    assert set(vocab) == set(SPECIAL_TOKENS) | set(CHARACTERS)
    assert set(string.printable) - set("\t\r\x0b\x0c") <= set(vocab)
    assert len(TOKENIZER) == len(vocab) == 4 + 95 + 1
    assert TOKENIZER("é")["input_ids"] == [TOKENIZER.unk_token_id]


def test_saved_tokenizer_loads_with_plain_transformers(tmp_path):
    TOKENIZER.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "905 + 098\nSolution: Call: 05 + 98\n"
    assert loaded(text)["input_ids"] == TOKENIZER(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert (loaded.pad_token, loaded.bos_token, loaded.eos_token, loaded.unk_token) == SPECIAL_TOKENS


def test_default_model_size_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_default_model()
    config = model.config
    assert config.model_type == "llama"
    assert (config.hidden_size, config.num_hidden_layers) == (128, 2)
    assert config.max_position_embeddings == DEFAULT_ARCHITECTURE["max_position_embeddings"] >= 4096
    assert config.vocab_size == len(tokenizer)
    assert config.eos_token_id == tokenizer.eos_token_id and config.pad_token_id == tokenizer.pad_token_id
    assert 400_000 <= sum(p.numel() for p in model.parameters()) <= 700_000

    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = AutoTokenizer.from_pretrained(tmp_path)("What is the parity of [1]?\n", return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_default_model_is_seeded_by_torch():
    torch.manual_seed(1)
    first, _ = build_default_model()
    torch.manual_seed(1)
    second, _ = build_default_model()
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


NUMBERS = build_tokenizer(numbers=True)
_ITEM = st.integers(min_value=-99, max_value=99).map(str) | st.sampled_from(["007", "-0", "123", "-100", "a", "True"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + " :\n")),
                          st.lists(_ITEM, max_size=8)), max_size=4))
def test_numbers_tokenizer_makes_each_small_list_item_one_token_and_leaves_the_rest_characters(parts):
    text = "".join(f"{words}[{', '.join(items)}]" for words, items in parts)
    ids = NUMBERS(text)["input_ids"]
    assert NUMBERS.decode(ids) == text
    pieces = [NUMBERS.convert_ids_to_tokens(i) for i in ids]
    assert "".join(pieces) == text  # no unknown token, nothing normalised
    small = [item for _, items in parts for item in items if item.lstrip("-").isdigit()
             and -99 <= int(item) <= 99 and item == str(int(item))]
    # every item of -99..99 (written plainly) is one piece; every other piece is one character
    assert sorted(p for p in pieces if len(p) > 1) == sorted(item for item in small if len(item) > 1)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_numbers_tokenizer_is_the_character_tokenizer_on_text_without_such_lists(text):
    text = text.replace("[", "(").replace(",", ";")  # no list: digits, `73199 + 21439`, `Output 38` stay characters
    assert NUMBERS(text)["input_ids"] == TOKENIZER(text)["input_ids"]
    bits = "What is the parity of [1, 0, 1]?\nSolution: Call: What is the parity of [0, 1]?\n"
    assert NUMBERS(bits)["input_ids"] == TOKENIZER(bits)["input_ids"]  # one-digit items: the same ids


def test_numbers_tokenizer_saves_and_loads_with_plain_transformers(tmp_path):
    NUMBERS.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "Create dp array [3, -2, 15]\nSolution: Call with array minus first element. Call: Create dp array [-2, 15]\n"
    assert loaded(text)["input_ids"] == NUMBERS(text)["input_ids"] and len(loaded) == len(NUMBERS) == 100 + 189
    assert [loaded.decode([i]) for i in loaded("[3, -2, 15]")["input_ids"]] == ["[", "3", ",", " ", "-2", ",", " ",
                                                                                "15", "]"]
