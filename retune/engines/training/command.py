"""The ``retune train`` command (``train_command``, registered by :mod:`retune.cli`).

Settings are layered: :class:`TrainConfig` defaults, then a ``--config`` JSON file (or, on ``--resume``
without ``--config``, the run dir's saved ``train_config.json``), then the flags actually given.
Errors are raised as :class:`RetuneError` for the CLI's one-line reporting.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click
from accelerate import PartialState
from click.core import ParameterSource

from retune.core.methods import METHODS
from retune.engines.training.config import (CONFIG_FILE, DEFAULT_MODEL_REPLAY_EDITS_TEXT, TrainConfig,
                                            load_config_file, make_config)

# Command-line parameter -> TrainConfig field, where the names differ.
_FIELD_OF = {"task": "tasks", "no_progress": "progress"}


def _choices(name: str) -> click.Choice:
    """The values a ``Literal`` field of :class:`TrainConfig` allows, as a click choice."""
    return click.Choice(get_args(TrainConfig.model_fields[name].annotation))


def _default(name: str) -> str:
    field = TrainConfig.model_fields[name]
    value = field.get_default(call_default_factory=True)
    if value in (None, "auto") and "auto: " in (field.description or ""):  # resolved by TrainConfig: say how
        return f"[default: {field.description.split('auto: ', 1)[1]}]"
    if isinstance(value, (list, tuple)):
        value = ("," if isinstance(value, list) else "-").join(map(str, value))
    return f"[default: {value}]"


@click.command("train")
@click.option("--task", help="Task name, or several separated by commas (records built by retune).")
@click.option("--method", type=click.Choice(METHODS), help=_default("method"))
@click.option("--lengths", help=f"Problem lengths LO-HI. {_default('lengths')}")
@click.option("--per-length", type=int, help=f"Problems per length. {_default('per_length')}")
@click.option("--data", type=click.Path(dir_okay=False), help="JSONL file of records (instead of --task).")
@click.option("--model", help="'default' (the embedded pretrained model), 'default-scratch' (the same, untrained) or a transformers model directory (one that retune.models.pretraining wrote gets the default model's recipe). [default: default]")
@click.option("--lora", "finetune", flag_value="lora", default=None, help="LoRA fine-tuning (default, except for default-scratch).")
@click.option("--full", "finetune", flag_value="full", help="Full fine-tuning (default for default-scratch).")
@click.option("--lora-r", type=int, help=_default("lora_r"))
@click.option("--lora-alpha", type=int, help=_default("lora_alpha"))
@click.option("--lora-dropout", type=float, help=_default("lora_dropout"))
@click.option("--lora-targets", help="Comma-separated module names. [default: gate_proj,up_proj,down_proj for the "
              "default model, q_proj,k_proj,v_proj,o_proj for a model dir]")
@click.option("--trainable", help="Full fine-tuning of the parameters whose names contain one of these "
              "(comma-separated, e.g. mlp). [default: all]")
@click.option("--merge-lora/--no-merge-lora", default=None, help="Also save the merged model. [default: merge]")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (required).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--time-budget", help="Stop after this much training time, e.g. 90s, 10m, 1h30m (a cosine "
              "schedule with --max-steps is fitted to end within it).")
@click.option("--epochs", type=int, help="Stop after this many epochs. [default: 1 when no other limit]")
@click.option("--batch-size", type=int, help=f"Examples per micro-batch and process. {_default('batch_size')}")
@click.option("--grad-accum", type=int, help=f"Micro-batches per optimizer step. {_default('grad_accum')}")
@click.option("--lr", type=float, help=f"Learning rate. {_default('lr')}")
@click.option("--weight-decay", type=float, help=_default("weight_decay"))
@click.option("--scheduler", type=_choices("scheduler"), help=f"After warmup. {_default('scheduler')}")
@click.option("--warmup-steps", type=int, help=_default("warmup_steps"))
@click.option("--loss-normalization", type=_choices("loss_normalization"),
              help=f"Mean over all supervised tokens, or per example first. {_default('loss_normalization')}")
@click.option("--balance-lengths/--no-balance-lengths", default=None,
              help="Repeat records so that every length weighs the same. [default: balance]")
@click.option("--pack-calls/--no-pack-calls", default=None,
              help="Train a call and its resumption after the return as one sequence. [default: "
              f"{'pack' if TrainConfig.model_fields['pack_calls'].default else 'no packing'}]")
@click.option("--replay", type=float, help=f"Pretraining records added per task record. {_default('replay')}")
@click.option("--replay-sets", type=int, help=f"Distinct replay sets, one per epoch in turn. {_default('replay_sets')}")
@click.option("--replay-min-length", type=int, help=f"Replay only records this long. {_default('replay_min_length')}")
@click.option("--replay-edits", help="NAME=WEIGHT,... of the pretraining edits to replay. [default: auto, "
              f"{DEFAULT_MODEL_REPLAY_EDITS_TEXT} for the default model]")
@click.option("--focus", type=int, help="Extra examples per micro-batch, drawn from those the model got wrong "
              f"when last trained. {_default('focus')}")
@click.option("--focal", type=float, help="Focal loss exponent: weigh each token's loss by (1 - p)^GAMMA. "
              f"{_default('focal')}")
@click.option("--position-scheme", type=_choices("position_scheme"),
              help="Position ids. [default: auto, the model's own]")
@click.option("--max-length", type=int, help=f"Drop longer examples (tokens). {_default('max_length')}")
@click.option("--precision", type=_choices("precision"), help=_default("precision"))
@click.option("--seed", type=int, help=_default("seed"))
@click.option("--save-every", type=int, help=f"Checkpoint every N steps. {_default('save_every')}")
@click.option("--keep-checkpoints", type=int, help=_default("keep_checkpoints"))
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON file of settings.")
@click.option("--resume", is_flag=True, default=None, help="Continue the run in --out from its latest checkpoint.")
@click.option("--no-progress", is_flag=True, default=None, help="No progress bar.")
@click.pass_context
def train_command(ctx: click.Context, config_file: str | None, **options) -> None:
    """Fine-tune a model on training records and save it in --out (loadable with plain transformers)."""
    from retune.engines.training.trainer import train

    given = {
        _FIELD_OF.get(name, name): value
        for name, value in options.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    if "progress" in given:
        given["progress"] = not given["progress"]
    values: dict = {}
    if config_file is not None:
        values = load_config_file(config_file)
    elif given.get("resume") and given.get("out") and (Path(given["out"]) / CONFIG_FILE).is_file():
        values = load_config_file(Path(given["out"]) / CONFIG_FILE)
    config = make_config({**values, **given})
    run_dir = train(config)
    if not config.progress and PartialState().is_main_process:  # else the trainer said it beside its progress bar
        click.echo(f"retune train: model saved in {run_dir}", err=True)
