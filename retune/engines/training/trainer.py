"""The training loop: ``train(config, records=None) -> run_dir``.

One optimizer step consumes ``grad_accum`` micro-batches on every process; the loss is the mean over all
supervised tokens of the step (output tokens and EOS), or with ``loss_normalization="example"`` the mean over
the step's examples of each example's mean over its supervised tokens; with ``focal`` > 0 each token's loss is
first weighted by ``(1 - p) ** focal`` (focal loss, ``p`` the probability of its label). Examples carry
explicit position ids when the model's position scheme (:mod:`retune.models.positions`) is not sequential. The run
dir receives ``train_config.json`` (the resolved settings), ``data_summary.json``, ``training_log.jsonl`` (one line per
step: loss, lr, tokens/s, padding and the record indices of every micro-batch), ``checkpoints/step-N``
every ``save_every`` steps and at the end, and the final model (see :mod:`retune.engines.training.modeling`),
which is saved whatever ends the run: the step limit, the epochs or the time budget.

A cosine schedule under both a step limit and a time budget is fitted to the budget: at the end of warmup (or
after :data:`CALIBRATION_STEPS`) the run measures its time per step, and when the remaining steps would not fit
the budget the schedule's horizon (and the run's last step) moves to the step that does, so the learning rate
still decays to zero instead of being cut off part-way; every :data:`REFIT_EVERY` steps the fit is redone
with the mean time per step so far (a machine's speed drifts), which may move the horizon either way, never
past ``max_steps``. The fitted horizon is printed, logged (``fitted_steps``) and saved with every checkpoint
(a resumed run keeps it); how many steps fit depends on the machine, as with any time budget.

Multi-GPU training runs the same code under accelerate (data-parallel; each process takes its own
micro-batches of every step, in a batch order that is the same on all of them)::

    accelerate launch --multi_gpu --num_processes 4 -m retune.cli train --task parity --method retuning \\
        --lengths 1-10 --model PATH --out runs/parity-4gpu
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_constant_schedule_with_warmup

from retune.core.data import build_records, read_jsonl
from retune.core.errors import RetuneError
from retune.engines.training import checkpoint
from retune.engines.training.config import CONFIG_FILE, TrainConfig, check_resumable, load_config_file, make_config
from retune.engines.training.data import (IGNORE_INDEX, Example, balance_lengths, collate, encode_records,
                                          epoch_batches, summarize)
from retune.engines.training.focus import Focus, example_hardness
from retune.engines.training.modeling import load_model, mixed_precision, prepare_finetuning, save_final
from retune.models.positions import CONFIG_KEY as POSITION_KEY
from retune.models.positions import scheme_of

LOG_FILE = "training_log.jsonl"
CALIBRATION_STEPS = 50  # fewest steps timed before a cosine schedule is fitted to a time budget
BUDGET_MARGIN = 0.95  # share of the remaining budget that the fitted steps are planned to take
FIT_QUANTUM = 50  # a fitted horizon is a multiple of this, so that small timing noise rarely changes it
REFIT_EVERY = 250  # steps between later checks of the fit
REPLAY_SEED = 1_000_000  # pretraining records for replay never repeat the pretraining's own (seed 0)
SUMMARY_FILE = "data_summary.json"


class Plan:
    """How the examples map onto optimizer steps: ``grad_accum`` micro-batches per process and step."""

    def __init__(self, examples: list[Example], config: TrainConfig, processes: int,
                 replay: tuple[int, int, int] | None = None):
        self.examples = examples
        self.positions = {example.index: i for i, example in enumerate(examples)}  # head record -> position
        self.config = config
        self.processes = processes
        self.sets = [list(range(len(examples)))]  # the examples an epoch trains on: all, or (replay) in turn
        if replay and replay[1]:  # the task's examples and one replay set's each epoch
            first, share, sets = replay
            task, replayed = [], [[] for _ in range(sets)]
            for i, example in enumerate(examples):
                (task if example.index < first else replayed[(example.index - first) // share]).append(i)
            self.sets = [task + chosen for chosen in replayed]
        self.set_lengths = [[len(examples[i].input_ids) for i in chosen] for chosen in self.sets]
        self._epoch: tuple[int, list[list[int]]] | None = None
        # a too-long record may be dropped, so sets may differ by a batch: every epoch takes the fewest
        n_batches = min(len(self._epoch_batches(k)) for k in range(len(self.sets)))
        self.steps_per_epoch = n_batches // (config.grad_accum * processes)
        if self.steps_per_epoch == 0:
            raise RetuneError(
                f"{len(examples)} examples make {n_batches} batches, fewer than one step needs "
                f"({config.grad_accum} micro-batches x {processes} processes)"
            )
        epochs = config.epochs or (1 if config.max_steps is None and config.time_budget is None else None)
        limits = [n for n in (config.max_steps, epochs and epochs * self.steps_per_epoch) if n]
        self.total_steps: int | None = min(limits) if limits else None  # None: only the time budget ends the run

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        k = epoch % len(self.sets)
        chosen = self.sets[k]
        return [[chosen[j] for j in batch]
                for batch in epoch_batches(self.set_lengths[k], c.batch_size, c.bucket_batches, c.seed, epoch)]

    def step_batches(self, step: int) -> list[list[Example]]:
        """All micro-batches of optimizer step ``step`` (0-based), for all processes, in order."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self._epoch_batches(epoch))
        group = self.config.grad_accum * self.processes
        return [[self.examples[i] for i in batch] for batch in self._epoch[1][offset * group : (offset + 1) * group]]


