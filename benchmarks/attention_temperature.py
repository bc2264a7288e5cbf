"""Accuracy by length of a trained run when its attention is made sharper past the training range (inference only).

Each context's attention logits are multiplied by ``1 + c * ln(n / N)`` when its problem is longer than the run's
longest training problem (``n`` the problem's length, ``N`` the longest trained; YaRN's temperature for a context
``n / N`` times the trained one), and by 1 otherwise, so inside the range the model computes exactly what it was
trained to. The factor scales every layer's queries (RoPE is linear, so the logits scale with them). A context whose
first line the run's task cannot parse (a call of another task) keeps the factor 1::

    python benchmarks/attention_temperature.py --run RUN --lengths 16,24,32 --per-length 400 --c 0,0.1

prints one JSON line per ``c`` (accuracy and first errors by length). It patches the inference engine's private
batch loop (``ModelPolicy._generate_batch``) and cache selection to know each row's problem, so it measures the
engine of this commit; docs/length-generalization.md (session 24) has the figures.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from transformers import DynamicCache

import retune.engines.inference.policy as policy_module
from retune.eval.evaluate import evaluate, read_run_config
from retune.plugins import get_registry


def _factor(task, context: str, longest: int, c: float) -> float:
    try:
        length = task.length(task.parse_problem(context.split("\n", 1)[0]))
    except Exception:  # another task's call, or not a problem line
        return 1.0
    return 1.0 + c * math.log(max(1.0, length / longest))


def measure(run: str, lengths: str, per_length: int, cs: list[float], seed: int = 0) -> list[dict]:
    config = read_run_config(run)
    task = get_registry().get(config["tasks"][0])
    longest = max(config["train_lengths"])  # the training range's (first, last)
    state: dict = {"rows": None, "c": 0.0}
    generate, select = policy_module.ModelPolicy._generate_batch, DynamicCache.batch_select_indices

    def generate_batch(self, prompts, contexts, prefixes):
        state["rows"] = torch.tensor([_factor(task, c, longest, state["c"]) for c in contexts])
        hooks = [layer.self_attn.q_proj.register_forward_hook(
            lambda module, args, out: out * state["rows"].to(out.device, out.dtype)[:, None, None])
            for layer in _layers(self.model)]
        try:
            return generate(self, prompts, contexts, prefixes)
        finally:
            for hook in hooks:
                hook.remove()

    def batch_select_indices(self, indices):  # rows that finish leave the batch: their factors leave with them
        state["rows"] = state["rows"][indices.cpu()]
        return select(self, indices)

    policy_module.ModelPolicy._generate_batch = generate_batch
    DynamicCache.batch_select_indices = batch_select_indices
    rows = []
    try:
        for c in cs:
            state["c"] = c
            results = evaluate(run, lengths, per_length=per_length, seed=seed)
            rows.append({"run": run, "c": c, "per_length": per_length, "seed": seed,
                         "accuracy": {k: v["accuracy"] for k, v in results["by_length"].items()},
                         "errors": {k: v["errors"] for k, v in results["by_length"].items()}})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        policy_module.ModelPolicy._generate_batch = generate
        DynamicCache.batch_select_indices = select
    return rows


def _layers(model):
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model.layers


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run directory (retune train / retune run)")
    parser.add_argument("--lengths", required=True, help="evaluation lengths, e.g. 16,24,32")
    parser.add_argument("--per-length", type=int, default=200)
    parser.add_argument("--c", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 0.1],
                        help="temperature coefficients (0: the model as trained)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    measure(args.run, args.lengths, args.per_length, args.c, args.seed)


if __name__ == "__main__":
    main()
