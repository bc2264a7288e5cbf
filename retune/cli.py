"""The ``retune`` command line.

Every command reports bad input (unknown task, unparsable problem, bad range, broken plugin) as one line on
stderr and exit status 2, never as a traceback.
"""

from __future__ import annotations

import json
import os
import sys

import click
from pydantic import ValidationError

from retune import __version__
from retune.core.errors import ProblemParseError, RetuneError
from retune.core.lengths import parse_lengths
from retune.core.methods import METHODS
from retune.pipeline import DEFAULT_METHOD_BUDGET, DEFAULT_METHOD_STEPS, RunConfig


def _registry():
    from retune.plugins import get_registry

    return get_registry()


def _task(name: str):
    return _registry().get(name)


def parse_problem(task, text: str):
    """Parse a problem given by a user; one-line error on failure."""
    try:
        return task.parse_problem(text)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
    except ValueError as exc:
        msg = str(exc)
    raise ProblemParseError(f"task {task.name!r} cannot parse problem {text!r}: {msg}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="retune")
def cli() -> None:
    """Teach language models to solve compositional problems by calling themselves (Re-Tuning)."""


@cli.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tasks_command(as_json: bool) -> None:
    """List the registered tasks."""
    registry = _registry()
    rows = [
        {"name": t.name, "description": t.description, "plugin": registry.task_plugin[t.name], "version": t.version}
        for t in (registry.get(n) for n in registry.names())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        width = max([len(r["name"]) for r in rows] + [4])
        pwidth = max([len(r["plugin"]) for r in rows] + [6])
        click.echo(f"{'TASK':<{width}}  {'PLUGIN':<{pwidth}}  VERSION  DESCRIPTION")
        for r in rows:
            click.echo(f"{r['name']:<{width}}  {r['plugin']:<{pwidth}}  {r['version']:<7}  {r['description']}")
    for name, error in registry.errors.items():
        click.echo(f"warning: plugin {name!r} is broken: {error}", err=True)


@cli.command("generate")
@click.option("--task", "tasks", required=True, help="Task name, or several separated by commas.")
@click.option("--method", type=click.Choice(METHODS), default="retuning", show_default=True)
@click.option("--lengths", default="1-8", show_default=True, help="Problem lengths, LO-HI.")
@click.option("--per-length", default=100, show_default=True, help="Top-level problems per length.")
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="JSONL file (default: stdout).")
def generate_command(tasks: str, method: str, lengths: str, per_length: int, seed: int, output: str | None) -> None:
    """Generate training records (JSONL), balanced by length, deduplicated by input, deterministic by seed."""
    from retune.core.data import build_records, write_jsonl

    records = build_records(tasks, method, parse_lengths(lengths), per_length, seed)
    if output:
        write_jsonl(records, output)
        click.echo(f"wrote {len(records)} {method} records for {tasks} (lengths {lengths}) to {output}", err=True)
    else:
        for record in records:
            click.echo(json.dumps(record, ensure_ascii=False))


@cli.command("trace")
@click.option("--task", "task_name", required=True)
@click.argument("problem")
@click.option("--json", "as_json", is_flag=True, help="Print the trace tree as JSON.")
@click.option("--records", is_flag=True, help="Print the problem's training records (all levels) as JSONL.")
@click.option("--method", type=click.Choice(METHODS), default="retuning", show_default=True)
def trace_command(task_name: str, problem: str, as_json: bool, records: bool, method: str) -> None:
    """Show the reference call tree of PROBLEM, with every context."""
    from retune.core.methods import records_for
    from retune.core.trace import build_trace

    task = _task(task_name)
    parsed = parse_problem(task, problem)
    if records:
        for record in records_for(task, parsed, method):
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    trace = build_trace(task, parsed)
    if as_json:
        click.echo(trace.model_dump_json(indent=2))
        return
    _print_tree(trace)


def _print_tree(node, depth: int = 0) -> None:
    pad = "    " * depth
    click.echo(f"{pad}[{node.task}] {node.problem}  =>  {node.answer}")
    for line in node.context_text().split("\n"):
        click.echo(f"{pad}  | {line}")
    for step in node.steps:
        if step.child is not None:
            _print_tree(step.child, depth + 1)


@cli.command("solve")
@click.option("--task", "task_name", required=True)
@click.argument("problem")
@click.option("--oracle", is_flag=True, help="Answer with the task's own reference policy (no model).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), default=None,
              help="Answer with the model of a training run (its method: Re-Tuning recurses, the others answer "
                   "in one context).")
@click.option("--tree", is_flag=True, help="Also print the call tree the policy produced, with every context.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole solution, with its call tree, as JSON.")
def solve_command(task_name: str, problem: str, oracle: bool, run_dir: str | None, tree: bool, as_json: bool) -> None:
    """Solve PROBLEM (recursively, for Re-Tuning) and print its answer."""
    from retune.core.oracle import OraclePolicy
    from retune.core.solver import solve

    task = _task(task_name)
    parsed = parse_problem(task, problem)
    if oracle == (run_dir is not None):
        raise RetuneError("give --oracle or --run RUN (a training run directory), not both")
    if oracle:
        policy, method = OraclePolicy(task), "retuning"
    else:
        from retune.engines.inference import ModelPolicy, load_model
        from retune.eval.evaluate import read_run_config, segment_budget

        method = read_run_config(run_dir)["method"]
        model, tokenizer = load_model(run_dir)
        budget = segment_budget(tokenizer, [task], {task.name: [(None, parsed)]}, method)
        policy = ModelPolicy(model, tokenizer, batch_size=1, max_new_tokens=budget)
    solution = solve(task, [parsed], policy, method)[0]
    if as_json:
        click.echo(solution.model_dump_json(indent=2))
        return
    if tree and solution.tree is not None:
        _print_tree(solution.tree)
    if solution.final is None:
        raise RetuneError(f"no answer: {solution.outcome.value} ({solution.detail})")
    click.echo(solution.final)
    if not solution.correct:
        click.echo(f"(wrong: the reference answer is {solution.expected})", err=True)


# ---- plugins and scaffolding ----
@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List the loaded plugins: distribution, version, tasks and hooks; broken ones with their error."""
    from retune.plugins.scaffold import plugin_rows, plugins_filter_note

    rows = plugin_rows(_registry())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        cells = [(r["name"], r["distribution"] or "-", r["version"] or "-", ",".join(r["tasks"]) or "-",
                  ",".join(r["hooks"]) or "-", f"BROKEN: {r['error']}" if r["error"] else "ok") for r in rows]
        header = ("PLUGIN", "DISTRIBUTION", "VERSION", "TASKS", "HOOKS", "STATUS")
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header) - 1)]
        for row in [header, *cells]:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    note = plugins_filter_note()
    if note:
        click.echo(note, err=True)


@cli.command("new-task")
@click.argument("name")
@click.option("--dir", "directory", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to create the package directory retune-task-NAME/.")
def new_task_command(name: str, directory: str) -> None:
    """Scaffold NAME as a separate pip-installable task plugin package, with a working template task."""
    from retune.plugins.scaffold import new_task, package_dir

    written = new_task(name, directory, _registry())
    root = package_dir(name, directory)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: pip install -e {root} && retune plugins && (cd {root} && python -m pytest)")
# ---- plugins and scaffolding ----


# ---- train (engines.training) ----
from retune.engines.training.command import train_command  # noqa: E402

cli.add_command(train_command)
# ---- train (engines.training) ----


# ---- eval (engines.inference) ----
from retune.eval.command import eval_command  # noqa: E402

cli.add_command(eval_command)
# ---- eval (engines.inference) ----


# ---- run (pipeline) ----
@cli.command("run")
@click.option("--task", "tasks", required=True, help="Task name, or several separated by commas (trained together).")
@click.option("--methods", default=",".join(METHODS), show_default=True, help="Methods to compare, comma-separated.")
@click.option("--model", default="default", show_default=True, help="'default' (the embedded pretrained model), 'default-scratch' (untrained) or a model directory.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (default: runs/TASK).")
@click.option("--max-steps", type=int, default=None, help=f"Optimizer steps per method. [default: "
              f"{DEFAULT_METHOD_STEPS}, or as many as fit {DEFAULT_METHOD_BUDGET:.0f} s each, when no limit is "
              "given]")
@click.option("--time-budget", default=None, help="Training time in all, shared equally by the methods (e.g. 8m).")
@click.option("--epochs", type=int, default=None, help="Passes over each method's records, at most (alone or with "
              "--max-steps or --time-budget: the first limit reached ends training; the paper's runs stop at 5).")
@click.option("--seed", default=0, show_default=True)
@click.option("--train-lengths", default=None, help="Training lengths LO-HI (default: the task's).")
@click.option("--eval-lengths", default=None, help="Test lengths, e.g. 1-10,15,20 (default: training range to 5x).")
@click.option("--per-length", default=RunConfig.model_fields["per_length"].default, show_default=True,
              help="Training problems per length.")
@click.option("--eval-per-length", default=50, show_default=True, help="Test problems per length.")
@click.option("--batch-size", default=16, show_default=True, help="Training batch size.")
@click.option("--eval-batch-size", default=64, show_default=True, help="Inference batch (results do not depend on it).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run_command(tasks, methods, model, out, max_steps, time_budget, epochs, seed, train_lengths, eval_lengths,
                per_length, eval_per_length, batch_size, eval_batch_size, no_progress) -> None:
    """Generate data, train each method with the same budget, evaluate by length and print the comparison.

    Running the same command again resumes an interrupted run."""
    from retune.engines.training.config import parse_duration
    from retune.pipeline import comparison_table, make_run_config, parse_run_lengths, run

    if max_steps is not None and time_budget is not None:
        raise RetuneError("give --max-steps or --time-budget, not both")
    try:
        budget = parse_duration(time_budget) if time_budget is not None else None
    except ValueError as exc:
        raise RetuneError(str(exc)) from None
    config = make_run_config({
        "tasks": tasks, "methods": methods, "model": model,
        "out": out or f"runs/{tasks.replace(',', '+')}", "max_steps": max_steps, "time_budget": budget,
        "epochs": epochs, "seed": seed, "per_length": per_length, "eval_per_length": eval_per_length,
        "batch_size": batch_size, "eval_batch_size": eval_batch_size, "progress": not no_progress,
        **parse_run_lengths(train_lengths, eval_lengths),
    })
    combined = run(config)
    click.echo(comparison_table(combined))
    click.echo(f"results: {config.out}/results.json, plot: {config.out}/plot.png", err=True)
# ---- run (pipeline) ----


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning retune's errors into one stderr line and exit status 2."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # retune shows its own progress
    from transformers.utils import logging as hf_logging  # imported already: the env var came too late for it

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every model load
    try:
        cli.main(args=argv, prog_name="retune", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except RetuneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
