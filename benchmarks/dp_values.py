"""How far DP's values reach past those of its training range, by problem length.

Re-Tuning's DP combine is ``Append max(return[0], array[0] + return[1]) to return``: arithmetic on the dp values
that the call returned. Those values grow with the list (items are drawn from -5..5), so a problem far past the
training lengths asks for sums the fine-tuning data never shows, whatever the lengths of its contexts. For each
length this prints the largest dp value of each problem (median, 95th percentile, maximum) and the share of
problems with a dp value above the largest in the training range (the largest any training problem could hold
there, 5 * ceil(n / 2) for n items, and the largest seen in the sample)::

    python benchmarks/dp_values.py --train 1-5 --lengths 3,5,10,20 --n 2000

prints one JSON line per length.
"""

from __future__ import annotations

import argparse
import json
import random
from functools import cache

from retune.core.errors import RetuneError
from retune.core.lengths import length_list, parse_lengths
from retune.tasks.dp import HI, DPTask, dp_array


@cache  # the training lengths and the reported ones may overlap
def largest_values(length: int, n: int, seed: int) -> tuple[int, ...]:
    """The largest dp value of each of ``n`` generated problems of ``length`` items (``Random(seed + index)``)."""
    task = DPTask()
    return tuple(sorted(max(dp_array(task.generate(length, random.Random(seed + index)).items))
                        for index in range(n)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default="1-5", help="training lengths LO-HI (default: DP's, 1-5)")
    parser.add_argument("--lengths", default="3,5,10,20", help="lengths to report")
    parser.add_argument("--n", type=int, default=2000, help="problems per length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        low, high = parse_lengths(args.train)
        lengths = length_list(args.lengths)
    except RetuneError as exc:
        parser.error(f"expected --train LO-HI and --lengths N,N,...: {exc}")
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    bound = HI * ((high + 1) // 2)  # every other item at its largest
    seen = max(max(largest_values(length, args.n, args.seed)) for length in range(low, high + 1))
    for length in lengths:
        values = largest_values(length, args.n, args.seed)
        print(json.dumps({
            "length": length, "problems": args.n, "median": values[len(values) // 2],
            "p95": values[int(0.95 * len(values))], "max": values[-1],
            "training_bound": bound, "training_seen": seen,
            "share_above_bound": round(sum(value > bound for value in values) / len(values), 3),
            "share_above_seen": round(sum(value > seen for value in values) / len(values), 3),
        }))


if __name__ == "__main__":
    main()
