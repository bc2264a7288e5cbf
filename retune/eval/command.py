"""The ``retune eval`` command."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Training run directory.")
@click.option("--lengths", default=None, help="Lengths to test: LO-HI or a list (2-5,10). Default: the task's.")
@click.option("--per-length", default=100, show_default=True, help="Test problems per length.")
@click.option("--batch-size", default=64, show_default=True, help="Rows per forward call (results do not depend on it).")
@click.option("--seed", type=int, default=None,
              help="Test-set seed (problems use SEED + 1000003). Default: the run's training seed, the test set "
                   "`retune run` evaluated.")
@click.option("--task", "tasks", default=None, help="Task(s) to test instead of the run's (comma-separated).")
@click.option("--max-new-tokens", type=int, default=None, help="Cap on one segment (default: from the test set).")
@click.option("--device", default=None, help="torch device (default: where the model loads).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="results.json path (default: RUN/results.json); the plot goes beside it.")
@click.option("--no-plot", is_flag=True, help="Do not draw plot.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def eval_command(run_dir, lengths, per_length, batch_size, seed, tasks, max_new_tokens, device, output, no_plot,
                 as_json, quiet) -> None:
    """Evaluate a trained run by problem length: accuracy, outcomes, per-call accuracy, first errors."""
    import json

    from retune.eval.evaluate import evaluate
    from retune.eval.report import format_table, write_results

    def progress(message: str) -> None:
        click.echo(f"\r{message}   ", err=True, nl=False)

    results = evaluate(
        run_dir,
        lengths,
        per_length,
        batch_size,
        seed,
        tasks=tasks,
        max_new_tokens=max_new_tokens,
        device=device,
        progress=None if quiet else progress,
    )
    if not quiet:
        click.echo("", err=True)
    path = Path(output) if output else Path(run_dir) / "results.json"
    results_path, plot_path = write_results(results, path, plot=not no_plot)
    if as_json:
        click.echo(json.dumps({k: v for k, v in results.items() if k not in ("problems", "failures")}, indent=1))
    else:
        click.echo(format_table(results))
    click.echo(f"wrote {results_path}" + (f" and {plot_path}" if plot_path else ""), err=True)
