"""Position ids of the default model (retune.models.positions) and their use in training batches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retune.engines.training.data import collate, encode_records
from retune.models import build_tokenizer
from retune.models.positions import (
    LINE,
    SEGMENT,
    WORDLISTS_SEGMENT,
    WORDS_LINE,
    WORDS_SEGMENT,
    PositionTracker,
    position_ids,
    scheme_of,
)


def test_hierarchical_ids_count_lines_brackets_and_columns():
    text = "ab [1, 0]?\nSolution: Call: [0]?\n"
    ids = position_ids(text)
    assert ids[:3] == [0, 1, 2]  # "ab "
    assert ids[3:10] == [SEGMENT + c for c in range(7)]  # "[1, 0]?" : a new segment at "["
    assert ids[10] == SEGMENT + 7  # the newline closes the line
    assert ids[11] == LINE  # "S" starts line 1
    start = text.index("[0]")
    assert ids[start] == LINE + SEGMENT and ids[start + 1] == LINE + SEGMENT + 1


def test_copies_sit_at_a_constant_offset_whatever_the_length():
    """The call's list (the problem's minus its first element) is one line and a fixed column shift away."""
    for n in (3, 10, 40):
        bits = [i % 2 for i in range(n)]
        problem = f"What is the parity of {bits}?"
        text = f"{problem}\nSolution: Call: What is the parity of {bits[1:]}?\n"
        ids = position_ids(text)
        src = text.index("[") + 4  # the second element of the problem's list
        dst = text.index("[", text.index("Call")) + 1  # the first element of the call's list
        assert ids[dst] - ids[src] == LINE - 3


def test_incremental_tracker_matches_the_whole_text_and_token_ids():
    text = "x [1, 2]\nReturn: [3]\nAnswer: "
    tracker = PositionTracker("hierarchical")
    assert tracker.extend(text[:5]) + [tracker.push(c) for c in text[5:]] == position_ids(text)
    tokenizer = build_tokenizer()
    assert position_ids(tokenizer(text)["input_ids"], tokenizer=tokenizer) == position_ids(text)
    assert position_ids(text, "sequential") == list(range(len(text)))
    with pytest.raises(ValueError):
        PositionTracker("nope")


def test_scheme_of_a_config_and_position_ids_in_batches():
    class Config:
        pass

    assert scheme_of(Config()) == "sequential"
    config = Config()
    config.retune_position_scheme = "hierarchical"
    assert scheme_of(config) == "hierarchical"
    tokenizer = build_tokenizer()
    records = [{"input": "a [1]\nSolution: ", "output": "1"}, {"input": "b\nSolution: ", "output": "22"}]
    examples, _ = encode_records(records, tokenizer, 100, "hierarchical")
    batch = collate(examples, tokenizer.pad_token_id)
    text = records[0]["input"] + records[0]["output"]
    assert batch["position_ids"][0, : len(text) + 1].tolist() == position_ids(text + "\n")[: len(text) + 1]
    plain, _ = encode_records(records, tokenizer, 100)
    assert "position_ids" not in collate(plain, tokenizer.pad_token_id)


def test_balance_lengths_repeats_rare_lengths():
    from retune.engines.training.data import balance_lengths

    records = [{"task": "t", "length": 1, "input": "a"}]
    records += [{"task": "t", "length": 2, "input": str(i)} for i in range(4)]
    balanced = balance_lengths(records)
    assert sum(r["length"] == 1 for r in balanced) == 4 and sum(r["length"] == 2 for r in balanced) == 4


def test_example_loss_weighs_every_example_equally():
    import torch

    from retune.engines.training.trainer import _example_loss

    logits = torch.zeros((2, 4, 3))
    labels = torch.tensor([[-100, 1, 1, 1], [-100, -100, -100, 2]])
    logits[0, :, 1] = 10.0  # example 0 is right on its 3 tokens; example 1 is uniform on its 1 token
    loss = _example_loss(logits, labels, divisor=2)
    per_token_0 = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, 1:])
    assert loss.item() == pytest.approx((per_token_0.item() + torch.log(torch.tensor(3.0)).item()) / 2, rel=1e-5)


@given(st.lists(st.sampled_from(["a", "[", "\n", "x\n", "[a", "", "]", " ", "b[", "\n[", "a "]), max_size=40),
       st.integers(0, 40), st.sampled_from(["hierarchical", "words", "wordlists", "sequential"]))
def test_extend_equals_pushing_token_by_token(tokens, cut, scheme):
    """``extend`` keeps the tracker's state exactly as ``push`` does, mixed in any order."""
    one = PositionTracker(scheme)
    expected = [one.push(token) for token in tokens]
    two = PositionTracker(scheme)
    got = two.extend(tokens[:cut]) + [two.push(token) for token in tokens[cut:cut + 2]] + two.extend(tokens[cut + 2:])
    assert got == expected
    assert vars(one) == vars(two)


