"""``TrainConfig``: every training setting in one validated pydantic model.

A config comes from keyword arguments, from a JSON file (:func:`load_config_file`) or from both, with the
command line overriding the file. Settings left as ``None`` or ``"auto"`` are resolved on validation (see
:meth:`TrainConfig._resolve`), so the ``train_config.json`` that a run writes holds the values actually used.

The default model's fine-tuning recipe (the "auto" values below) comes from measurements on 2 CPU cores and a
GPU (docs/length-generalization.md, sessions 4-8): LoRA r=64 on its MLPs (``gate_proj``/``up_proj``/``down_proj``)
with its attention frozen, lr 1.5e-3, 100 warmup steps and a cosine decay over ``max_steps``, the loss averaged
over tokens, batch 16, and 0.05 pretraining records replayed per task record, none of them a whole copy (since
session 14, with the shipped weights whose last pretraining stage has none either) and some of them the lookup of
each argument's first symbol (``firsts``, since session 15; addition at 32 digits, seed 1: 0.34 without, 0.985
with). Pretraining taught the attention to copy lines (the shipped weights copy 60-item lists in 0.98-1.00 of
the probes; those before session 14 hardly copied long bit lists, and each fine-tuning built that copy anew, docs
session 11), which recursive calls
need beyond the training lengths; full fine-tuning on short problems unlearns it (addition trained on 1-8
digits: 0.00 at 16 digits fully fine-tuned, 0.84-1.00 with this LoRA), and even LoRA on the MLPs alone loses
copies of long lists in some seeds unless a few pretraining records are replayed (parity at 50 bits, seed 4:
0.36-0.52 without replay, 1.00 with it). More replay slows the combine: its records have long outputs, so at 0.2
they are ~40% of addition's supervised tokens (0.47 at 4 digits in one seed). The high early learning rate ends the
plateau of a combine such as parity's XOR, and the decay keeps the long copies; 2e-3 lost the XOR again in one
parity seed, 1e-3 lost some of addition's range, 1.5e-3 kept both (parity 0.995-1.00 at 50 bits in five seeds).
Without a step horizon (a time budget alone) the schedule is constant; with both a step horizon and a time budget
the trainer fits the cosine to whichever ends first (:mod:`retune.engines.training.trainer`). Other models keep the
usual defaults (LoRA on the attention, the paper's choice, at 2e-4; full fine-tuning at 2e-5; a constant schedule;
per-example loss; no replay). A model directory written by ``retune.models.pretraining`` (a pretraining of the
default architecture, such as the benchmark candidates) gets the default model's recipe too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retune.core.errors import RetuneError
from retune.core.lengths import parse_lengths
from retune.core.methods import check_method
from retune.models.pretraining import MAX_ITEMS, PRETRAINING_FILE, check_edits, parse_edits

DEFAULT_MODEL = "default"  # the embedded default model with its shipped pretrained weights
SCRATCH_MODEL = "default-scratch"  # the same architecture, freshly initialised (pretraining, ablations)
EMBEDDED_MODELS = (DEFAULT_MODEL, SCRATCH_MODEL)
CONFIG_FILE = "train_config.json"
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
DEFAULT_MODEL_LORA_TARGETS = ("gate_proj", "up_proj", "down_proj")
DEFAULT_MODEL_LR = 1.5e-3  # the default model's LoRA learning rate (see the module doc)
DEFAULT_MODEL_REPLAY = 0.05  # pretraining records per task record when fine-tuning the default model
# The edits those records ask for: no copy and no rewrite, as in the last stage of the shipped weights' pretraining
# (a replayed copy teaches that a problem line may be copied whole at its Solution:, which long calls then do,
# session 13; a rewrite of a line without words, such as two numbers around an operator, is such a copy), and
# firsts, the lookup of each argument's first symbol that a combine needs far past the training lengths (session 15)
DEFAULT_MODEL_REPLAY_EDITS = {"smaller": 4.0, "grow": 2.0, "compare": 2.0, "firsts": 2.0}
DEFAULT_MODEL_REPLAY_EDITS_TEXT = ",".join(f"{name}={weight:g}" for name, weight in DEFAULT_MODEL_REPLAY_EDITS.items())
DEFAULT_MODEL_MAX_WARMUP = 100  # warmup steps: this many, or a tenth of max_steps when fewer

# Settings that may change when a run is resumed; every other one must match the run's saved config.
RESUMABLE_CHANGES = frozenset(
    {"max_steps", "time_budget", "epochs", "save_every", "keep_checkpoints", "progress", "resume"}
)

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d*)?)h)?(?:(?P<m>\d+(?:\.\d*)?)m)?(?:(?P<s>\d+(?:\.\d*)?)s?)?$")


def parse_duration(text: str | float) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"1h30m"``; raises ``ValueError``."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match:
        raise ValueError(f"bad duration {text!r}: expected e.g. 90s, 10m, 1h30m")
    return 3600 * float(match["h"] or 0) + 60 * float(match["m"] or 0) + float(match["s"] or 0)


class TrainConfig(BaseModel):
    """All settings of one training run. ``out`` is the only required one."""

    model_config = ConfigDict(extra="forbid")

    # ---- data: either built from tasks (``build_records``) or read from a JSONL file --------------
    tasks: list[str] = Field(default_factory=list, description="task names to build records for")
    method: str = Field("retuning", description="retuning, scratchpad or baseline")
    lengths: tuple[int, int] = Field((1, 10), description="problem lengths LO-HI to build records for")
    per_length: int = Field(200, ge=1, description="problems per length")
    data: Path | None = Field(None, description="JSONL file of records (instead of tasks)")
    max_length: int = Field(2048, ge=2, description="longer examples (input+output+EOS) are dropped")

    # ---- model ---------------------------------------------------------------------------------------
    model: str = Field(DEFAULT_MODEL, description="'default' (the embedded pretrained model), 'default-scratch' "
                       "(the same, freshly initialised) or a transformers model directory")
    finetune: Literal["auto", "full", "lora"] = Field(
        "auto", description="auto: LoRA for the default model and a model directory, full for default-scratch"
    )
    trainable: list[str] = Field(
        default_factory=list, description="full fine-tuning trains only the parameters whose names contain one of "
        "these (e.g. 'mlp': attention, embeddings and head stay frozen); empty: all"
    )
    lora_r: int = Field(64, ge=1)
    lora_alpha: int = Field(64, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | None = Field(
        None, description="modules LoRA adapts; auto: the MLPs of the default model (its pretrained attention "
        "holds the copy skills that calls need beyond the training lengths), the attention projections of a "
        "model directory (the paper's choice)"
    )
    merge_lora: bool = Field(True, description="also save the merged full model in the run dir (LoRA only)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 (else fp16) mixed precision on a GPU, fp32 on CPU"
    )

    # ---- optimisation --------------------------------------------------------------------------------
    batch_size: int = Field(16, ge=1, description="examples per micro-batch and process")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float | None = Field(
        None, gt=0, description=f"auto: {DEFAULT_MODEL_LR:g} default model (LoRA), 1e-3 fully fine-tuned embedded "
        "model, 2e-4 LoRA, 2e-5 full fine-tuning"
    )
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["auto", "constant", "cosine"] = Field(
        "auto", description="after linear warmup; auto: cosine for the default model when max_steps or epochs "
        "fix the horizon, else constant"
    )
    warmup_steps: int | None = Field(
        None, ge=0, description=f"auto: min({DEFAULT_MODEL_MAX_WARMUP}, max_steps / 10) for the default model with "
        "max_steps, else 0"
    )
    max_grad_norm: float | None = Field(1.0, gt=0)
    bucket_batches: int = Field(64, ge=1, description="batches per length-sorted bucket")
    balance_lengths: bool = Field(
        True, description="repeat records so that every (task, length) has about as many as the commonest one "
        "(few distinct short problems exist; without it the base case and short calls are rarely seen)"
    )
    pack_calls: bool = Field(
        False, description="train a call step and the steps that resume it after its return as one sequence "
        "(the same loss, the shared context computed once: more records per second)"
    )
    loss_normalization: Literal["auto", "token", "example"] = Field(
        "auto", description="token: mean over all supervised tokens; example: mean over each example's supervised "
        "tokens, then over examples (every decision of a recursion weighs the same, however long its text); "
        "auto: token for the default model, example otherwise"
    )
    replay: float | None = Field(
        None, ge=0, le=1, description="add this many pretraining records (retune.models.pretraining) per task "
        "record, so that fine-tuning keeps the default model's generic copy skills; "
        f"auto: {DEFAULT_MODEL_REPLAY:g} for the default model, else 0"
    )
    replay_sets: int = Field(
        1, ge=1, description="distinct sets of replay records, one per epoch in turn: with more than one, an "
        "epoch replays other pretraining records than the epoch before (the same share each epoch)"
    )
    replay_min_length: int = Field(
        0, ge=0, le=MAX_ITEMS, description="replay only pretraining records whose longest list or number has at least "
        "this many items (the long copies that short task problems never exercise)"
    )
    replay_edits: dict[str, float] | None = Field(
        None, description="the edits replayed records ask for, NAME=WEIGHT,... (retune.models.pretraining); auto: "
        f"{DEFAULT_MODEL_REPLAY_EDITS_TEXT} for the default model (no copy or rewrite: no replayed record asks to "
        "copy a problem whole at its Solution:), else its EDITS"
    )
    focus: int = Field(
        0, ge=0, description="extra examples per micro-batch, drawn from the task's examples the model got wrong "
        "when last trained, in proportion to their largest token loss (retune.engines.training.focus); 0: none"
    )
    focal: float = Field(
        0.0, ge=0, description="focal loss exponent gamma: each supervised token's loss is weighted by (1 - p)^gamma, "
        "p the probability of its label, so tokens the model already gets right weigh less than the ones it "
        "does not; 0: plain cross-entropy"
    )
    position_scheme: Literal["auto", "sequential", "hierarchical", "words", "wordlists"] = Field(
        "auto", description="position ids (retune.models.positions); auto: the model's own "
        "(retune_position_scheme in its config.json, else sequential)"
    )

    # ---- stopping: the first limit reached ends the run; with none, one epoch ----------------------------
    max_steps: int | None = Field(None, ge=1)
    time_budget: float | None = Field(
        None, gt=0, description="seconds of training, e.g. 600 or '10m'; a cosine schedule with max_steps ends "
        "at the step that fits it, when the steps do not")
    epochs: int | None = Field(None, ge=1)

    # ---- run -------------------------------------------------------------------------------------------
    out: Path = Field(description="run directory")
    seed: int = 0
    save_every: int = Field(500, ge=1, description="checkpoint interval in optimizer steps")
    keep_checkpoints: int = Field(2, ge=1)
    resume: bool = Field(False, description="continue from the run dir's latest checkpoint")
    progress: bool = Field(True, description="show a progress bar")

    @field_validator("tasks", "lora_targets", "trainable", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        return check_method(value)

    @field_validator("lengths", mode="before")
    @classmethod
    def _parse_lengths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_lengths(value)
        return value

    @field_validator("lengths")
    @classmethod
    def _check_lengths(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"need 1 <= LO <= HI, got {value[0]}-{value[1]}")
        return value

    @field_validator("replay_edits", mode="before")
    @classmethod
    def _parse_replay_edits(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_edits(value)
        return value if value is None else check_edits(dict(value))

    @field_validator("time_budget", mode="before")
    @classmethod
    def _parse_time_budget(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _resolve(self) -> TrainConfig:
        if self.tasks and self.data is not None:
            raise ValueError("give tasks or a data file, not both")
        default = uses_default_recipe(self.model)  # the default model's measured recipe (see the module doc)
        if self.finetune == "auto":
            self.finetune = "full" if self.model == SCRATCH_MODEL else "lora"
        if self.lora_targets is None:
            self.lora_targets = list(DEFAULT_MODEL_LORA_TARGETS if default else ATTENTION)
        if self.lr is None:
            self.lr = (DEFAULT_MODEL_LR if default and self.finetune == "lora"
                       else 1e-3 if self.model in EMBEDDED_MODELS else 2e-4 if self.finetune == "lora" else 2e-5)
        if self.scheduler == "auto":
            self.scheduler = "cosine" if default and (self.max_steps or self.epochs) else "constant"
        if self.warmup_steps is None:
            self.warmup_steps = min(DEFAULT_MODEL_MAX_WARMUP, self.max_steps // 10) if default and self.max_steps else 0
        if self.loss_normalization == "auto":
            self.loss_normalization = "token" if default else "example"
        if self.replay is None:
            self.replay = DEFAULT_MODEL_REPLAY if default else 0.0
        if self.replay_edits is None and default:
            self.replay_edits = dict(DEFAULT_MODEL_REPLAY_EDITS)
        if self.scheduler == "cosine" and self.max_steps is None and self.epochs is None and self.time_budget:
            raise ValueError("a cosine schedule under a time budget needs max_steps or epochs too")
        return self

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")


def uses_default_recipe(model: str) -> bool:
    """Whether ``model`` gets the default model's recipe: the embedded default model, or a model directory
    that ``retune.models.pretraining`` wrote (it holds a ``pretraining.json``): its own pretraining of the default
    architecture, which the recipe's replay records come from (an arithmetic candidate fine-tuned on DP, seeds 0 /
    1: 0.315 / 0.61 at 3 items with this recipe, 0.305 / 0.28 with the usual one; docs session 17)."""
    return model == DEFAULT_MODEL or (model != SCRATCH_MODEL and (Path(model) / PRETRAINING_FILE).is_file())


def make_config(values: dict[str, Any]) -> TrainConfig:
    """Validate settings; an invalid one raises a one-line :class:`RetuneError` naming it."""
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        setting = f"setting {where}" if where else "settings"
        raise RetuneError(f"invalid training {setting}: {message}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a JSON config file (a dict of :class:`TrainConfig` fields)."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except OSError:
        raise RetuneError(f"config file {str(path)!r} cannot be read") from None
    except json.JSONDecodeError as exc:
        raise RetuneError(f"config file {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(values, dict):
        raise RetuneError(f"config file {str(path)!r} must hold a JSON object of settings")
    return values


def check_resumable(saved: TrainConfig, current: TrainConfig) -> None:
    """Raise if ``current`` changes a setting that a resumed run must keep."""
    old, new = saved.model_dump(mode="json"), current.model_dump(mode="json")
    changed = sorted(key for key in old if key not in RESUMABLE_CHANGES and old[key] != new[key])
    if changed:
        raise RetuneError(f"cannot resume with changed settings: {', '.join(changed)} (they differ from {CONFIG_FILE})")
