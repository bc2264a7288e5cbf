"""Which kinds of Re-Tuning record a trained model has learned: teacher-forced exactness by kind and length.

Each probe is a training record of the method (``retune.core.data.build_records`` for a seed of its own) fed to
the model whole; the record counts as right when the model's argmax at every output token (and the EOS) is that
token, so no step depends on an earlier mistake. A record's kind follows from its text: ``call`` (the output makes a
``Call:``), ``combine`` (the input holds a ``Return:``) or ``base`` (the rest, which answer directly). A kind
at chance while the loss is low is a plateau: the model has learned the record's wording and not its decision.
For each kind the first wrong output token is also counted by the text before it (its last 20 characters)::

    python benchmarks/record_probe.py --model runs/dp/retuning --task dp --lengths 1-3 --per-length 200

prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

import torch

from retune.core.data import build_records
from retune.core.errors import RetuneError
from retune.core.lengths import length_list
from retune.core.text import CALL, RETURN
from retune.engines.inference.policy import load_model
from retune.engines.training.data import encode_records
from retune.models.positions import scheme_of

PROBE_SEED = 7_000  # records of a seed no run of the benchmarks trains on


def record_kind(record: dict) -> str:
    """``call``, ``combine`` or ``base``: what the record's output does."""
    if CALL in record["output"]:
        return "call"
    return "combine" if "\n" + RETURN in record["input"] else "base"


def probe(model, tokenizer, records: list[dict]) -> dict:
    """Exact teacher-forced share by kind and by kind and length, with the first wrong tokens' contexts."""
    examples, _ = encode_records(records, tokenizer, max_length=10**6, position_scheme=scheme_of(model.config))
    by_length: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    where: dict[str, Counter] = defaultdict(Counter)
    for example in examples:
        record = records[example.index]
        ids = torch.tensor([example.input_ids])
        kwargs = {} if example.position_ids is None else {"position_ids": torch.tensor([example.position_ids])}
        with torch.no_grad():
            predicted = model(ids, **kwargs).logits[0, example.n_prompt - 1:-1].argmax(-1).tolist()
        wrong = [i for i, (p, t) in enumerate(zip(predicted, example.input_ids[example.n_prompt:])) if p != t]
        kind = record_kind(record)
        by_length[kind][record["length"]].append(not wrong)
        if wrong:
            before = tokenizer.decode(example.input_ids[:example.n_prompt + wrong[0]])
            where[kind][before[-20:]] += 1
    share = lambda flags: round(sum(flags) / len(flags), 4)  # noqa: E731
    right = {kind: [flag for flags in lengths.values() for flag in flags] for kind, lengths in by_length.items()}
    return {
        "right": {kind: share(flags) for kind, flags in sorted(right.items())},
        "records": {kind: len(flags) for kind, flags in sorted(right.items())},
        "right_by_length": {kind: {str(n): share(f) for n, f in sorted(lengths.items())}
                            for kind, lengths in sorted(by_length.items())},
        "first_wrong_after": {kind: dict(counter.most_common(5)) for kind, counter in sorted(where.items())},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained run or model directory")
    parser.add_argument("--task", required=True)
    parser.add_argument("--lengths", default="1-3", help="lengths of the records' own problems, e.g. 1-3 or 1,2,5")
    parser.add_argument("--per-length", type=int, default=100, help="problems per length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.per_length < 1:
            raise RetuneError(f"--per-length must be at least 1, got {args.per_length}")
        lengths = length_list(args.lengths)
        records = build_records(args.task, "retuning", (min(lengths), max(lengths)), args.per_length,
                                PROBE_SEED + args.seed)
        records = [r for r in records if r["length"] in lengths]
        model, tokenizer = load_model(args.model)
        result = probe(model, tokenizer, records)
    except RetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps({"model": args.model, "task": args.task, "lengths": lengths, **result}))


if __name__ == "__main__":
    main()
