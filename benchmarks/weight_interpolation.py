"""Accuracy by length of a trained run with its weights moved back toward the pretrained model it was tuned from.

Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): ``W = W_base + alpha * (W_run - W_base)`` for every
tensor, ``alpha`` 1 being the run itself and 0 its base model (``--model`` of the run: the embedded default's
shipped weights, or a model directory). Fine-tuning wears some of what pretraining taught (long copies); a run
partly pulled back may keep more of it past the training range, at some cost inside it::

    python benchmarks/weight_interpolation.py --run RUN --lengths 8,32 --per-length 200 --alphas 1,0.9

evaluates each interpolated copy (written to a temporary directory) with ``retune eval``'s test set of the run's
seed (``--seed`` for another) and prints one JSON line per ``alpha``: accuracy and first errors by length. The run
must hold merged weights (``model.safetensors``, as a LoRA run of the default model saves them).
docs/length-generalization.md (session 25) has the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from retune.engines.training.config import DEFAULT_MODEL, SCRATCH_MODEL
from retune.eval.evaluate import evaluate
from retune.models.default import PRETRAINED_DIR

WEIGHTS = "model.safetensors"


def base_dir(run: Path) -> Path:
    """The directory of the model ``run`` was fine-tuned from."""
    model = json.loads((run / "train_config.json").read_text())["model"]
    if model == SCRATCH_MODEL:
        raise SystemExit(f"{run} was trained from scratch: it has no pretrained base to move toward")
    return PRETRAINED_DIR if model == DEFAULT_MODEL else Path(model)


def interpolate(run: Path, base: Path, alpha: float, out: Path) -> Path:
    """A copy of ``run`` at ``out`` whose weights are ``base + alpha * (run - base)``."""
    tuned, pretrained = load_file(run / WEIGHTS), load_file(base / WEIGHTS)
    if set(tuned) != set(pretrained):
        raise SystemExit(f"{run} and {base} hold different tensors")
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("checkpoints", "results.json", "plot.png", WEIGHTS))
    save_file({name: pretrained[name] + alpha * (w - pretrained[name]) for name, w in tuned.items()},
              out / WEIGHTS, metadata={"format": "pt"})
    return out


def measure(run: str, lengths: str, per_length: int, alphas: list[float], seed: int | None = None) -> list[dict]:
    run_dir = Path(run)
    if not (run_dir / WEIGHTS).is_file():
        raise SystemExit(f"{run} holds no merged {WEIGHTS}")
    base, rows = base_dir(run_dir), []
    with tempfile.TemporaryDirectory() as tmp:
        for alpha in alphas:
            copy = interpolate(run_dir, base, alpha, Path(tmp) / f"alpha-{alpha:g}")
            results = evaluate(copy, lengths, per_length=per_length, seed=seed)
            rows.append({"run": run, "alpha": alpha, "per_length": per_length, "seed": results["seed"],
                         "accuracy": {k: v["accuracy"] for k, v in results["by_length"].items()},
                         "errors": {k: v["errors"] for k, v in results["by_length"].items()}})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(copy)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--lengths", default="8,32", help="lengths to test (LO-HI or a list)")
    parser.add_argument("--per-length", type=int, default=200)
    parser.add_argument("--alphas", default="1,0.9", help="comma-separated interpolation weights")
    parser.add_argument("--seed", type=int, default=None, help="test-set seed (default: the run's)")
    args = parser.parse_args()
    measure(args.run, args.lengths, args.per_length, [float(a) for a in args.alphas.split(",")], args.seed)


if __name__ == "__main__":
    main()
