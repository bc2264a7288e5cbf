"""From records to padded batches: tokenization, prompt masking and length-grouped batch order.

A record ``{"input": ..., "output": ...}`` becomes one example: ``tokenizer(input)`` (with the tokenizer's
own special tokens, e.g. a LLaMA BOS: exactly how an inference engine encodes a context), then
``tokenizer(output, add_special_tokens=False)`` and EOS. Labels are ``-100`` on the prompt and on padding,
so the loss falls only on the output and its EOS.

Batch order is a pure function of ``(seed, epoch)``: the examples are shuffled, cut into buckets of
``bucket_batches`` batches, sorted by length inside each bucket and cut into batches (little padding), and
the batches are shuffled again (lengths stay mixed over time). A resumed run therefore sees exactly the
batches an uninterrupted one would. Batches are right-padded.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from retune.core.errors import RetuneError
from retune.models.positions import position_ids

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One tokenized record: ``index`` is its position in the record list."""

    index: int
    input_ids: tuple[int, ...]
    n_prompt: int
    position_ids: tuple[int, ...] | None = None  # explicit position ids (None: sequential, left to the model)

    @property
    def n_supervised(self) -> int:
        return len(self.input_ids) - self.n_prompt


def encode_records(records: Sequence[dict], tokenizer, max_length: int,
                   position_scheme: str = "sequential") -> tuple[list[Example], list[int]]:
    """Examples of the records, and the indices of those dropped for being longer than ``max_length``.

    A ``position_scheme`` other than sequential gives every example its explicit position ids
    (:func:`retune.models.positions.position_ids` of its tokens)."""
    if not records:
        raise RetuneError("no training records")
    if tokenizer.eos_token_id is None:
        raise RetuneError("the tokenizer has no EOS token")
    prompts = tokenizer([r["input"] for r in records])["input_ids"]
    outputs = tokenizer([r["output"] for r in records], add_special_tokens=False)["input_ids"]
    examples, dropped, texts = [], [], {}
    for index, (prompt, output) in enumerate(zip(prompts, outputs)):
        ids = (*prompt, *output, tokenizer.eos_token_id)
        if len(ids) > max_length:
            dropped.append(index)
        else:
            positions = None
            if position_scheme != "sequential":
                positions = tuple(position_ids(ids, position_scheme, tokenizer, texts))
            examples.append(Example(index, ids, len(prompt), positions))
    if not examples:
        raise RetuneError(f"all {len(records)} records are longer than max_length {max_length} tokens")
    return examples, dropped


def balance_lengths(records: Sequence[dict]) -> list[dict]:
    """The records with every ``(task, length)`` group repeated ``max_size // size`` times (in groups' first-seen
    order), so that short problems, of which few distinct ones exist, weigh about as much as long ones."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((str(record.get("task")), str(record.get("length"))), []).append(record)
    largest = max((len(g) for g in groups.values()), default=0)
    return [record for group in groups.values() for _ in range(largest // len(group)) for record in group]


def fingerprint(records: Sequence[dict]) -> str:
    """A hash of the records' inputs and outputs in order (a resumed run must train on the same data)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps([record["input"], record["output"]]).encode())
    return digest.hexdigest()


def summarize(records: Sequence[dict], examples: Sequence[Example], dropped: Sequence[int]) -> dict:
    """The run's ``data_summary.json``: counts by task and length, longest example, dropped records."""
    kept = [records[e.index] for e in examples]
    return {
        "records": len(records),
        "examples": len(examples),
        "dropped_too_long": len(dropped),
        "by_task": dict(sorted(Counter(str(r.get("task")) for r in kept).items())),
        "by_length": {str(k): v for k, v in sorted(Counter(r.get("length") for r in kept).items(), key=_length_key)},
        "max_chars": max(len(r["input"]) + len(r["output"]) for r in kept),
        "max_tokens": max(len(e.input_ids) for e in examples),
        "supervised_tokens": sum(e.n_supervised for e in examples),
        "fingerprint": fingerprint(records),
    }


def _length_key(item: tuple) -> tuple:
    """Integer lengths in numeric order first, then any other values."""
    length = item[0]
    return (0, length, "") if isinstance(length, int) else (1, 0, str(length))


def epoch_batches(
    lengths: Sequence[int], batch_size: int, bucket_batches: int, seed: int, epoch: int
) -> list[list[int]]:
    """Batches (lists of positions into ``lengths``) of one epoch, in training order."""
    rng = random.Random(f"retune-batches/{seed}/{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lengths.__getitem__)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (``-100`` on prompt and padding)."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        attention_mask[row, :n] = 1
        labels[row, example.n_prompt : n] = input_ids[row, example.n_prompt : n]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if examples[0].position_ids is not None:  # padding takes position 0
        batch["position_ids"] = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            batch["position_ids"][row, : len(example.position_ids)] = torch.tensor(example.position_ids)
    return batch
