"""From records to padded batches: tokenization, prompt masking, packing of calls and length-grouped batch order.

A record ``{"input": ..., "output": ...}`` becomes one example: ``tokenizer(input)`` (with the tokenizer's
own special tokens, e.g. a LLaMA BOS: exactly how an inference engine encodes a context), then
``tokenizer(output, add_special_tokens=False)`` and EOS. Labels are ``-100`` on the prompt and on padding,
so the loss falls only on the output and its EOS.

*Packing calls* (``pack``): a recursive trace writes a context in steps. The record of a call step
(``P\nSolution: `` -> ``Call: X\n``) is a prefix of the record that resumes it after the return
(``P\nSolution: Call: X\nReturn: R\nAnswer: `` -> ...), so the two are one sequence, supervised on both
outputs: the call's output is labelled as in its own record, and the token after it is labelled EOS (where the
call's own example ends), whatever token the longer context has there. A causal model sees every supervised
token with exactly the context it has in the separate records (position ids are a function of the tokens
before), so the loss is the same and the shared prefix is computed once. A record continues another when its
input is the other's input and output followed by ``Return: ...`` (the text protocol, :mod:`retune.core.text`)
and its tokens start with the other's; copies of a record (length balancing) pair off one to one.

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
from functools import cached_property

import torch

from retune.core.errors import RetuneError
from retune.core.text import RETURN
from retune.models.positions import position_ids

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One tokenized record: ``index`` is its position in the record list."""

    index: int
    input_ids: tuple[int, ...]
    n_prompt: int
    position_ids: tuple[int, ...] | None = None  # explicit position ids (None: sequential, left to the model)
    # packed calls: the indices of all the records in this example (the first is ``index``) and its labels
    # (``-100`` where unsupervised); None: one record, supervised from ``n_prompt`` on
    records: tuple[int, ...] | None = None
    labels: tuple[int, ...] | None = None

    @cached_property  # summed once: every optimizer step counts its examples' supervised tokens
    def n_supervised(self) -> int:
        if self.labels is not None:
            return sum(label != IGNORE_INDEX for label in self.labels)
        return len(self.input_ids) - self.n_prompt

    @property
    def n_records(self) -> int:
        return 1 if self.records is None else len(self.records)

    @property
    def record_indices(self) -> tuple[int, ...]:
        return (self.index,) if self.records is None else self.records


def encode_records(records: Sequence[dict], tokenizer, max_length: int,
                   position_scheme: str = "sequential", pack: int = 0) -> tuple[list[Example], list[int]]:
    """Examples of the records, and the indices of those dropped for being longer than ``max_length``.

    A ``position_scheme`` other than sequential gives every example its explicit position ids
    (:func:`retune.models.positions.position_ids` of its tokens). The first ``pack`` records are packed (a
    call with the records that resume it, see the module docstring) where the packed example fits
    ``max_length``; the others are examples of their own."""
    if not records:
        raise RetuneError("no training records")
    if tokenizer.eos_token_id is None:
        raise RetuneError("the tokenizer has no EOS token")
    eos = tokenizer.eos_token_id
    prompts = tokenizer([r["input"] for r in records])["input_ids"]
    outputs = tokenizer([r["output"] for r in records], add_special_tokens=False)["input_ids"]
    examples, dropped, texts = [], [], {}

    def positions_of(ids: tuple[int, ...]) -> tuple[int, ...] | None:
        if position_scheme == "sequential":
            return None
        return tuple(position_ids(ids, position_scheme, tokenizer, texts))

    chains = pack_chains(records[:pack], prompts, outputs) if pack else []
    packed: dict[int, list[int]] = {}  # head record -> its chain, for chains that fit
    for chain in chains:
        if len(prompts[chain[-1]]) + len(outputs[chain[-1]]) + 1 <= max_length:
            packed[chain[0]] = chain
    in_chain = {i for chain in packed.values() for i in chain}
    for index, (prompt, output) in enumerate(zip(prompts, outputs)):
        if index in packed:
            chain = packed[index]
            last = chain[-1]
            ids = (*prompts[last], *outputs[last], eos)
            labels = [IGNORE_INDEX] * len(ids)
            for i in chain:
                start, stop = len(prompts[i]), len(prompts[i]) + len(outputs[i])
                labels[start:stop] = ids[start:stop]
                labels[stop] = eos  # where the record's own example ends (the last one's EOS is its token)
            examples.append(Example(index, ids, len(prompt), positions_of(ids), tuple(chain), tuple(labels)))
        elif index in in_chain:
            continue
        else:
            ids = (*prompt, *output, eos)
            if len(ids) > max_length:
                dropped.append(index)
            else:
                examples.append(Example(index, ids, len(prompt), positions_of(ids)))
    if not examples:
        raise RetuneError(f"all {len(records)} records are longer than max_length {max_length} tokens")
    return examples, dropped


def pack_chains(records: Sequence[dict], prompts: Sequence[Sequence[int]],
                outputs: Sequence[Sequence[int]]) -> list[list[int]]:
    """Chains of record indices, each record continuing the one before (see the module docstring); only chains
    of two records or more. Deterministic: records pair off in list order."""
    heads: dict[str, list[int]] = {}  # input + output -> records not yet continued, in order
    for index, record in enumerate(records):
        heads.setdefault(record["input"] + record["output"], []).append(index)
    for waiting in heads.values():
        waiting.reverse()  # pop() takes them in list order
    after: dict[int, int] = {}
    continued = set()
    for index, record in enumerate(records):
        text = record["input"]
        cut = text.rfind(RETURN)
        if cut <= 0:
            continue
        waiting = heads.get(text[:cut])
        if not waiting:
            continue
        previous = waiting[-1]
        done = len(prompts[previous]) + len(outputs[previous])
        if tuple(prompts[index][:done]) != (*prompts[previous], *outputs[previous]):
            continue  # the tokens of the longer context differ there (a tokenizer that merges across)
        after[waiting.pop()] = index
        continued.add(index)
    chains = []
    for index in range(len(records)):
        if index in after and index not in continued:
            chain = [index]
            while chain[-1] in after:
                chain.append(after[chain[-1]])
            chains.append(chain)
    return chains


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
    kept = [records[i] for e in examples for i in e.record_indices]
    return {
        "records": len(records),
        "examples": len(examples),
        "packed_records": sum(e.n_records for e in examples if e.n_records > 1),
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
        if example.labels is not None:
            labels[row, :n] = torch.tensor(example.labels)
        else:
            labels[row, example.n_prompt : n] = input_ids[row, example.n_prompt : n]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if examples[0].position_ids is not None:  # padding takes position 0
        batch["position_ids"] = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            batch["position_ids"][row, : len(example.position_ids)] = torch.tensor(example.position_ids)
    return batch
