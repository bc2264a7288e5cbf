"""The core commands of the CLI, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def retune(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "retune.cli", *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_tasks_lists_the_paper_tasks():
    out = retune("tasks").stdout
    for name in ("addition", "dp", "parity"):
        assert name in out
    rows = json.loads(retune("tasks", "--json").stdout)
    assert {"name", "description", "plugin", "version"} <= set(rows[0])


def test_trace_records_print_the_papers_records():
    out = retune("trace", "--task", "addition", "--records", "--method", "retuning", "73199 + 21439").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 9
    assert records[0]["input"] == "73199 + 21439\nSolution: " and records[0]["output"] == "Call: 3199 + 1439\n"
    assert records[1]["output"] == "Carry 0, Output 94638"


def test_trace_tree_and_json():
    out = retune("trace", "--task", "parity", "[1, 0]").stdout
    assert "[parity] What is the parity of [1, 0]?  =>  1" in out and "Return: 0" in out
    tree = json.loads(retune("trace", "--task", "parity", "--json", "[1, 0]").stdout)
    assert tree["answer"] == "1" and tree["steps"][0]["child"]["problem"] == "What is the parity of [0]?"


def test_solve_with_the_oracle():
    assert retune("solve", "--task", "dp", "--oracle", "[3, -2, 5]").stdout.strip() == "[1, 2, 1]"
    assert retune("solve", "--task", "addition", "--oracle", "73199 + 21439").stdout.strip() == "94638"
    assert retune("solve", "--task", "parity", "--oracle", "[1, 1, 0, 1]").stdout.strip() == "1"
    tree = retune("solve", "--task", "parity", "--oracle", "--tree", "[1, 1, 0]").stdout.splitlines()
    assert tree[0] == "[parity] What is the parity of [1, 1, 0]?  =>  0" and tree[-1] == "0"
    assert any("Call: What is the parity of [1, 0]?" in line for line in tree)


def test_generate_is_deterministic_balanced_and_deduplicated(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = ["generate", "--task", "addition", "--method", "retuning", "--lengths", "1-4", "--per-length", "20"]
    retune(*args, "--seed", "3", "-o", str(a))
    retune(*args, "--seed", "3", "-o", str(b))
    assert a.read_bytes() == b.read_bytes()
    records = [json.loads(line) for line in a.read_text().splitlines()]
    inputs = [r["input"] for r in records]
    assert len(inputs) == len(set(inputs))
    tops = {r["input"] for r in records if r["input"].endswith("Solution: ")}
    for length in range(1, 5):
        assert sum(1 for t in tops if len(t.split(" + ")[0]) == length) >= 20 or length == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["solve", "--task", "nope", "--oracle", "1"], "unknown task 'nope'"),
        (["solve", "--task", "addition", "--oracle", "12 + x"], "cannot parse problem"),
        (["solve", "--task", "parity", "--oracle", "[1, 2]"], "cannot parse problem"),
        (["solve", "--task", "parity", "[1, 0]"], "give --oracle or --run"),
        (["solve", "--task", "parity", "--oracle", "--run", ".", "[1, 0]"], "not both"),
        (["solve", "--task", "parity", "--run", "no/such/run", "[1, 0]"], "does not exist"),
        (["trace", "--task", "dp", "[]"], "cannot parse problem"),
        (["generate", "--task", "parity", "--lengths", "5-2"], "bad length range"),
        (["generate", "--task", "parity", "--lengths", "a-b"], "bad length range"),
        (["generate", "--task", "parity", "--lengths", "0-3"], "bad length range"),
        (["generate", "--task", "parity", "--method", "magic"], "magic"),
        (["generate", "--task", "parity", "--per-length", "0"], "per-length"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = retune(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
