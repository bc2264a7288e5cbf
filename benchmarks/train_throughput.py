"""Training throughput of the default model on a task, per method: supervised tokens/s and padding.

    python benchmarks/train_throughput.py [--task parity] [--lengths 1-10] [--steps 20] [--per-length 50]

For each method (retuning, retuning with packed calls, scratchpad, baseline) it trains the default model for a few
steps on the task's records (default settings: batch 16, length-grouped batches) and reads the run's
``training_log.jsonl``: supervised tokens (output + EOS) per second of step time, all tokens per second,
and the fraction of processed tokens that are padding (target: under 10%). The first step is left out
(warm-up). Packed calls (``--pack-calls``) train the same supervised tokens with each call's context computed once,
so their supervised tokens/s is the records-per-second gain. Prints a table, then one JSON line with the same figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from retune.engines.training import TrainConfig, train

METHODS = ("retuning", "retuning+pack", "scratchpad", "baseline")


def measure(method: str, records: list[dict], steps: int, batch_size: int, seed: int, root: Path) -> dict:
    config = TrainConfig(out=root / method, max_steps=steps + 1, batch_size=batch_size, seed=seed,
                         save_every=10**9, progress=False, pack_calls=method.endswith("+pack"))
    log = [json.loads(line) for line in (train(config, records) / "training_log.jsonl").read_text().splitlines()]
    timed = log[1:]
    seconds = sum(e["step_s"] for e in timed)
    tokens = sum(e["tokens"] for e in timed)
    padding = sum(e["padding_tokens"] for e in timed)
    return {
        "method": method,
        "records": len(records),
        "steps": len(timed),
        "supervised_tokens_per_s": round(sum(e["supervised_tokens"] for e in timed) / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "padding_fraction": round(padding / (tokens + padding), 4),
        "final_loss": log[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="parity")
    parser.add_argument("--lengths", default="1-10", help="LO-HI")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method")
    parser.add_argument("--per-length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        from retune.core.data import build_records
    except ImportError as exc:
        sys.exit(f"this benchmark needs retune.core.data.build_records ({exc})")

    lengths = tuple(int(n) for n in args.lengths.split("-"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            records = build_records([args.task], method.split("+")[0], lengths, args.per_length, args.seed)
            rows.append(measure(method, records, args.steps, args.batch_size, args.seed, Path(tmp)))
    print(f"{'method':<13} {'records':>7} {'steps':>5} {'supervised tok/s':>16} {'all tok/s':>9} {'padding':>7}")
    for row in rows:
        print(f"{row['method']:<13} {row['records']:>7} {row['steps']:>5} {row['supervised_tokens_per_s']:>16,.0f} "
              f"{row['tokens_per_s']:>9,.0f} {row['padding_fraction']:>7.1%}")
    print(json.dumps({"benchmark": "train_throughput", "model": "default", "task": args.task, "lengths": args.lengths,
                      "batch_size": args.batch_size, "results": rows}))


if __name__ == "__main__":
    main()
