"""Writing evaluation results: results.json, the accuracy-by-length plot and a readable table."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from retune.eval.evaluate import OUTCOMES


def write_results(results: dict, path: str | os.PathLike, plot: bool = True) -> tuple[Path, Path | None]:
    """Write ``results`` as JSON to ``path`` (atomically) and, with ``plot``, the plot beside it
    (``plot.png`` for ``results.json``, else ``<stem>.png``). Returns both paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    plot_path = None
    if plot:
        plot_path = path.with_name("plot.png" if path.stem == "results" else f"{path.stem}.png")
        plot_results(results, plot_path)
    return path, plot_path


def load_results(path: str | os.PathLike) -> dict:
    from retune.core.errors import RetuneError

    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RetuneError(f"cannot read results {str(path)!r}: {exc}") from None


def plot_results(results: dict | Sequence[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy against length, one line per result (labelled by method, and task when they differ), the
    training range of each shaded. Several methods' results give one combined plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [results] if isinstance(results, dict) else list(results)
    tasks = {r.get("task") for r in runs}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    shaded: set[tuple[int, int]] = set()
    for index, r in enumerate(runs):
        lengths = sorted(int(k) for k in r["by_length"])
        accuracy = [r["by_length"][str(k)]["accuracy"] for k in lengths]
        label = r.get("label") or (r.get("method", "?") if len(tasks) == 1 else f"{r.get('task')} {r.get('method')}")
        line = ax.plot(lengths, accuracy, marker="o", markersize=3, label=label)[0]
        train = r.get("train_lengths")
        if train and tuple(train) not in shaded:
            shaded.add(tuple(train))
            ranges = {tuple(x["train_lengths"]) for x in runs if x.get("train_lengths")}
            ax.axvspan(train[0] - 0.5, train[1] + 0.5, color="grey" if len(ranges) == 1 else line.get_color(),
                       alpha=0.12, label=f"training lengths {train[0]}-{train[1]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("problem length")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title or (f"{next(iter(tasks))}: accuracy by length" if len(tasks) == 1 else "accuracy by length"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(results: dict) -> str:
    """A fixed-width table: one row per length (``*`` marks training lengths), then the totals."""
    short = {"correct": "ok", "wrong": "wrong", "malformed": "malf", "depth_exceeded": "depth",
             "budget_exceeded": "budget", "cycle": "cycle", "not_smaller": "nsmall"}
    head = f"{'length':>7} {'n':>5} {'acc':>7} {'calls':>7}  " + " ".join(f"{short[o]:>6}" for o in OUTCOMES)
    lines = [
        f"{results['task']} / {results['method']}  (training lengths "
        f"{_range(results.get('train_lengths'))}, * = in training range)",
        head,
    ]
    for length, row in results["by_length"].items():
        mark = "*" if row.get("in_train") else " "
        per_call = row.get("per_call")
        calls = f"{per_call['accuracy']:7.3f}" if per_call and per_call.get("accuracy") is not None else f"{'-':>7}"
        lines.append(
            f"{length:>6}{mark} {row['n']:>5} {row['accuracy']:7.3f} {calls}  "
            + " ".join(f"{row['outcomes'][o]:>6}" for o in OUTCOMES)
        )
    per_call = results.get("per_call")
    lines.append(
        f"{'all':>7} {results['n']:>5} {results['accuracy']:7.3f} "
        + (f"{per_call['accuracy']:7.3f}" if per_call and per_call.get("accuracy") is not None else f"{'-':>7}")
        + "  " + " ".join(f"{results['outcomes'][o]:>6}" for o in OUTCOMES)
    )
    acc_in, acc_out = results.get("accuracy_in_train"), results.get("accuracy_out_of_train")
    lines.append(f"in training range: {_fmt(acc_in)}   outside: {_fmt(acc_out)}")
    errors = results.get("errors") or {}
    if any(errors.values()):
        lines.append("first wrong step of failed problems: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    timing = results.get("timing") or {}
    if timing:
        lines.append(
            f"{timing.get('seconds')} s, {timing.get('problems_per_second')} problems/s, "
            f"{timing.get('tokens_per_problem')} tokens/problem"
        )
    return "\n".join(lines)


def _range(train) -> str:
    return f"{train[0]}-{train[1]}" if train else "unknown"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
