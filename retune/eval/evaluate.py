"""Evaluation by length: a trained run against fresh test problems of every length, through the solver.

``evaluate(run_dir, lengths, per_length, batch_size, seed)`` reads the run's ``train_config.json`` (tasks,
method, training lengths), draws ``per_length`` test problems of every length with
:func:`retune.core.data.generate_problems` under a seed distinct from training (``seed + 1_000_003``),
solves them all at once with a batched :class:`~retune.engines.inference.ModelPolicy` (every method goes
through :class:`~retune.core.solver.Solver`) and returns a JSON-ready results dict:

* ``task``, ``tasks``, ``method``, ``train_lengths`` ``[lo, hi]``, ``eval_lengths``, ``seed``, ``test_seed``;
* ``by_length``: for each length (as a string) ``accuracy``, ``n``, ``in_train``, outcome counts,
  per-call accuracy, error kinds, mean calls/segments/tokens per problem (summed over tasks; ``by_task`` splits it):
  nothing in it depends on timing, so equal settings give equal ``by_length``;
* ``outcomes`` (correct, wrong, malformed, depth_exceeded, budget_exceeded, cycle, not_smaller),
  ``per_call`` (every node of the model's call trees against the reference), ``errors`` (the first wrong
  node of every failed problem: wrong_call, wrong_base_case, wrong_combine), ``failures`` (a capped sample);
* ``timing``: wall seconds, problems per second, seconds and generated tokens per problem, policy counters
  (and per length, seconds per problem estimated by the length's share of the generated tokens);
* ``problems``: the whole test set with each problem's outcome and, if it failed, its first wrong node (the
  test set is saved with the results).

Results depend only on the run, the lengths, ``per_length`` and ``seed``: not on the batch size (the policy
computes every row as if alone) nor on the order of work.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from retune.core.data import generate_problems
from retune.core.errors import RetuneError
from retune.core.lengths import length_list
from retune.core.methods import check_method, records_for, single_context_prompt
from retune.core.solver import Limits, Outcome, Solution, Solver
from retune.eval.analysis import ERROR_KINDS, TreeChecker, visited_contexts

TEST_SEED_OFFSET = 1_000_003
OUTCOMES = ("correct", "wrong", "malformed", "depth_exceeded", "budget_exceeded", "cycle", "not_smaller")
CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "data_summary.json"


# ---- inputs -------------------------------------------------------------------------------------------
def read_run_config(run_dir: str | Path) -> dict:
    """``{"tasks", "method", "train_lengths", "seed", "per_length"}`` of a run directory."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RetuneError(f"run directory {str(run_dir)!r} does not exist")
    path = run / CONFIG_FILE
    if not path.is_file():
        raise RetuneError(f"{str(run_dir)!r} is not a training run: it has no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RetuneError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise RetuneError(f"{path} does not hold a JSON object")
    tasks = config.get("tasks") or config.get("task") or []
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if not tasks and (run / SUMMARY_FILE).is_file():  # trained from a data file: the tasks it held
        try:
            tasks = sorted(t for t in json.loads((run / SUMMARY_FILE).read_text()).get("by_task", {}) if t != "None")
        except (OSError, json.JSONDecodeError, AttributeError):
            tasks = []
    lengths = config.get("lengths", config.get("train_lengths"))
    if isinstance(lengths, str):
        lengths = length_list(lengths)
    train_lengths = [int(min(lengths)), int(max(lengths))] if lengths else None
    return {
        "tasks": list(tasks),
        "method": check_method(config.get("method", "retuning")),
        "train_lengths": train_lengths,
        "seed": config.get("seed"),
        "per_length": config.get("per_length"),
    }


def parse_eval_lengths(lengths: str | tuple[int, int] | Iterable[int]) -> list[int]:
    """``"2-40"``, ``"2-5,10"``, ``(2, 40)`` or a list of lengths, as a sorted list."""
    if isinstance(lengths, str):
        return length_list(lengths)
    if isinstance(lengths, tuple) and len(lengths) == 2:
        lo, hi = lengths
        if not 1 <= lo <= hi:
            raise RetuneError(f"bad length range {lo}-{hi}: need 1 <= LO <= HI")
        return list(range(lo, hi + 1))
    out = sorted({int(n) for n in lengths})
    if not out or out[0] < 1:
        raise RetuneError("lengths must be positive integers")
    return out


# ---- the evaluation -----------------------------------------------------------------------------------
def evaluate(
    run_dir: str | Path,
    lengths: str | tuple[int, int] | Iterable[int] | None = None,
    per_length: int = 100,
    batch_size: int = 64,
    seed: int | None = None,
    *,
    tasks: Sequence[str] | str | None = None,
    max_new_tokens: int | None = None,
    device: str | None = None,
    limits: Limits | None = None,
    max_failures: int = 100,
    progress: Callable[[str], None] | None = None,
    registry=None,
) -> dict:
    """Evaluate the model of ``run_dir`` (see the module docstring). ``lengths`` defaults to the tasks'
    ``default_eval_lengths``; ``tasks`` overrides the run's tasks (needed for runs trained on a data file); ``seed``
    defaults to the run's training seed, so re-evaluating a run draws the test problems ``retune run`` drew."""
    from retune.engines.inference import ModelPolicy, load_model

    config = read_run_config(run_dir)
    if seed is None:
        seed = config["seed"] if config["seed"] is not None else 0
    task_names = _task_names(tasks if tasks is not None else config["tasks"], run_dir)
    registry = registry or _registry()
    task_objs = [registry.get(name) for name in task_names]
    eval_lengths = _eval_lengths(lengths, task_objs)
    if per_length < 1:
        raise RetuneError(f"per-length must be at least 1, got {per_length}")
    if batch_size < 1:
        raise RetuneError(f"batch size must be at least 1, got {batch_size}")
    problems = {task.name: generate_problems(task, eval_lengths, per_length, seed + TEST_SEED_OFFSET)
                for task in task_objs}
    model, tokenizer = load_model(run_dir, device=device)
    budget = max_new_tokens or segment_budget(tokenizer, task_objs, problems, config["method"], registry)
    policy = ModelPolicy(model, tokenizer, batch_size=batch_size, max_new_tokens=budget)
    results = evaluate_policy(
        policy,
        task_names,
        config["method"],
        eval_lengths,
        per_length,
        seed,
        train_lengths=config["train_lengths"],
        problems=problems,
        limits=limits,
        max_failures=max_failures,
        progress=progress,
        registry=registry,
    )
    results["run"] = str(run_dir)
    results["batch_size"] = batch_size
    results["max_new_tokens"] = policy.max_new_tokens
    results["train_seed"] = config["seed"]
    return results


def segment_budget(tokenizer, tasks, problems: dict, method: str, registry=None) -> int:
    """``max_new_tokens`` for an evaluation: twice the longest reference segment of the test set, plus 16
    tokens (a model that runs on without EOS is cut there, and its segment counts as malformed)."""
    longest = 1
    for task in tasks:
        outputs = {r["output"] for _, problem in problems[task.name] for r in records_for(task, problem, method, registry)}
        if outputs:
            longest = max(longest, max(len(ids) for ids in tokenizer(sorted(outputs), add_special_tokens=False)["input_ids"]))
    return 2 * longest + 16


def evaluate_policy(
    policy,
    tasks: Sequence[str] | str,
    method: str,
    lengths: str | tuple[int, int] | Iterable[int],
    per_length: int,
    seed: int = 0,
    *,
    train_lengths: Sequence[int] | None = None,
    problems: dict | None = None,
    limits: Limits | None = None,
    max_failures: int = 100,
    progress: Callable[[str], None] | None = None,
    registry=None,
) -> dict:
    """Evaluate any solver policy (a model, the oracle, a test double); see :func:`evaluate`."""
    check_method(method)
    registry = registry or _registry()
    task_names = _task_names(tasks, None)
    task_objs = [registry.get(name) for name in task_names]
    eval_lengths = parse_eval_lengths(lengths)
    if problems is None:
        problems = {task.name: generate_problems(task, eval_lengths, per_length, seed + TEST_SEED_OFFSET)
                    for task in task_objs}
    train = [int(train_lengths[0]), int(train_lengths[1])] if train_lengths else None
    recorder = _TokenRecorder(policy, progress)
    solver = Solver(recorder, limits, registry)
    per_task: dict[str, dict] = {}
    entries: list[dict] = []
    total_seconds = 0.0
    for task in task_objs:
        pairs = problems[task.name]
        start = time.perf_counter()
        solutions = solver.solve(task, [problem for _, problem in pairs], method)
        seconds = time.perf_counter() - start
        total_seconds += seconds
        task_entries = _entries(task, method, pairs, solutions, recorder, registry)
        entries.extend(task_entries)
        per_task[task.name] = _summary(task_entries, train, max_failures, seconds)
    results = {
        "task": ",".join(task_names),
        "tasks": task_names,
        "method": method,
        "train_lengths": train,
        "eval_lengths": [eval_lengths[0], eval_lengths[-1]],
        "lengths": eval_lengths,
        "per_length": per_length,
        "seed": seed,
        "test_seed": seed + TEST_SEED_OFFSET,
        **_summary(entries, train, max_failures, total_seconds),
        "per_task": per_task if len(task_names) > 1 else None,
        "policy": _policy_stats(policy),
        "problems": entries,
    }
    return results


# ---- per problem --------------------------------------------------------------------------------------
class _TokenRecorder:
    """Wraps a policy; remembers how many tokens each context's segment took (from the policy when it says,
    else the segment's characters plus one for EOS)."""

    def __init__(self, policy, progress: Callable[[str], None] | None):
        self.policy = policy
        self.progress = progress
        self.tokens: dict[int, int] = {}
        self.rounds = 0

    def __call__(self, contexts: Sequence[str]) -> list[str]:
        self.rounds += 1
        if self.progress:
            self.progress(f"round {self.rounds}: {len(contexts)} contexts")
        outputs = list(self.policy(contexts))
        tokens_of = getattr(self.policy, "tokens_of", None)
        for context, output in zip(contexts, outputs):
            count = tokens_of(context) if tokens_of else None
            self.tokens[hash(context)] = count if count is not None else len(output or "") + 1
        return outputs

    def tokens_for(self, contexts: Iterable[str]) -> int:
        return sum(self.tokens.get(hash(c), 0) for c in contexts)


def _entries(task, method: str, pairs, solutions: list[Solution], recorder: _TokenRecorder, registry) -> list[dict]:
    lookup = _lookup(task, registry)
    checker = TreeChecker(lookup, registry)
    entries = []
    for (length, problem), solution in zip(pairs, solutions):
        first = single_context_prompt(task, problem, method) if method != "retuning" else None
        contexts = visited_contexts(solution, first)
        if solution.correct:
            outcome = "correct"
        elif solution.outcome is Outcome.ANSWERED:
            outcome = "wrong"
        else:
            outcome = solution.outcome.value
        entry = {
            "task": task.name,
            "length": length,
            "problem": solution.problem,
            "expected": solution.expected,
            "final": solution.final,
            "outcome": outcome,
            "correct": solution.correct,
            "detail": solution.detail,
            "calls": solution.calls,
            "segments": solution.segments,
            "tokens": recorder.tokens_for(contexts),
        }
        if solution.tree is not None:
            entry["per_call"] = checker.per_call(solution.tree)
            if not solution.correct:
                error = checker.first_error(solution.tree)
                entry["error"] = error or {"kind": "unknown"}
        entries.append(entry)
    return entries


def _summary(entries: list[dict], train: list[int] | None, max_failures: int, seconds: float) -> dict:
    by_length: dict[int, list[dict]] = defaultdict(list)
    for e in entries:
        by_length[e["length"]].append(e)
    table, per_length_seconds = {}, {}
    all_tokens = sum(e["tokens"] for e in entries)
    for length in sorted(by_length):
        group = by_length[length]
        row = _group_stats(group)
        row["in_train"] = bool(train and train[0] <= length <= train[1])
        # problems are solved together, so a length's time is estimated by its share of the generated tokens
        # (kept in ``timing``: ``by_length`` holds only what the run, lengths and seed determine)
        per_length_seconds[str(length)] = (
            round(seconds * sum(e["tokens"] for e in group) / all_tokens / len(group), 6) if all_tokens else None)
        tasks = sorted({e["task"] for e in group})
        if len(tasks) > 1:
            row["by_task"] = {t: _group_stats([e for e in group if e["task"] == t]) for t in tasks}
        table[str(length)] = row
    overall = _group_stats(entries)
    inside = [e for e in entries if train and train[0] <= e["length"] <= train[1]]
    outside = [e for e in entries if not (train and train[0] <= e["length"] <= train[1])]
    tokens = sum(e["tokens"] for e in entries)
    return {
        "accuracy": overall["accuracy"],
        "n": overall["n"],
        "accuracy_in_train": _accuracy(inside),
        "accuracy_out_of_train": _accuracy(outside),
        "by_length": table,
        "outcomes": overall["outcomes"],
        "per_call": overall["per_call"],
        "errors": overall["errors"],
        "failures": _failure_sample(entries, max_failures),
        "timing": {
            "seconds": round(seconds, 3),
            "problems_per_second": round(len(entries) / seconds, 3) if seconds > 0 else None,
            "seconds_per_problem": round(seconds / len(entries), 5) if entries else None,
            "tokens_per_problem": round(tokens / len(entries), 2) if entries else None,
            "tokens": tokens,
            "seconds_per_problem_by_length": per_length_seconds,
        },
    }


def _group_stats(group: list[dict]) -> dict:
    n = len(group)
    outcomes = Counter(e["outcome"] for e in group)
    errors = Counter(e["error"]["kind"] for e in group if "error" in e)
    calls = [e["per_call"] for e in group if "per_call" in e]
    per_call = None
    if calls:
        nodes = sum(c["nodes"] for c in calls)
        right = sum(c["right"] for c in calls)
        per_call = {"nodes": nodes, "right": right, "unfinished": sum(c["unfinished"] for c in calls),
                    "accuracy": round(right / nodes, 6) if nodes else None}
    return {
        "accuracy": _accuracy(group),
        "n": n,
        "correct": outcomes.get("correct", 0),
        "outcomes": {name: outcomes.get(name, 0) for name in OUTCOMES},
        "per_call": per_call,
        "errors": {kind: errors.get(kind, 0) for kind in (*ERROR_KINDS, "unknown") if kind in ERROR_KINDS or errors.get(kind)},
        "mean_calls": round(sum(e["calls"] for e in group) / n, 3) if n else None,
        "mean_segments": round(sum(e["segments"] for e in group) / n, 3) if n else None,
        "tokens_per_problem": round(sum(e["tokens"] for e in group) / n, 2) if n else None,
    }


def _accuracy(group: list[dict]) -> float | None:
    return round(sum(e["correct"] for e in group) / len(group), 6) if group else None


def _failure_sample(entries: list[dict], cap: int) -> list[dict]:
    """Up to ``cap`` failed problems, taken round-robin over lengths (so every length is represented)."""
    by_length: dict[int, list[dict]] = defaultdict(list)
    for e in entries:
        if not e["correct"]:
            by_length[e["length"]].append(e)
    sample: list[dict] = []
    queues = [list(reversed(by_length[k])) for k in sorted(by_length)]
    while len(sample) < cap and any(queues):
        for queue in queues:
            if queue and len(sample) < cap:
                e = queue.pop()
                sample.append({k: e.get(k) for k in ("task", "length", "problem", "expected", "final", "outcome",
                                                      "detail", "error")})
    return sample


# ---- helpers ------------------------------------------------------------------------------------------
def _policy_stats(policy) -> dict | None:
    stats = getattr(policy, "stats", None)
    return stats.as_dict() if hasattr(stats, "as_dict") else None


def _task_names(tasks, run_dir) -> list[str]:
    names = [t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str) else list(tasks or [])
    if not names:
        where = f" of run {str(run_dir)!r}" if run_dir is not None else ""
        raise RetuneError(f"no task to evaluate{where}: give --task")
    return names


def _eval_lengths(lengths, tasks) -> list[int]:
    if lengths is None:
        lo = min(t.default_eval_lengths[0] for t in tasks)
        hi = max(t.default_eval_lengths[1] for t in tasks)
        return list(range(max(lo, max(t.min_length for t in tasks)), hi + 1))
    return parse_eval_lengths(lengths)


def _registry():
    from retune.plugins import get_registry

    return get_registry()


def _lookup(task, registry):
    def lookup(name: str):
        return task if name == task.name else registry.get(name)

    return lookup