class CosineHorizon:
    """Linear warmup, then a cosine decay to zero at step ``total`` (which may move: :func:`fit_horizon`)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer, config: TrainConfig, total_steps: int | None):
    if config.scheduler == "cosine":
        return LambdaLR(optimizer, CosineHorizon(config.warmup_steps, total_steps))
    return get_constant_schedule_with_warmup(optimizer, config.warmup_steps)


def calibration_step(config: TrainConfig, total_steps: int | None) -> int | None:
    """The step after which a cosine schedule is fitted to the time budget (None: nothing to fit)."""
    if config.scheduler != "cosine" or not config.time_budget or not total_steps:
        return None
    step = max(config.warmup_steps, CALIBRATION_STEPS)
    return step if step < total_steps else None


def fit_horizon(step: int, total: int, elapsed: float, per_step: float, budget: float) -> int:
    """The last step of a run at ``step`` after ``elapsed`` seconds, at ``per_step`` seconds a step: ``total``
    when the rest fits :data:`BUDGET_MARGIN` of ``budget``, else the step that fits (a multiple of
    :data:`FIT_QUANTUM`, never before ``step + 1``)."""
    if per_step <= 0 or elapsed + (total - step) * per_step <= budget * BUDGET_MARGIN:
        return total
    fits = step + int((budget * BUDGET_MARGIN - elapsed) / per_step)
    return max(step + 1, min(total, fits - fits % FIT_QUANTUM))


def load_records(config: TrainConfig) -> list[dict]:
    if config.data is not None:
        return read_jsonl(config.data)
    if not config.tasks:
        raise RetuneError("no training data: give tasks (--task) or a data file (--data)")
    return build_records(config.tasks, config.method, config.lengths, config.per_length, config.seed)


def check_run_dir(config: TrainConfig) -> dict | None:
    """Check the run dir against ``config``; returns the state of the checkpoint to resume from, if any.

    A run dir that already holds a run needs ``resume`` (with unchanged settings); ``resume`` on a run
    with no checkpoint yet (or no run at all) starts from scratch.
    """
    run_dir = Path(config.out)
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        if not config.resume:
            raise RetuneError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
        check_resumable(make_config(load_config_file(saved)), config)
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise RetuneError(f"{run_dir} is not empty and holds no retune run")
    latest = checkpoint.latest_checkpoint(run_dir) if config.resume else None
    if latest is None:
        return None
    return {**json.loads((latest / checkpoint.STATE_FILE).read_text()), "path": str(latest)}


def start_run_dir(config: TrainConfig, summary: dict, resume_step: int) -> None:
    """Write the settings and the data summary, and drop log lines of steps a resumed run redoes."""
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    log = run_dir / LOG_FILE
    lines = log.read_text().splitlines(keepends=True) if log.is_file() and resume_step else []
    log.write_text("".join(line for line in lines if json.loads(line)["step"] <= resume_step))


def train(config: TrainConfig, records: list[dict] | None = None) -> Path:
    """Train as ``config`` says, on ``records`` if given (else on ``config.data`` or built records)."""
    accelerator = Accelerator(mixed_precision=mixed_precision(config.precision))
    is_main = accelerator.is_main_process
    run_dir = Path(config.out)
    resume = check_run_dir(config)
    records = records if records is not None else load_records(config)
    records = balance_lengths(records) if config.balance_lengths else records
    n_task = len(records)
    if config.replay:  # a share of the default model's pretraining records: generic long copies keep being trained
        from retune.models.pretraining import pretraining_records

        share = round(config.replay * len(records))
        replay = (len(records), share, config.replay_sets)  # first replay index, records per set, sets
        records = [*records, *pretraining_records(share * config.replay_sets, seed=REPLAY_SEED + config.seed,
                                                          min_length=config.replay_min_length,
                                                          edits=config.replay_edits)]
    else:
        replay = None

    set_seed(config.seed)
    model, tokenizer = load_model(config, accelerator.mixed_precision)
    scheme = scheme_of(model.config) if config.position_scheme == "auto" else config.position_scheme
    setattr(model.config, POSITION_KEY, scheme)  # saved in config.json: inference must use the same ids
    examples, dropped = encode_records(records, tokenizer, config.max_length, scheme,
                                       pack=n_task if config.pack_calls else 0)
    summary = summarize(records, examples, dropped)
    plan = Plan(examples, config, accelerator.num_processes, replay)
    if resume is not None and resume["fingerprint"] != summary["fingerprint"]:
        raise RetuneError(f"the training data differ from those of checkpoint {resume['path']}")
    if resume is not None and resume["steps_per_epoch"] != plan.steps_per_epoch:
        raise RetuneError(f"checkpoint {resume['path']} was trained with another number of processes")
    accelerator.wait_for_everyone()  # every process has checked the run dir before the main one writes to it
    if is_main:
        start_run_dir(config, summary, resume["step"] if resume else 0)
    model = prepare_finetuning(model, config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = make_scheduler(optimizer, config, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    focus = Focus([len(e.input_ids) for e in examples], config.focus, config.seed,
                  eligible=[e.index < n_task for e in examples]) if config.focus else None  # never a replayed record

    step, elapsed = 0, 0.0
    calibrate_at = calibration_step(config, plan.total_steps)
    limit = plan.total_steps  # the most steps the run may take; a fit to the time budget may end it earlier
    fitted = None if calibrate_at is None else False  # None: nothing to fit; False: not fitted yet; else the steps
    if resume is not None:
        checkpoint.load(Path(resume["path"]), accelerator.unwrap_model(model), optimizer, scheduler,
                        accelerator.process_index)
        step, elapsed = resume["step"], resume["elapsed_s"]
        if focus is not None:
            focus.load(Path(resume["path"]))
        if fitted is False and resume.get("fitted_steps") and resume.get("fitted_for") == [config.max_steps,
                                                                                             config.time_budget]:
            fitted = resume["fitted_steps"]  # the horizon fitted before the interruption
            _set_horizon(plan, scheduler, fitted)
        elif config.scheduler == "cosine":  # the loaded scheduler holds the interrupted run's horizon
            _set_horizon(plan, scheduler, plan.total_steps)
    timer: tuple[int, float] | None = None  # (step, elapsed) where timing for the fit starts
    if is_main and config.progress:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"retune train: {len(examples)} examples ({len(dropped)} too long), {trainable:,} trainable "
            f"parameters, {plan.steps_per_epoch} steps per epoch, {accelerator.num_processes} process(es)"
            + (f", {config.focus} hard examples more per micro-batch" if focus is not None else "")
            + (f", resuming at step {step}" if step else ""),
            file=sys.stderr,
        )

    def save_checkpoint() -> None:
        state = {"step": step, "epoch": step // plan.steps_per_epoch, "step_in_epoch": step % plan.steps_per_epoch,
                 "steps_per_epoch": plan.steps_per_epoch, "elapsed_s": elapsed, "fingerprint": summary["fingerprint"]}
        if fitted:
            state["fitted_steps"], state["fitted_for"] = fitted, [config.max_steps, config.time_budget]
        if is_main:
            checkpoint.begin(run_dir, step)
        accelerator.wait_for_everyone()
        checkpoint.write_rng(checkpoint.tmp_dir(run_dir, step), accelerator.process_index)
        accelerator.wait_for_everyone()
        if is_main:
            if focus is not None:
                focus.save(checkpoint.tmp_dir(run_dir, step))
            checkpoint.commit(run_dir, step, accelerator.unwrap_model(model), optimizer, scheduler, state,
                              config.keep_checkpoints)
        accelerator.wait_for_everyone()

    progress = _Progress(plan.total_steps, config.time_budget, step, elapsed, enabled=is_main and config.progress)
    log = open(run_dir / LOG_FILE, "a") if is_main else None
    last_saved = step if resume is not None else None
    started = time.perf_counter() - elapsed
    model.train()
    try:
        while not _finished(step, elapsed, plan, config, accelerator):
            step_start = time.perf_counter()
            group = plan.step_batches(step)
            if focus is not None:
                group = [batch + [plan.examples[i] for i in extra]
                         for batch, extra in zip(group, focus.draw(step, [max(len(e.input_ids) for e in batch)
                                                                          for batch in group]))]
            lr = scheduler.get_last_lr()[0]
            loss, hardness = _optimizer_step(model, optimizer, scheduler, accelerator, group, plan,
                                             tokenizer.pad_token_id, config.max_grad_norm, focus is not None)
            if focus is not None:
                focus.update([plan.positions[e.index] for batch in group for e in batch], hardness)
            step += 1
            now = time.perf_counter()
            elapsed = now - started
            entry = _log_entry(step, plan, group, loss, lr, now - step_start, elapsed)
            if fitted is not None and timer is None and step >= 5:  # the first steps are slow
                timer = (step, elapsed)
            timed = timer is not None and step - timer[0] >= CALIBRATION_STEPS // 2
            if timed and ((fitted is False and step >= calibrate_at) or (
                    fitted and step % REFIT_EVERY == 0 and step < fitted)):
                before, fitted = plan.total_steps, _fit(step, elapsed, timer, limit, plan, scheduler, config,
                                                        accelerator)
                if fitted != before:
                    entry["fitted_steps"] = fitted
                    progress.set_total(fitted)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            progress.update(step, elapsed, loss, entry["tokens_per_s"])
            if step % config.save_every == 0:
                save_checkpoint()
                last_saved = step
    finally:
        progress.close()
        if log is not None:
            log.close()
    if last_saved != step:
        save_checkpoint()
    if is_main:
        save_final(accelerator.unwrap_model(model), tokenizer, config, run_dir)
        if config.progress:
            print(f"retune train: model saved in {run_dir} after {step} steps", file=sys.stderr)
    accelerator.wait_for_everyone()
    return run_dir


def training_summary(run_dir: str | Path) -> dict:
    """What a finished run trained: ``{"steps", "seconds"}``, and ``"fitted_steps"`` (the last horizon) when a
    fit to a time budget moved the end of its schedule."""
    entries = _log_entries(run_dir)
    if not entries:
        return {"steps": 0, "seconds": 0.0}
    summary = {"steps": entries[-1]["step"], "seconds": round(entries[-1]["elapsed_s"], 1)}
    fitted = [entry["fitted_steps"] for entry in entries if "fitted_steps" in entry]
    if fitted:
        summary["fitted_steps"] = fitted[-1]
    return summary


def fitted_horizons(run_dir: str | Path) -> list[list[int]]:
    """Every ``[step, horizon]`` at which a fit to the time budget set (or moved) the end of the run's cosine
    schedule, in order (empty when nothing was fitted): with them a run's learning rates can be told step by step."""
    return [[entry["step"], entry["fitted_steps"]] for entry in _log_entries(run_dir) if "fitted_steps" in entry]


