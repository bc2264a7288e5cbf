"""``retune run``: generate data, train every method with the same budget, evaluate by length, report.

A run directory holds ``run_config.json`` (the settings), ``run_state.json`` (which phases are done), one
training run per method (``<out>/<method>/``: model, ``train_config.json``, ``data_summary.json``,
``training_log.jsonl``, ``results.json``, ``plot.png``) and, at the top, ``results.json`` (every method's
results), ``plot.png`` (one line per method) and ``table.txt``. Running the same command again resumes: a
finished phase is skipped and an interrupted training continues from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, Field, ValidationError, field_validator

from retune.core.errors import RetuneError
from retune.core.lengths import length_list, parse_lengths
from retune.core.methods import METHODS, check_method

RUN_CONFIG = "run_config.json"
RUN_STATE = "run_state.json"
# Training per method when no limit is given: DEFAULT_METHOD_STEPS optimizer steps (the horizon of the default
# model's cosine schedule) or as many as fit DEFAULT_METHOD_BUDGET seconds, whichever is fewer (the trainer fits the
# schedule to the budget). Issue #5 allows 10 minutes per method on 2 CPU cores, where parity and addition fit
# 5,000-6,000 steps and DP ~2,000. More steps help addition past its range; with the weights shipped before session
# 14 they wore parity's long copies in some seeds (so the default was 4,000), while the shipped weights' last stage
# of pretraining copies long lists itself and parity holds 1.00 at 50 and 60 bits with 6,000 steps in every seed
# measured (docs/length-generalization.md, sessions 9, 10 and 14).
DEFAULT_METHOD_STEPS = 6000
DEFAULT_METHOD_BUDGET = 600.0
# Settings a resumed run may change: they do not alter what was already trained or measured.
RESUMABLE = {"progress", "eval_batch_size"}


class RunConfig(BaseModel):
    tasks: list[str]
    methods: list[str] = Field(default_factory=lambda: list(METHODS))
    model: str = "default"
    out: Path
    train_lengths: tuple[int, int] | None = None  # default: the first task's default_train_lengths
    eval_lengths: list[int] | None = None  # default: the training range, then 1.5x to 5x its top
    per_length: int = Field(600, ge=1, description="training problems per length")
    eval_per_length: int = Field(50, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps per method")
    epochs: int | None = Field(None, ge=1, description="passes over each method's records, at most (the paper's "
                               "limit is 5)")
    time_budget: float | None = Field(None, gt=0, description="seconds of training in all, split among methods")
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    seed: int = 0
    progress: bool = True

    @field_validator("tasks", "methods", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no method given")
        return [check_method(m) for m in dict.fromkeys(value)]

    def resolved(self, registry) -> "RunConfig":
        """A copy with every default filled in from the tasks."""
        tasks = [registry.get(name) for name in self.tasks]
        if not tasks:
            raise RetuneError("no task given")
        train = self.train_lengths or tasks[0].default_train_lengths
        for task in tasks:
            task.check_length(train[0])
        evals = self.eval_lengths or default_eval_lengths(train, max(t.default_eval_lengths[1] for t in tasks))
        steps, budget = self.max_steps, self.time_budget
        if not (steps or budget or self.epochs):
            steps, budget = DEFAULT_METHOD_STEPS, DEFAULT_METHOD_BUDGET * len(self.methods)
        return self.model_copy(update={"train_lengths": tuple(train), "eval_lengths": evals, "max_steps": steps,
                                       "time_budget": budget})


def default_eval_lengths(train: tuple[int, int], cap: int) -> list[int]:
    """Every training length, then 1.5, 2, 3, 4 and 5 times the longest (at most ``cap``)."""
    lo, hi = train
    beyond = {round(hi * factor) for factor in (1.5, 2, 3, 4, 5)}
    return sorted(set(range(lo, hi + 1)) | {n for n in beyond if n <= max(cap, hi)})


def make_run_config(values: dict) -> RunConfig:
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise RetuneError(f"invalid run setting {where}: {error['msg'].removeprefix('Value error, ')}") from None


# ---- state on disk ------------------------------------------------------------------------------------
def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _check_or_start(config: RunConfig) -> dict:
    """Start the run dir, or check that it holds a run with the same settings; returns the run state."""
    out = config.out
    saved = out / RUN_CONFIG
    mine = config.model_dump(mode="json")
    if saved.is_file():
        theirs = json.loads(saved.read_text())
        changed = sorted(k for k in mine if k not in RESUMABLE and theirs.get(k) != mine[k])
        if changed:
            raise RetuneError(
                f"{out} holds a run with other settings ({', '.join(changed)}): choose another --out to start anew"
            )
        state = json.loads((out / RUN_STATE).read_text()) if (out / RUN_STATE).is_file() else {}
    else:
        if out.is_dir() and any(out.iterdir()):
            raise RetuneError(f"{out} is not empty and holds no retune run")
        state = {}
    _write_json(saved, mine)
    return state


# ---- the pipeline -------------------------------------------------------------------------------------
def run(config: RunConfig, echo=click.echo) -> dict:
    """Train and evaluate every method of ``config``; returns the combined results."""
    from retune.engines.training import make_config, train
    from retune.engines.training.trainer import training_summary
    from retune.eval.evaluate import evaluate
    from retune.eval.report import load_results, plot_results, write_results
    from retune.plugins import get_registry

    config = config.resolved(get_registry())
    state = _check_or_start(config)
    lo, hi = config.train_lengths
    budget = config.time_budget / len(config.methods) if config.time_budget else None
    results = []
    for index, method in enumerate(config.methods, 1):
        run_dir = config.out / method
        done = state.setdefault(method, {})
        header = f"[{index}/{len(config.methods)}] {method}"
        if not done.get("trained"):
            echo(f"{header}: training on {','.join(config.tasks)} lengths {lo}-{hi}"
                 + (f", {budget:.0f} s budget" if budget else "") + (f", {config.max_steps} steps" if config.max_steps else ""),
                 err=True)
            train(make_config({
                "tasks": config.tasks, "method": method, "lengths": (lo, hi), "per_length": config.per_length,
                "model": config.model, "out": run_dir, "max_steps": config.max_steps, "time_budget": budget,
                "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed, "resume": True,
                "progress": config.progress,
            }))
            done["trained"] = True
            _write_json(config.out / RUN_STATE, state)
        if not done.get("evaluated"):
            echo(f"{header}: evaluating lengths {_span(config.eval_lengths)}, {config.eval_per_length} per length",
                 err=True)
            result = evaluate(run_dir, config.eval_lengths, config.eval_per_length, config.eval_batch_size,
                              config.seed, progress=_progress(echo) if config.progress else None)
            if config.progress:
                echo("", err=True)
            write_results(result, run_dir / "results.json")
            done["evaluated"] = True
            _write_json(config.out / RUN_STATE, state)
        results.append(load_results(run_dir / "results.json"))
    combined = {
        "tasks": config.tasks,
        "methods": config.methods,
        "train_lengths": [lo, hi],
        "eval_lengths": config.eval_lengths,
        "seed": config.seed,
        "by_method": {r["method"]: _slim(r) for r in results},
        "training": {method: training_summary(config.out / method) for method in config.methods},
    }
    _write_json(config.out / "results.json", combined)
    plot_results(results, config.out / "plot.png", title=f"{','.join(config.tasks)}: accuracy by length")
    table = comparison_table(combined)
    (config.out / "table.txt").write_text(table + "\n")
    return combined


def comparison_table(combined: dict) -> str:
    """Accuracy by length, one column per method, training lengths marked with ``*``."""
    methods = combined["methods"]
    lo, hi = combined["train_lengths"]
    lengths = sorted({int(n) for r in combined["by_method"].values() for n in r["by_length"]})
    width = max(10, *(len(m) for m in methods)) + 2
    lines = ["length  " + "".join(f"{m:>{width}}" for m in methods)]
    for n in lengths:
        cells = []
        for m in methods:
            entry = combined["by_method"][m]["by_length"].get(str(n))
            cells.append(f"{entry['accuracy']:>{width}.3f}" if entry and entry["accuracy"] is not None else f"{'-':>{width}}")
        lines.append(f"{n:>5}{'*' if lo <= n <= hi else ' '}  " + "".join(cells))
    most = max(e["n"] for r in combined["by_method"].values() for e in r["by_length"].values())
    lines.append(f"(* = training length; up to {most} test problems per length)")
    if combined.get("training"):
        trained = [f"{m} {t['steps']} steps in {t['seconds']:.0f} s"
                   + (" (fitted to the budget)" if "fitted_steps" in t else "")
                   for m, t in combined["training"].items()]
        lines.append("(trained: " + "; ".join(trained) + ")")
    return "\n".join(lines)


def _slim(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("problems", "failures")}


def _span(lengths: list[int]) -> str:
    return ",".join(str(n) for n in lengths) if len(lengths) <= 8 else f"{lengths[0]}-{lengths[-1]} ({len(lengths)} lengths)"


def _progress(echo):
    def show(message: str) -> None:
        echo(f"\r{message}   ", err=True, nl=False)

    return show


def parse_run_lengths(train: str | None, evals: str | None) -> dict:
    return {
        "train_lengths": parse_lengths(train) if train else None,
        "eval_lengths": length_list(evals) if evals else None,
    }
