"""``retune run`` end to end on a tiny budget: run dir contents, the comparison table, resuming, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ARGS = ["--max-steps", "4", "--per-length", "5", "--train-lengths", "1-4", "--eval-lengths", "2,3,6",
        "--eval-per-length", "4", "--no-progress"]


def retune(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "retune.cli", *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "parity"
    result = retune("run", "--task", "parity", "--out", str(out), *ARGS)
    return out, result


def test_run_writes_every_method_and_a_combined_report(parity_run):
    out, result = parity_run
    for name in ("run_config.json", "run_state.json", "results.json", "plot.png", "table.txt"):
        assert (out / name).is_file(), name
    combined = json.loads((out / "results.json").read_text())
    assert combined["methods"] == ["retuning", "scratchpad", "baseline"]
    assert combined["train_lengths"] == [1, 4]
    for method in combined["methods"]:
        run_dir = out / method
        for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json", "data_summary.json",
                     "results.json", "plot.png"):
            assert (run_dir / name).is_file(), (method, name)
        results = json.loads((run_dir / "results.json").read_text())
        assert results["task"] == "parity" and results["method"] == method and results["train_lengths"] == [1, 4]
        assert set(results["by_length"]) == {"2", "3", "6"}
        assert all(0 <= e["accuracy"] <= 1 and e["n"] == 4 for e in results["by_length"].values())
        assert sum(json.loads(line)["step"] == 4 for line in open(run_dir / "training_log.jsonl")) == 1
    table = result.stdout
    assert "retuning" in table and "scratchpad" in table and "baseline" in table
    assert "    2*" in table and "    6 " in table
    assert combined["training"]["baseline"]["steps"] == 4 and "baseline 4 steps in" in table


def test_rerun_resumes_without_redoing_work(parity_run):
    out, _ = parity_run
    before = (out / "retuning" / "results.json").read_bytes()
    result = retune("run", "--task", "parity", "--out", str(out), *ARGS)
    assert "training" not in result.stderr and "evaluating" not in result.stderr
    assert (out / "retuning" / "results.json").read_bytes() == before
    # an interrupted evaluation is redone, with the same numbers
    state = json.loads((out / "run_state.json").read_text())
    state["retuning"]["evaluated"] = False
    (out / "run_state.json").write_text(json.dumps(state))
    retune("run", "--task", "parity", "--out", str(out), *ARGS)
    again = json.loads((out / "retuning" / "results.json").read_text())
    assert again["by_length"] == json.loads(before)["by_length"]


def test_eval_does_not_depend_on_batch_size(parity_run, tmp_path):
    out, _ = parity_run
    saved = json.loads((out / "retuning" / "results.json").read_text())
    for batch in ("1", "64"):
        path = tmp_path / f"b{batch}.json"
        retune("eval", "--run", str(out / "retuning"), "--lengths", "2,3,6", "--per-length", "4",
               "--batch-size", batch, "-o", str(path), "--quiet")
        assert json.loads(path.read_text())["by_length"] == saved["by_length"]


def test_changed_settings_need_a_new_out(parity_run):
    out, _ = parity_run
    result = retune("run", "--task", "parity", "--out", str(out), *ARGS[:-1], "--seed", "5", check=False)
    assert result.returncode == 2 and "other settings (seed)" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "nope"], "unknown task"),
        (["--task", "parity", "--methods", "magic"], "unknown method"),
        (["--task", "parity", "--train-lengths", "9-2"], "bad length range"),
        (["--task", "parity", "--time-budget", "soon"], "bad duration"),
        (["--task", "parity", "--max-steps", "3", "--time-budget", "1m"], "not both"),
    ],
)
def test_bad_input(args, message, tmp_path):
    result = retune("run", "--out", str(tmp_path / "x"), *args, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_default_training_is_steps_capped_by_time(tmp_path):
    from retune.pipeline import DEFAULT_METHOD_BUDGET, DEFAULT_METHOD_STEPS, make_run_config
    from retune.plugins import get_registry

    registry = get_registry()
    default = make_run_config({"tasks": "parity", "out": tmp_path}).resolved(registry)
    assert (default.max_steps, default.time_budget) == (DEFAULT_METHOD_STEPS, DEFAULT_METHOD_BUDGET * 3)
    assert default.epochs is None
    budget = make_run_config({"tasks": "parity", "out": tmp_path, "time_budget": 90}).resolved(registry)
    assert (budget.max_steps, budget.time_budget, budget.epochs) == (None, 90, None)
    steps = make_run_config({"tasks": "parity", "out": tmp_path, "max_steps": 7}).resolved(registry)
    assert (steps.max_steps, steps.time_budget, steps.epochs) == (7, None, None)
    epochs = make_run_config({"tasks": "parity", "out": tmp_path, "epochs": 2}).resolved(registry)
    assert (epochs.max_steps, epochs.time_budget, epochs.epochs) == (None, None, 2)


def test_epochs_cap_the_steps_of_each_method(tmp_path):
    out = tmp_path / "run"
    retune("run", "--task", "parity", "--methods", "baseline", "--out", str(out), "--epochs", "2", "--max-steps",
           "1000", "--per-length", "5", "--train-lengths", "1-4", "--eval-lengths", "2", "--eval-per-length", "2",
           "--no-progress")
    records = json.loads((out / "baseline" / "data_summary.json").read_text())["examples"]
    steps_per_epoch = -(-records // 16)  # batch 16
    combined = json.loads((out / "results.json").read_text())
    assert combined["training"]["baseline"]["steps"] == 2 * steps_per_epoch < 1000
