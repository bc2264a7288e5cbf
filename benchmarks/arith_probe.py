"""How well a model computes the small expressions of pretraining's ``arith`` or ``sums`` records, outside any
task's format.

Each probe is an ``arith`` record (:func:`retune.models.pretraining.pretraining_record` with the ``arith`` edit
alone, from a seed no shipped pretraining stage used): a problem line, its call, a returned list, and an
instruction such as ``Compute max(return[0], array[0] + return[1]).``; the model's greedy answer is right when it
is the record's output exactly. Reported by kind of instruction (``value``: a sum, difference, max or min;
``in_front``: the returned list with that value put in front; ``compare``: ``==``, True or False)::

    python benchmarks/arith_probe.py --models default,benchmarks/models/pretrained-arith --n 300

With ``--edit sums`` the probes are ``sums`` records instead, by kind of instruction (``sum``, ``max`` or
``compare``) and of lookup (``return``: a problem list and a returned one; ``across``: the problem line's two
lists), e.g. ``compare/across``. With ``--edit sumfront`` they are ``sumfront`` records (a sum or ``max`` put in front
of the returned list), by kind (``sum``, ``max``).

prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json

from retune.core.errors import RetuneError
from retune.engines.inference.policy import load_policy
from retune.models.default import PRETRAINED_DIR
from retune.models.pretraining import pretraining_record

PROBE_SEED = 9_000  # no pretraining stage draws records of this seed


def probes(n: int, seed: int = 0, edit: str = "arith") -> list[dict]:
    """``n`` records of ``edit`` (``arith``, ``sums`` or ``sumfront``) of the probe seed, each with its ``kind`` of
    instruction."""
    out = []
    for index in range(n):
        record = pretraining_record(index, PROBE_SEED + seed, {edit: 1})
        instruction = record["input"].rsplit("\n", 2)[-2]
        if edit == "sumfront":
            kind = "max" if "max(" in instruction else "sum"
        elif edit == "sums":
            kind = "compare" if " == " in instruction else "max" if "max(" in instruction else "sum"
            kind += "/across" if "first[" in instruction else "/return"
        else:
            kind = "compare" if " == " in instruction else "in_front" if "in front of" in instruction else "value"
        out.append({**record, "kind": kind})
    return out


def score(batch: list[dict], answers: list[str]) -> dict:
    """The share of ``answers`` that are their probe's output exactly: in all and by kind of instruction."""
    right: dict[str, list[bool]] = {}
    for record, answer in zip(batch, answers, strict=True):
        right.setdefault(record["kind"], []).append(answer.strip() == record["output"])
    every = [value for values in right.values() for value in values]
    return {"right": round(sum(every) / len(every), 4),
            "right_by_kind": {kind: round(sum(v) / len(v), 4) for kind, v in sorted(right.items())},
            "n_by_kind": {kind: len(v) for kind, v in sorted(right.items())}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=["default"],
                        help="model directories or run dirs; 'default' is the shipped pretrained model")
    parser.add_argument("--n", type=int, default=300, help="probes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edit", choices=["arith", "sums", "sumfront"], default="arith", help="the records' kind")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    batch = probes(args.n, args.seed, args.edit)
    for model in args.models:
        try:
            policy = load_policy(PRETRAINED_DIR if model == "default" else model, max_new_tokens=256, batch_size=32)
        except RetuneError as exc:
            parser.error(str(exc))
        answers = policy([record["input"] for record in batch])
        print(json.dumps({"model": model, "edit": args.edit, "n": args.n, **score(batch, answers)}), flush=True)


if __name__ == "__main__":
    main()
