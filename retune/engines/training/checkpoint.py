"""Atomic training checkpoints under ``<run>/checkpoints/step-N``.

A checkpoint is written into ``checkpoints/.tmp-step-N`` and then renamed to ``step-N`` with ``os.replace``,
so a ``step-N`` directory is always complete and a run killed mid-write leaves only a ``.tmp-`` directory,
which is never taken as the latest (and is removed by the next save). It holds:

* ``weights.pt``: the trainable parameters (all of them for full fine-tuning, the adapter for LoRA);
* ``optimizer.pt`` and ``scheduler.pt``;
* ``rng-<process>.pt``: the Python and torch (CPU and CUDA) RNG states of every process;
* ``trainer_state.json``: the step, the data-order position (epoch, step within it) and the elapsed time;
* ``hardness.pt`` (a run with ``focus``): every example's hardness (:mod:`retune.engines.training.focus`).

Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import torch

from retune.core.errors import RetuneError

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def completed_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = completed_checkpoints(run_dir)
    return done[-1] if done else None


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tmp_dir(run_dir: Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f".tmp-step-{step}"


def begin(run_dir: Path, step: int) -> Path:
    """Create an empty temporary directory for the checkpoint of ``step`` (main process only)."""
    tmp = tmp_dir(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_rng(tmp: Path, process_index: int) -> None:
    """Every process writes its own RNG state into the temporary directory."""
    torch.save(rng_state(), tmp / f"rng-{process_index}.pt")


def commit(run_dir: Path, step: int, model, optimizer, scheduler, state: dict, keep: int) -> Path:
    """Write the shared parts, rename the directory into place and prune old checkpoints (main process only)."""
    tmp = tmp_dir(run_dir, step)
    torch.save(trainable_state(model), tmp / "weights.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    final = checkpoints_dir(run_dir) / f"step-{step}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in completed_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    for stale in checkpoints_dir(run_dir).glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load(path: Path, model, optimizer, scheduler, process_index: int) -> None:
    """Restore a checkpoint's weights, optimizer, scheduler and this process's RNG into the live objects."""
    weights = torch.load(path / "weights.pt", map_location="cpu")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != trainable:
        raise RetuneError(f"checkpoint {path} does not hold this model's trainable parameters")
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    rng_file = path / f"rng-{process_index}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