@pytest.mark.parametrize("scheme, segment", [("words", WORDS_SEGMENT), ("wordlists", WORDLISTS_SEGMENT)])
def test_words_schemes_put_both_operands_and_their_first_digits_at_constant_offsets(scheme, segment):
    """With a segment per word, the call copies ``a[1:]`` and ``b[1:]`` at one offset, and the answer line sees
    ``a[0]`` and ``b[0]`` at offsets that do not depend on the operands' length."""
    offsets = set()
    for n in (2, 5, 17, 40):
        a, b = "7" * n, "3" * n
        text = f"{a} + {b}\nSolution: Call: {a[1:]} + {b[1:]}\nReturn: Carry 0, Output {'0' * (n - 1)}\nAnswer: "
        ids = position_ids(text, scheme)
        call = text.index("Call: ") + len("Call: ")
        a_copy = {ids[call + i] - ids[1 + i] for i in range(n - 1)}
        b_copy = {ids[call + n + 2 + i] - ids[n + 4 + i] for i in range(n - 1)}
        assert a_copy == b_copy and len(a_copy) == 1
        answer = ids[-1]
        offsets.add((a_copy.pop(), answer - ids[0], answer - ids[n + 3]))
    assert len(offsets) == 1
    (copy, to_a0, to_b0), = offsets
    assert copy == WORDS_LINE + 2 * segment - 1  # line 1, two segments on ("Solution:", "Call:"), a column back
    assert to_a0 == 3 * WORDS_LINE + len("Answer: ") - 1 and to_b0 == to_a0 - 2 * segment


def test_wordlists_keeps_a_bracketed_list_in_one_segment_of_columns():
    """Outside brackets every word is a segment (as ``words``); inside, the items are columns of the list's
    segment (as ``hierarchical``), so the call's copy of a list minus its first item has one offset however
    long the list, and the list's first item sits at a fixed column."""
    for n in (1, 3, 12, 50):
        bits = ", ".join("10"[i % 2] for i in range(n))
        rest = ", ".join("10"[i % 2] for i in range(1, n))
        text = f"What is the parity of [{bits}]?\nSolution: Call: What is the parity of [{rest}]?\n"
        ids = position_ids(text, "wordlists")
        start = text.index("[")
        assert [ids[i] for i in range(5)] == [0, 1, 2, 3, 4]  # "What " is segment 0
        assert ids[start] == 5 * WORDLISTS_SEGMENT and ids[start + 1] == ids[start] + 1  # "[" starts segment 5
        items = [start + 1 + 3 * i for i in range(n)]
        assert [ids[i] - ids[start] for i in items] == [1 + 3 * i for i in range(n)]  # columns, not segments
        call_start = text.index("[", start + 1)
        copies = {ids[call_start + 1 + 3 * i] - ids[items[i + 1]] for i in range(n - 1)}
        # one line on, two segments on ("Solution:", "Call:"), one item back
        assert copies <= {WORDS_LINE + 2 * WORDLISTS_SEGMENT - 3}


def test_every_scheme_can_be_chosen_for_training():
    from typing import get_args

    from retune.engines.training import TrainConfig
    from retune.models.positions import SCHEMES

    assert get_args(TrainConfig.model_fields["position_scheme"].annotation) == ("auto", *SCHEMES)
