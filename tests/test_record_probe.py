"""benchmarks/record_probe.py: teacher-forced exactness of Re-Tuning records, by kind and length."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from retune.core.data import build_records
from retune.models.tokenizer import build_tokenizer


class _NextToken(torch.nn.Module):
    """A stand-in model whose prediction at each position is a fixed function of the true next token."""

    def __init__(self, vocab: int, wrong_after: str | None = None, tokenizer=None):
        super().__init__()
        self.config = SimpleNamespace(retune_position_scheme="words")
        self.vocab, self.wrong_after, self.tokenizer = vocab, wrong_after, tokenizer
        self.last_positions = None

    def forward(self, ids, position_ids=None):
        self.last_positions = position_ids
        logits = torch.zeros(1, ids.shape[1], self.vocab)
        for i in range(ids.shape[1] - 1):
            token = ids[0, i + 1].item()
            if self.wrong_after and self.tokenizer.decode(ids[0, :i + 1]).endswith(self.wrong_after):
                token = (token + 1) % self.vocab  # wrong exactly after this text
            logits[0, i, token] = 1.0
        return SimpleNamespace(logits=logits)


def test_record_kinds_follow_the_records_text(benchmark_script):
    probe = benchmark_script("record_probe")
    records = build_records("dp", "retuning", (1, 3), 5, 0)
    kinds = [probe.record_kind(r) for r in records]
    assert set(kinds) == {"call", "base", "combine"}
    for record, kind in zip(records, kinds):
        assert (kind == "call") == ("Call: " in record["output"])
        assert (kind == "combine") == ("\nReturn:" in record["input"] and "Call: " not in record["output"])
        if kind == "base":
            assert "Answer: " in record["output"] and "Return:" not in record["input"]


def test_probe_scores_exact_records_and_names_where_the_first_mistake_is(benchmark_script):
    probe = benchmark_script("record_probe")
    tokenizer = build_tokenizer()
    records = build_records("addition", "retuning", (1, 2), 4, 0)
    perfect = probe.probe(_NextToken(len(tokenizer)), tokenizer, records)
    assert set(perfect["right"].values()) == {1.0} and perfect["first_wrong_after"] == {}
    assert sum(perfect["records"].values()) == len(records)
    assert perfect["right_by_length"]["base"] == {"1": 1.0}  # one-digit problems answer directly
    # a model wrong exactly at the carry digit of every answer: base cases and combines fail, calls do not
    stumbling = _NextToken(len(tokenizer), wrong_after="Carry ", tokenizer=tokenizer)
    result = probe.probe(stumbling, tokenizer, records)
    assert result["right"] == {"base": 0.0, "call": 1.0, "combine": 0.0}
    assert set(result["first_wrong_after"]) == {"base", "combine"}
    assert all(before.endswith("Carry ") for kind in result["first_wrong_after"].values() for before in kind)
    assert stumbling.last_positions is not None  # the model's own position scheme is used


def test_the_script_prints_one_json_object_and_rejects_bad_input_in_one_line(run_benchmark):
    done = run_benchmark("record_probe", "--model", "retune/models/pretrained", "--task", "parity",
                         "--lengths", "1-2", "--per-length", "3")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task"] == "parity" and result["lengths"] == [1, 2]
    assert set(result["right"]) <= {"call", "base", "combine"}
    assert all(0.0 <= share <= 1.0 for share in result["right"].values())
    for bad in (["--task", "nope"], ["--task", "parity", "--per-length", "0"], ["--task", "parity", "--lengths", "x"]):
        done = run_benchmark("record_probe", "--model", "retune/models/pretrained", *bad)
        assert done.returncode != 0
        assert done.stderr.strip().startswith("error:") and len(done.stderr.strip().splitlines()) == 1