def _log_entries(run_dir: str | Path) -> list[dict]:
    """The entries of a run's training log, one per optimizer step (none when it has no log)."""
    path = Path(run_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _optimizer_step(model, optimizer, scheduler, accelerator: Accelerator, group: list[list[Example]], plan: Plan,
                    pad_token_id: int, max_grad_norm: float | None,
                    measure: bool = False) -> tuple[float, torch.Tensor | None]:
    """One optimizer step over this process's micro-batches of ``group``; returns the step's mean loss and, when
    ``measure``, the hardness of every example of ``group`` in order (:mod:`retune.engines.training.focus`;
    gathered from all processes)."""
    rank = accelerator.process_index
    accum = plan.config.grad_accum
    mine = group[rank * accum : (rank + 1) * accum]
    # Every process divides by the step's global supervised-token count: after data-parallel averaging
    # the gradient is that of the mean loss over all supervised tokens of the step.
    # With example normalization the divisor is the step's global record count (a packed example holds several),
    # and every record's loss is first averaged over its own supervised tokens.
    by_example = plan.config.loss_normalization == "example"
    focal = plan.config.focal
    count = sum(e.n_records if by_example else e.n_supervised for batch in group for e in batch)
    per_process = count / plan.processes
    step_loss = torch.zeros((), device=accelerator.device)
    measured = []
    for k, batch in enumerate(mine):
        inputs = {name: t.to(accelerator.device) for name, t in collate(batch, pad_token_id).items()}
        with accelerator.no_sync(model) if k < len(mine) - 1 else nullcontext():
            labels = inputs["labels"]
            token_loss = None  # per token, when computed here rather than by the model
            if by_example or focal:
                del inputs["labels"]
                logits = model(**inputs, use_cache=False).logits
                token_loss = _token_losses(logits, labels)
                trained = _focal(token_loss, focal) if focal else token_loss
                loss = (_example_loss(logits, labels, per_process, trained) if by_example
                        else trained.sum() / per_process)
                del trained
            else:
                outputs = model(**inputs, num_items_in_batch=per_process, use_cache=False)
                loss, logits = outputs.loss, outputs.logits
                del outputs
            accelerator.backward(loss)
        step_loss += loss.detach()
        if measure:
            with torch.no_grad():
                targets = labels[:, 1:]
                token_loss = _token_losses(logits, labels) if token_loss is None else token_loss
                measured.append(example_hardness(token_loss, targets != IGNORE_INDEX,
                                                 logits[:, :-1].argmax(dim=-1) != targets))
        del logits, token_loss  # not held through the next micro-batch's forward (a large vocabulary's logits are big)
    if max_grad_norm is not None:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    hardness = _gather_hardness(accelerator, group, plan, torch.cat(measured)) if measure else None
    return accelerator.reduce(step_loss, "mean").item(), hardness


def _gather_hardness(accelerator: Accelerator, group: list[list[Example]], plan: Plan,
                     mine: torch.Tensor) -> torch.Tensor:
    """The hardness of every example of ``group`` in order, from each process's hardness of its own micro-batches."""
    if accelerator.num_processes == 1:
        return mine.cpu()
    accum = plan.config.grad_accum
    sizes = [sum(len(batch) for batch in group[rank * accum : (rank + 1) * accum])
             for rank in range(accelerator.num_processes)]
    padded = torch.zeros(max(sizes), device=mine.device)
    padded[: len(mine)] = mine
    blocks = accelerator.gather(padded).cpu().view(len(sizes), -1)
    return torch.cat([block[:size] for block, size in zip(blocks, sizes)])


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The next-token loss at every position (0 where the label is ignored)."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )


def _focal(token_loss: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) from per-token cross-entropy: each token's loss times ``(1 - p) ** gamma``,
    ``p`` the probability the model gives its label; a token the model is sure of weighs almost nothing. (The
    floor keeps the weight's gradient finite, when gamma < 1, where a supervised token's loss is exactly 0.)"""
    return token_loss * (-torch.expm1(-token_loss)).clamp(min=1e-12) ** gamma


def _example_loss(logits: torch.Tensor, labels: torch.Tensor, divisor: float,
                  token_loss: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over records of each record's mean next-token loss on its supervised tokens, over ``divisor``
    (``token_loss``: the logits' :func:`_token_losses`, when already computed).

    A record's supervised tokens are one run of labels (its output and EOS), so a packed example's records are
    its runs of supervised labels."""
    targets = labels[:, 1:]
    token_loss = _token_losses(logits, labels) if token_loss is None else token_loss
    supervised = targets != IGNORE_INDEX
    starts = supervised & ~torch.nn.functional.pad(supervised[:, :-1], (1, 0), value=False)
    run = torch.cumsum(starts.flatten().long(), 0).view_as(targets) * supervised  # 0: unsupervised, else run id
    counts = torch.zeros(int(run.max()) + 1, device=targets.device).index_add_(
        0, run.flatten(), supervised.flatten().float())
    weights = supervised / counts.clamp(min=1)[run]
    return (token_loss * weights).sum() / divisor


def _log_entry(step: int, plan: Plan, group: list[list[Example]], loss: float, lr: float, step_s: float,
               elapsed: float) -> dict:
    """The ``training_log.jsonl`` line of a step (token counts over all processes; padding of right-padding)."""
    tokens = sum(len(e.input_ids) for batch in group for e in batch)
    padded = sum(len(batch) * max(len(e.input_ids) for e in batch) for batch in group)
    return {
        "step": step,
        "epoch": (step - 1) // plan.steps_per_epoch,
        "loss": round(loss, 6),
        "lr": lr,
        "tokens": tokens,
        "supervised_tokens": sum(e.n_supervised for batch in group for e in batch),
        "padding_tokens": padded - tokens,
        "step_s": round(step_s, 4),
        "tokens_per_s": round(tokens / step_s, 1),
        "elapsed_s": round(elapsed, 3),
        "batches": [[e.index for e in batch] for batch in group],
    }


def _fit(step: int, elapsed: float, timer: tuple[int, float], limit: int, plan: Plan, scheduler,
         config: TrainConfig, accelerator: Accelerator) -> int:
    """Fit the cosine schedule of at most ``limit`` steps to the time budget (:func:`fit_horizon`); returns the
    run's last step."""
    per_step = (elapsed - timer[1]) / max(1, step - timer[0])
    horizon = fit_horizon(step, limit, elapsed, per_step, config.time_budget)
    # the main process's clock decides, so that every process keeps the same horizon
    main = accelerator.is_main_process
    horizon = int(accelerator.reduce(torch.tensor(horizon if main else 0, device=accelerator.device), "sum").item())
    if horizon != plan.total_steps:
        if main and config.progress:
            tqdm.write(f"retune train: at {per_step:.3f} s a step, " + (
                f"{limit} steps do not fit the {config.time_budget:.0f} s budget: the cosine schedule now ends at "
                f"step {horizon}" if horizon < limit else f"all {limit} steps fit the budget"), file=sys.stderr)
        _set_horizon(plan, scheduler, horizon)
    return horizon


def _set_horizon(plan: Plan, scheduler, steps: int) -> None:
    """End the run and its cosine schedule at step ``steps``."""
    plan.total_steps = steps
    for function in scheduler.lr_lambdas:
        function.total = steps


def _finished(step: int, elapsed: float, plan: Plan, config: TrainConfig, accelerator: Accelerator) -> bool:
    if plan.total_steps is not None and step >= plan.total_steps:
        return True
    if config.time_budget is None:
        return False
    # The main process's clock decides, so that all processes stop after the same step.
    over = torch.tensor(float(elapsed >= config.time_budget and accelerator.is_main_process), device=accelerator.device)
    return accelerator.reduce(over, "sum").item() > 0


class _Progress:
    """A tqdm bar over steps (or over the time budget when no step limit is known) with loss and tokens/s."""

    def __init__(self, total_steps: int | None, budget: float | None, step: int, elapsed: float, enabled: bool):
        self.by_time = total_steps is None
        total, initial = (round(budget), round(elapsed)) if self.by_time else (total_steps, step)
        time_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]"
        self.bar = tqdm(total=total, initial=initial, unit="step", desc="train", disable=not enabled,
                        dynamic_ncols=True, bar_format=time_format if self.by_time else None)

    def update(self, step: int, elapsed: float, loss: float, tokens_per_s: float) -> None:
        position = min(round(elapsed), self.bar.total) if self.by_time else step
        self.bar.set_postfix(step=step, loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        self.bar.update(position - self.bar.n)

    def set_total(self, steps: int) -> None:
        if not self.by_time:
            self.bar.total = steps
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
