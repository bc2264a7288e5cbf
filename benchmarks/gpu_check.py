"""GPU check of the training engine: bf16 LoRA on a randomly initialised ~1B-parameter LLaMA.

    python benchmarks/gpu_check.py [--steps 300] [--time-budget 180]

Without CUDA it says so and exits 0. Otherwise :func:`check_training` builds a LLaMA-architecture model of
about 1.0B parameters from a config (over retune's character tokenizer; nothing is downloaded), saves it
as a plain transformers directory, trains a LoRA adapter on it with ``retune.engines.training.train``
(bf16 mixed precision, paper LoRA settings) on parity Re-Tuning records for a few hundred steps, and prints
tokens/s, supervised tokens/s, the loss drop and the peak GPU memory, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from retune.engines.training import TrainConfig, train
from retune.models import build_default_model

# ~1.0B parameters: 20 layers x (4 x 2048^2 attention + 3 x 2048 x 5504 MLP).
ONE_B = {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 20, "num_attention_heads": 16}


def check_training(root: Path, architecture: dict, steps: int, time_budget: float, precision: str = "bf16") -> dict:
    """Train LoRA on a random model of ``architecture`` and return the measured figures."""
    from retune.core.data import build_records

    torch.manual_seed(0)
    model, tokenizer = build_default_model(**architecture)
    parameters = sum(p.numel() for p in model.parameters())
    base = root / "base"
    model.to(torch.bfloat16).save_pretrained(base)
    tokenizer.save_pretrained(base)
    del model

    records = build_records(["parity"], "retuning", (1, 10), 100, 0)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    config = TrainConfig(out=root / "run", model=str(base), finetune="lora", precision=precision,
                         max_steps=steps, time_budget=time_budget, save_every=10**9, progress=False)
    started = time.perf_counter()
    run_dir = train(config, records)
    wall = time.perf_counter() - started
    log = [json.loads(line) for line in (run_dir / "training_log.jsonl").read_text().splitlines()]
    timed = log[1:] or log  # the first step includes warm-up
    seconds = sum(e["step_s"] for e in timed)
    return {
        "check": "training",
        "parameters": parameters,
        "precision": precision,
        "steps": len(log),
        "tokens_per_s": round(sum(e["tokens"] for e in timed) / seconds, 1),
        "supervised_tokens_per_s": round(sum(e["supervised_tokens"] for e in timed) / seconds, 1),
        "loss_first_10": round(sum(e["loss"] for e in log[:10]) / len(log[:10]), 4),
        "loss_last_10": round(sum(e["loss"] for e in log[-10:]) / len(log[-10:]), 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--time-budget", type=float, default=180.0, help="seconds of training at most")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device, skipped")
        return
    print(f"gpu_check on {torch.cuda.get_device_name()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        result = check_training(Path(tmp), ONE_B, args.steps, args.time_budget)
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
