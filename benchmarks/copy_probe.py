"""How well a model copies a list, by list size and kind of item, outside any task's format.

Each probe is a pretraining-shaped line (a few random words, one bracketed list, ``?``) followed by
``\\nSolution: ``; the model writes a ``Call:`` line, and the probe counts it right when the list it holds is the
problem's list or the list minus its first item (pretraining asks for either edit with this prompt). The
``numbers`` kind is the other shape of pretraining line: two digit strings of ``size`` digits around an operator
(``7319 % 2143``, the shape of addition's problems), right when the call holds both numbers, or both minus their
first digit. Greedy decoding, the same probes for every model::

    python benchmarks/copy_probe.py --models default,runs/parity/retuning --sizes 10,20,40,60 --kinds bits,digits

prints one JSON line per model and kind: the share of right lists by size.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string

from retune.core.errors import RetuneError
from retune.core.text import SOLUTION
from retune.engines.inference.policy import load_policy
from retune.models.default import PRETRAINED_DIR
from retune.models.pretraining import OPERATORS

KINDS = {
    "bits": lambda rng: str(rng.randint(0, 1)),
    "digits": lambda rng: str(rng.randint(0, 9)),
    "letters": lambda rng: rng.choice(string.ascii_lowercase),
    "numbers": lambda rng: rng.choice(string.digits),
}
_LIST = re.compile(r"\[([^\]]*)\]")
_PAIR = re.compile(r"(\d+) \S (\d+)")


def probes(kind: str, size: int, n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """``n`` prompts with a list of ``size`` items of ``kind`` (for ``numbers``: two numbers of ``size``
    digits), and each list (the two numbers)."""
    out = []
    for index in range(n):
        rng = random.Random(f"copy-probe/{seed}/{kind}/{size}/{index}")
        if kind == "numbers":
            pair = ["".join(KINDS[kind](rng) for _ in range(size)) for _ in range(2)]
            out.append((f"{pair[0]} {rng.choice(OPERATORS)} {pair[1]}{SOLUTION}", pair))
            continue
        words = " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))
                         for _ in range(rng.randint(1, 4)))
        items = [KINDS[kind](rng) for _ in range(size)]
        out.append((f"{words} [{', '.join(items)}]?{SOLUTION}", items))
    return out


def copied(segment: str, items: list[str], kind: str = "bits") -> bool:
    """Whether the first list in ``segment`` is ``items`` or ``items`` minus its first one (for ``numbers``:
    whether its first pair of numbers is the pair, or both minus their first digit)."""
    if kind == "numbers":
        match = _PAIR.search(segment)
        return match is not None and list(match.groups()) in (items, [item[1:] or item for item in items])
    match = _LIST.search(segment)
    return match is not None and match.group(1).split(", ") in (items, items[1:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=["default"],
                        help="model directories or run dirs; 'default' is the shipped pretrained model")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["bits", "digits"])
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[5, 10, 20, 40, 60])
    parser.add_argument("--n", type=int, default=50, help="probes per kind and size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [kind for kind in args.kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}: expected {', '.join(KINDS)}")
    for model in args.models:
        try:
            policy = load_policy(PRETRAINED_DIR if model == "default" else model, stop_at_call=True,
                                 max_new_tokens=512, batch_size=32)
        except RetuneError as exc:
            parser.error(str(exc))
        for kind in args.kinds:
            right = {}
            for size in args.sizes:
                batch = probes(kind, size, args.n, args.seed)
                segments = policy([prompt for prompt, _ in batch])
                right[size] = sum(copied(s, items, kind) for s, (_, items) in zip(segments, batch)) / len(batch)
            print(json.dumps({"model": model, "kind": kind, "n": args.n, "right_by_size": right}), flush=True)


if __name__ == "__main__":
    main()
