"""Length generalization of the default model (issue #5): tasks x methods x seeds, accuracy by problem length.

    python benchmarks/length_generalization.py                       # the full grid (hours on 2 CPU cores)
    python benchmarks/length_generalization.py --quick               # a small version (minutes)
    python benchmarks/length_generalization.py --tasks parity --methods retuning --seeds 0 --n 30 \\
        --steps 1500 --eval-lengths parity=5,10,20,50

For every (task, method, seed) it trains the default model with :func:`retune.engines.training.train` on problems
of the task's training lengths (records of every method come from ``build_records``; the longest problem in any
record is the "training length"), then solves ``--n`` fresh problems (test seed 99, disjoint from the training
seed's draws) of every evaluation length with the real solver and a batched greedy policy, and scores exact
answers. Training is step-matched (``--steps``, by default the steps a bare ``retune run`` trains each method for;
``--epochs`` caps the passes over the records too),
so results do not depend on the machine's load; the wall time of each run is recorded too. Every training setting
not given on the command line is the trainer's own default (for the default model its measured recipe; see
:class:`retune.engines.training.TrainConfig`). ``--model`` picks the starting point: ``default`` (the shipped
pretrained default model), ``default-scratch`` (the same architecture untrained) or a model directory.

Writes ``OUT/length_generalization.json`` (settings, machine, date, one row per task/method/seed/length with
the accuracy and the outcome counts) and ``OUT/length_generalization.png`` (accuracy against length, mean
over seeds, one panel per task, the training range shaded).

The policy is retune's own batched greedy :class:`~retune.engines.inference.ModelPolicy`, which computes
position ids exactly as training did (the scheme in the model's ``config.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import torch

from retune.core.data import generate_problems
from retune.core.solver import solve
from retune.engines.inference import load_policy
from retune.engines.training import TrainConfig, train
from retune.models.positions import SCHEMES
from retune.pipeline import DEFAULT_METHOD_STEPS
from retune.plugins import get_registry

TRAIN_LENGTHS = {"parity": (1, 10), "addition": (1, 8), "dp": (1, 5)}
EVAL_LENGTHS = {"parity": [5, 10, 20, 30, 50], "addition": [4, 8, 16, 24, 32], "dp": [3, 5, 10, 15, 20]}
QUICK_EVAL_LENGTHS = {"parity": [5, 10, 20, 50], "addition": [5, 8, 16, 32], "dp": [3, 5, 10, 20]}
TEST_SEED = 99


def evaluate_model(model_dir: Path, task_name: str, method: str, lengths: list[int], n: int) -> list[dict]:
    task = get_registry().get(task_name)
    policy = load_policy(model_dir, batch_size=64, max_new_tokens=1024)
    rows = []
    for length in lengths:
        problems = [p for _, p in generate_problems(task, [length], n, TEST_SEED)]
        started = time.perf_counter()
        solutions = solve(task, problems, policy, method=method)
        outcomes = Counter("correct" if s.correct else s.outcome.value for s in solutions)
        rows.append({"length": length, "n": len(solutions), "accuracy": outcomes["correct"] / len(solutions),
                     "outcomes": dict(outcomes), "eval_s": round(time.perf_counter() - started, 1)})
    return rows


def run_grid(args) -> dict:
    torch.set_num_threads(args.threads)
    eval_lengths = dict(QUICK_EVAL_LENGTHS if args.quick else EVAL_LENGTHS)
    for spec in args.eval_lengths or []:
        name, values = spec.split("=")
        eval_lengths[name] = [int(v) for v in values.split(",")]
    root = Path(args.runs or tempfile.mkdtemp(prefix="retune-lg-"))
    rows = []
    for task in args.tasks:
        for method in args.methods:
            for seed in args.seeds:
                run_dir = root / f"{task}-{method}-seed{seed}"
                given = {key: getattr(args, key) for key in ("scheduler", "warmup_steps", "replay", "replay_sets",
                                                              "replay_min_length", "lora_dropout",
                                                              "loss_normalization", "lora_targets", "lr", "focus",
                                                              "focal")
                         if getattr(args, key) is not None}
                config = TrainConfig(
                    tasks=[task], method=method, lengths=TRAIN_LENGTHS.get(task, (1, 8)), per_length=args.per_length,
                    max_steps=args.steps, epochs=args.epochs, model=args.model, finetune=args.finetune,
                    lora_r=args.lora_r, lora_alpha=args.lora_r, trainable=args.trainable, batch_size=args.batch_size,
                    out=run_dir, seed=seed, save_every=10**9, progress=False, position_scheme=args.position_scheme,
                    balance_lengths=args.balance_lengths, bucket_batches=args.bucket_batches,
                    precision=args.precision, **given,
                )
                started = time.perf_counter()
                train(config)
                train_s = time.perf_counter() - started
                for row in evaluate_model(run_dir, task, method, eval_lengths[task], args.n):
                    rows.append({"task": task, "method": method, "seed": seed,
                                 "train_lengths": list(config.lengths), "train_s": round(train_s, 1),
                                 "finetune": config.finetune, "lr": config.lr, "scheduler": config.scheduler,
                                 "replay": config.replay, "replay_sets": config.replay_sets,
                                 "replay_min_length": config.replay_min_length,
                                 "lora_dropout": config.lora_dropout, "focus": config.focus,
                                 "focal": config.focal,
                                 "precision": config.precision,
                                 "lora_targets": config.lora_targets if config.finetune == "lora" else None, **row})
                    print(json.dumps(rows[-1]), flush=True)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"{args.threads} thread(s)",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "rows": rows,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in result["rows"] if r["task"] == task]
        for method in dict.fromkeys(r["method"] for r in rows):
            lengths = sorted({r["length"] for r in rows if r["method"] == method})
            means = [sum(r["accuracy"] for r in rows if r["method"] == method and r["length"] == length)
                     / sum(1 for r in rows if r["method"] == method and r["length"] == length) for length in lengths]
            ax.plot(lengths, means, marker="o", label=method)
        ax.axvspan(rows[0]["train_lengths"][0], rows[0]["train_lengths"][1], color="grey", alpha=0.15,
                   label="training lengths")
        ax.set(title=task, xlabel="problem length", ylabel="exact-match accuracy", ylim=(-0.03, 1.03))
        ax.legend(fontsize=8)
    fig.suptitle(f"retune default model, {result['settings']['steps']} steps ({result['date'][:10]})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=["parity", "addition", "dp"])
    parser.add_argument("--methods", type=lambda s: s.split(","), default=["retuning", "scratchpad", "baseline"])
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=200, help="test problems per length")
    parser.add_argument("--steps", type=int, default=DEFAULT_METHOD_STEPS,
                        help="optimizer steps per training run (default: retune run's)")
    parser.add_argument("--epochs", type=int, help="passes over each run's records, at most (default: no cap, "
                        "as retune run)")
    parser.add_argument("--per-length", type=int, default=600, help="training problems per length")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, help="TrainConfig.lr (default: its auto choice)")
    parser.add_argument("--scheduler", choices=["constant", "cosine"],
                        help="TrainConfig.scheduler (default: its auto choice)")
    parser.add_argument("--warmup-steps", type=int, help="TrainConfig.warmup_steps (default: its auto choice)")
    parser.add_argument("--replay", type=float, help="TrainConfig.replay (default: its auto choice)")
    parser.add_argument("--replay-sets", type=int, help="TrainConfig.replay_sets (default: 1)")
    parser.add_argument("--replay-min-length", type=int, help="TrainConfig.replay_min_length (default: 0)")
    parser.add_argument("--lora-dropout", type=float, help="TrainConfig.lora_dropout (default: 0.05)")
    parser.add_argument("--focus", type=int, help="TrainConfig.focus: hard examples added per micro-batch (default: 0)")
    parser.add_argument("--focal", type=float, help="TrainConfig.focal: focal loss exponent (default: 0, cross-entropy)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="TrainConfig.precision (auto: bf16 mixed precision on a GPU, fp32 on CPU)")
    parser.add_argument("--model", default="default",
                        help="default (pretrained), default-scratch (no pretraining) or a model directory")
    parser.add_argument("--finetune", default="auto", choices=["auto", "full", "lora"],
                        help="TrainConfig.finetune (auto: full for default-scratch, else LoRA)")
    parser.add_argument("--lora-targets", type=lambda s: s.split(","),
                        help="TrainConfig.lora_targets (default: its auto choice), e.g. q_proj,k_proj,v_proj,o_proj")
    parser.add_argument("--trainable", type=lambda s: s.split(","), default=[],
                        help="TrainConfig.trainable (full fine-tuning of these parameters only), e.g. mlp")
    parser.add_argument("--lora-r", type=int, default=64, help="TrainConfig.lora_r (alpha is set equal)")
    parser.add_argument("--position-scheme", default="auto", choices=["auto", *SCHEMES])
    parser.add_argument("--loss-normalization", choices=["token", "example"],
                        help="TrainConfig.loss_normalization (default: its auto choice)")
    parser.add_argument("--balance-lengths", action=argparse.BooleanOptionalAction, default=True,
                        help="give every training length the same weight (TrainConfig.balance_lengths)")
    parser.add_argument("--bucket-batches", type=int, default=64, help="TrainConfig.bucket_batches (1: random batches)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--eval-lengths", action="append", metavar="TASK=L1,L2,...")
    parser.add_argument("--quick", action="store_true", help="1 seed, 30 problems per length, 300 steps")
    parser.add_argument("--runs", help="directory for the training runs (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results", help="where the JSON and the plot go")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n, args.steps = args.seeds[:1], min(args.n, 30), min(args.steps, 300)
    result = run_grid(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "length_generalization.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / "length_generalization.png")
    print(f"wrote {out / 'length_generalization.json'} and {out / 'length_generalization.png'}")


if __name__ == "__main__":
    main()
