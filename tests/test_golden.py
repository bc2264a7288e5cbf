"""Golden tests: the literal examples of the Re-Tuning paper (shared/docs/retuning-paper.md)."""

from __future__ import annotations

from retune.core.methods import records_for
from retune.plugins import get_registry

REG = get_registry()


def records(task_name, problem_text, method="retuning"):
    task = REG.get(task_name)
    return [(r["input"], r["output"]) for r in records_for(task, task.parse_problem(problem_text), method)]


def test_addition_retuning_records():
    recs = records("addition", "73199 + 21439")
    assert recs[0] == ("73199 + 21439\nSolution: ", "Call: 3199 + 1439\n")
    assert recs[1] == (
        "73199 + 21439\nSolution: Call: 3199 + 1439\nReturn: Carry 0, Output 4638\nAnswer: ",
        "Carry 0, Output 94638",
    )
    assert recs[-1] == ("9 + 9\nSolution: ", "Carry 1, Output 8")
    assert len(recs) == 2 * 5 - 1


def test_addition_keeps_padding_and_carries_out():
    recs = records("addition", "905 + 098")
    assert recs[0] == ("905 + 098\nSolution: ", "Call: 05 + 98\n")
    assert ("905 + 098\nSolution: Call: 05 + 98\nReturn: Carry 1, Output 03\nAnswer: ", "Carry 1, Output 003") in recs
    task = REG.get("addition")
    problem = task.parse_problem("905 + 098")
    assert task.format_final(problem, task.reference(problem)) == "1003"
    assert task.render_problem(task.parse_problem("4 + 1234")) == "0004 + 1234"


def test_addition_scratchpad_and_baseline():
    assert records("addition", "9999 + 0001", "scratchpad") == [
        ("9999 + 0001\nSolution: ", "Carry 1, Output 0\nCarry 1, Output 00\nCarry 1, Output 000\nCarry 1, Output 0000")
    ]
    assert records("addition", "855460094696322 + 396027545337026", "baseline") == [
        ("855460094696322 + 396027545337026\nAnswer: ", "1251487640033348")
    ]


def test_dp_retuning_records():
    recs = dict(records("dp", "[3, -2, 5]"))
    top = "Compute the maximum sum of nonadjacent subsequences of [3, -2, 5]\nSolution: "
    assert recs[top] == "Call: Create dp array [3, -2, 5]\n"
    chosen = "Create chosen indices array: sum array [8, 5, 5], item array [3, -2, 5], can use item True"
    assert recs[top + "Call: Create dp array [3, -2, 5]\nReturn: [8, 5, 5]\nAnswer: "] == f"Call: {chosen}\n"
    # the tail call: no generation after the second call
    assert not any(k.startswith(top + "Call: Create dp array [3, -2, 5]\nReturn: [8, 5, 5]\nAnswer: Call:") for k in recs)
    assert recs["Create dp array [3, -2, 5]\nSolution: "] == (
        "Call with array minus first element. Call: Create dp array [-2, 5]\n"
    )
    assert recs[
        "Create dp array [3, -2, 5]\nSolution: Call with array minus first element. Call: Create dp array [-2, 5]\n"
        "Return: [5, 5]\nAnswer: "
    ] == "Append max(return[0], array[0] + return[1]) to return.\nAnswer: [8, 5, 5]"
    assert recs["Create dp array [5]\nSolution: "] == "Return [0] if negative else element.\nAnswer: [5]"
    assert recs[chosen + "\nSolution: "] == (
        "If there is only 1 item, return 1 if we should use it else 2. If we should use the first item to get "
        "the sum, call False else True. Call: Create chosen indices array: sum array [5, 5], item array [-2, 5], "
        "can use item False\n"
    )
    follow = [v for k, v in recs.items() if k.startswith(chosen) and k.endswith("Return: [2, 1]\nAnswer: ")]
    assert follow == ["Append 1 if False else 2.\nAnswer: [1, 2, 1]"]
    assert recs["Create chosen indices array: sum array [5], item array [5], can use item True\nSolution: "] == (
        "If there is only 1 item, return 1 if we should use it else 2.\nAnswer: [1]"
    )


def test_dp_reference_and_wordings():
    task = REG.get("dp")
    problem = task.parse_problem("[3, 2, 1, 5, 2]")
    assert task.reference(problem) == [1, 2, 2, 1, 2]
    ((prompt, output),) = records("dp", "[3, 2, 1, 5, 2]", "baseline")
    assert prompt.startswith("Given a sequence of integers, find a subsequence with the highest sum")
    assert prompt.endswith("Input = [3, 2, 1, 5, 2].\nAnswer: ") and output == "[1, 2, 2, 1, 2]"
    ((prompt, output),) = records("dp", "[3, 2, 1, 5, 2]", "scratchpad")
    assert prompt.startswith("Question: Let's solve input = [3, 2, 1, 5, 2].")
    assert output.endswith("Reconstructing all together, output=[1, 2, 2, 1, 2].")


def test_parity_records():
    recs = records("parity", "[1, 0, 1]")
    assert recs[0] == ("What is the parity of [1, 0, 1]?\nSolution: ", "Call: What is the parity of [0, 1]?\n")
    assert recs[1] == (
        "What is the parity of [1, 0, 1]?\nSolution: Call: What is the parity of [0, 1]?\nReturn: 1\nAnswer: ",
        "0",
    )
    assert ("What is the parity of [1]?\nSolution: ", "1") in recs
    assert records("parity", "[1, 0, 1]", "scratchpad") == [
        ("What is the parity of [1, 0, 1]?\nSolution: ", "Compute one element at a time. 1 1 0")
    ]
    assert records("parity", "[1, 0, 1]", "baseline") == [("What is the parity of [1, 0, 1]?\nAnswer: ", "0")]
