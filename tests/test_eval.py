"""Evaluation by length: results, error analysis, determinism, batch-size independence, the eval command."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from retune.core import text
from retune.core.data import build_records
from retune.core.errors import RetuneError
from retune.core.oracle import OraclePolicy, RecordPolicy
from retune.engines.inference import ModelPolicy
from retune.eval import OUTCOMES, evaluate, evaluate_policy, read_run_config
from retune.eval.command import eval_command
from retune.eval.evaluate import TEST_SEED_OFFSET
from retune.eval.report import format_table, plot_results, write_results
from retune.models import build_default_model
from retune.plugins import get_registry

REGISTRY = get_registry()
ADDITION = REGISTRY.get("addition")
PARITY = REGISTRY.get("parity")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_default_model(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               max_position_embeddings=512, initializer_range=0.2)  # the default position scheme


def _run_dir(path, tiny, **config):
    model, tokenizer = tiny
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "train_config.json").write_text(json.dumps({"tasks": ["parity"], "method": "retuning",
                                                         "lengths": [1, 3], "seed": 0, **config}))
    return path


def _strip(results: dict) -> dict:
    """Results without what may differ between identical evaluations (wall time, the policy's counters)."""
    out = {k: v for k, v in results.items() if k not in ("timing", "policy", "per_task", "batch_size")}
    return out


# ---- results of a perfect and of faulty policies ---------------------------------------------------
@pytest.mark.parametrize("task_name", ["addition", "parity", "dp", "multiplication", "gcd"])
def test_oracle_scores_perfectly_with_every_node_right(task_name):
    task = REGISTRY.get(task_name)
    results = evaluate_policy(OraclePolicy(task), task_name, "retuning", (1, 4), 3, seed=1, train_lengths=(1, 2))
    assert results["accuracy"] == 1.0 and results["n"] == len(results["problems"])
    assert results["per_call"]["accuracy"] == 1.0 and results["per_call"]["unfinished"] == 0
    assert results["outcomes"]["correct"] == results["n"]
    assert set(results["outcomes"]) == set(OUTCOMES)
    assert results["failures"] == [] and not any(results["errors"].values())
    assert list(results["by_length"]) == ["1", "2", "3", "4"]
    assert [row["in_train"] for row in results["by_length"].values()] == [True, True, False, False]
    assert results["train_lengths"] == [1, 2] and results["test_seed"] == 1 + TEST_SEED_OFFSET
    assert all(p["tokens"] > 0 for p in results["problems"])
    json.dumps(results)  # JSON-ready


@pytest.mark.parametrize("method", ["scratchpad", "baseline"])
def test_single_context_methods_go_through_the_same_solver(method):
    records = build_records("addition", method, (2, 4), 3, TEST_SEED_OFFSET)
    results = evaluate_policy(RecordPolicy(records), "addition", method, (2, 4), 3)
    assert results["accuracy"] == 1.0 and results["per_call"] is None
    broken = evaluate_policy(lambda contexts: ["nonsense"] * len(contexts), "addition", method, (2, 4), 3)
    assert broken["accuracy"] == 0.0 and broken["outcomes"]["malformed"] == broken["n"]


class Corrupt:
    """The oracle, except where ``change(context, segment)`` returns something else."""

    def __init__(self, task, change):
        self.oracle, self.change = OraclePolicy(task), change

    def __call__(self, contexts):
        return [self.change(c, s) for c, s in zip(contexts, self.oracle(contexts))]


def _first_errors(results):
    return [f["error"] for f in results["failures"]]


def test_a_wrong_base_case_is_found_as_the_first_error():
    def change(context, segment):  # every 1-digit sum gets the wrong carry
        if text.RETURN not in context and not segment.startswith(text.CALL):
            return segment.replace("Carry 0", "Carry 9").replace("Carry 1", "Carry 0").replace("Carry 9", "Carry 1")
        return segment

    results = evaluate_policy(Corrupt(ADDITION, change), "addition", "retuning", (1, 3), 4)
    assert results["accuracy"] == 0.0
    errors = _first_errors(results)
    assert errors and all(e["kind"] == "wrong_base_case" for e in errors)
    assert all(ADDITION.is_base_case(ADDITION.parse_problem(e["problem"])) for e in errors)
    assert results["errors"]["wrong_base_case"] == results["n"]
    by_length = results["by_length"]
    assert by_length["1"]["outcomes"]["wrong"] == by_length["1"]["n"]  # a base case alone answers wrongly
    assert by_length["3"]["outcomes"]["malformed"] == by_length["3"]["n"]  # the oracle cannot go on
    per_call = results["per_call"]  # the wrong base cases, and their parents that never answered
    assert per_call["right"] == 0 and per_call["unfinished"] == per_call["nodes"] - results["n"]


def test_a_wrong_combine_is_found_as_the_first_error():
    def change(context, segment):  # the top context of 3-digit problems answers a wrong output
        if text.problem_of_context(context).count(" ") == 2 and len(text.problem_of_context(context)) == 9 \
                and text.RETURN in context:
            carry, output = segment.split(", Output ")
            return f"{carry}, Output {str(int(output) + 1).zfill(len(output))[-len(output):]}"
        return segment

    results = evaluate_policy(Corrupt(ADDITION, change), "addition", "retuning", (1, 3), 4)
    by_length = results["by_length"]
    assert by_length["1"]["accuracy"] == by_length["2"]["accuracy"] == 1.0
    assert by_length["3"]["accuracy"] == 0.0 and by_length["3"]["outcomes"]["wrong"] == by_length["3"]["n"]
    assert by_length["3"]["errors"]["wrong_combine"] == by_length["3"]["n"]
    assert all(e["kind"] == "wrong_combine" and e["depth"] == 0 for e in _first_errors(results))
    # every node but the top one is right
    assert by_length["3"]["per_call"]["right"] == by_length["3"]["per_call"]["nodes"] - by_length["3"]["n"]


def test_a_wrong_call_is_found_as_the_first_error_and_a_stopped_context_by_what_was_due():
    def change(context, segment):
        if segment.startswith(text.CALL) and context.startswith("What is the parity of [1, "):
            return segment.replace("[", "[1, ", 1)  # a larger list: not smaller, or a different list
        return segment

    results = evaluate_policy(Corrupt(PARITY, change), "parity", "retuning", (2, 5), 5)
    errors = _first_errors(results)
    assert errors and all(e["kind"] == "wrong_call" and e["expected"].startswith(text.CALL) for e in errors)
    assert results["outcomes"]["cycle"] + results["outcomes"]["not_smaller"] > 0  # it called itself

    silent = evaluate_policy(lambda contexts: [""] * len(contexts), "parity", "retuning", (1, 3), 3)
    kinds = {(e["problem"].count(",") == 0, e["kind"]) for e in _first_errors(silent)}
    assert kinds == {(True, "wrong_base_case"), (False, "wrong_call")}
    assert all(e["stopped"] for e in _first_errors(silent))
    assert silent["outcomes"]["malformed"] == silent["n"]


# ---- a saved run, end to end -------------------------------------------------------------------------
def test_evaluate_a_run_dir_is_deterministic_and_independent_of_batch_size(tiny, tmp_path):
    run = _run_dir(tmp_path / "run", tiny)
    a = evaluate(run, "1-5", 4, batch_size=64, seed=3)
    b = evaluate(run, "1-5", 4, batch_size=1, seed=3)
    c = evaluate(run, (1, 5), 4, batch_size=7, seed=3)
    assert _strip(a) == _strip(b) == _strip(c)
    assert a["task"] == "parity" and a["method"] == "retuning" and a["train_lengths"] == [1, 3]
    assert set(a["by_length"]) == {"1", "2", "3", "4", "5"}
    assert {"accuracy", "n", "in_train", "outcomes", "per_call"} <= set(a["by_length"]["3"])
    assert a["timing"]["seconds"] > 0 and a["timing"]["tokens_per_problem"] > 0
    assert all(seconds > 0 for seconds in a["timing"]["seconds_per_problem_by_length"].values())
    failed = [p for p in a["problems"] if not p["correct"]]
    assert failed and all(p["error"]["kind"] in ("wrong_call", "wrong_base_case", "wrong_combine") for p in failed)
    assert a["max_new_tokens"] >= 16
    other = evaluate(run, "1-5", 4, batch_size=64, seed=4)
    assert [p["problem"] for p in other["problems"]] != [p["problem"] for p in a["problems"]]


def test_evaluate_a_run_dir_draws_the_test_set_of_the_runs_seed_by_default(tiny, tmp_path):
    """Re-evaluating a run without a seed gives the test problems ``retune run --seed S`` evaluated."""
    run = _run_dir(tmp_path / "run", tiny, seed=7)
    default = evaluate(run, "2-4", 3)
    assert default["seed"] == 7 and default["test_seed"] == 7 + 1_000_003 and default["train_seed"] == 7
    assert _strip(default) == _strip(evaluate(run, "2-4", 3, seed=7))
    assert [p["problem"] for p in evaluate(run, "2-4", 3, seed=0)["problems"]] != \
        [p["problem"] for p in default["problems"]]


def test_evaluation_results_with_real_recursion_do_not_depend_on_batch_size(tiny):
    """The model's tokens are forced to the reference calls, and it answers freely after each return."""
    model, tokenizer = tiny
    oracle = OraclePolicy(PARITY)

    class Hybrid(ModelPolicy):
        def _next_tokens(self, logits, rows, produced):
            free, out = logits.argmax(-1).tolist(), []
            for b, r in enumerate(rows):
                context = self._rows[r]
                ids = tokenizer(oracle([context])[0], add_special_tokens=False)["input_ids"]
                if text.RETURN in context and len(context) % 3:  # free for some resumed contexts
                    out.append(free[b])
                else:
                    out.append(ids[len(produced[r])] if len(produced[r]) < len(ids) else self.eos_ids[0])
            return torch.tensor(out)

    runs = [evaluate_policy(Hybrid(model, tokenizer, batch_size=size, max_new_tokens=40), "parity", "retuning",
                            (1, 6), 4, seed=2, train_lengths=(1, 3)) for size in (1, 64)]
    assert _strip(runs[0]) == _strip(runs[1])
    assert 0 < runs[0]["accuracy"] < 1 and runs[0]["outcomes"]["malformed"] > 0


def test_eval_command_writes_results_and_plot(tiny, tmp_path):
    run = _run_dir(tmp_path / "run", tiny)
    out = tmp_path / "out" / "results.json"
    result = CliRunner().invoke(eval_command, ["--run", str(run), "--lengths", "2-4", "--per-length", "3",
                                               "--batch-size", "8", "--seed", "1", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "length" in result.output and "all" in result.output
    saved = json.loads(out.read_text())
    assert saved["seed"] == 1 and saved["batch_size"] == 8 and len(saved["problems"]) == saved["n"]
    assert (out.parent / "plot.png").read_bytes().startswith(b"\x89PNG")
    default = CliRunner().invoke(eval_command, ["--run", str(run), "--lengths", "2", "--per-length", "2", "--quiet"])
    assert default.exit_code == 0 and (run / "results.json").is_file() and (run / "plot.png").is_file()


def test_solve_with_a_run_answers_as_the_solver_does_with_the_run_s_model_and_method(tiny, tmp_path, capsys):
    from retune.cli import cli, main
    from retune.core.solver import solve
    from retune.engines.inference import load_model
    from retune.eval.evaluate import segment_budget

    for method in ("retuning", "baseline"):
        run = _run_dir(tmp_path / method, tiny, method=method)
        problem = PARITY.parse_problem("[1, 0, 1]")
        model, tokenizer = load_model(run)
        budget = segment_budget(tokenizer, [PARITY], {"parity": [(3, problem)]}, method)
        expected = solve(PARITY, [problem], ModelPolicy(model, tokenizer, batch_size=1, max_new_tokens=budget),
                         method)[0]
        result = CliRunner().invoke(cli, ["solve", "--task", "parity", "--run", str(run), "--json", "[1, 0, 1]"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == json.loads(expected.model_dump_json())
        assert (expected.tree is not None) == (method == "retuning")  # the model's own call tree
        capsys.readouterr()
        if expected.final is None:  # an untrained model's garbage: one line saying why, exit 2
            with pytest.raises(SystemExit) as exit_info:
                main(["solve", "--task", "parity", "--run", str(run), "[1, 0, 1]"])
            err = capsys.readouterr().err
            assert exit_info.value.code == 2 and err.count("\n") == 1
            assert err.startswith(f"error: no answer: {expected.outcome.value}")
        else:
            main(["solve", "--task", "parity", "--run", str(run), "[1, 0, 1]"])
            assert capsys.readouterr().out.splitlines()[0] == expected.final


@pytest.mark.parametrize("args, message", [
    (["--run", "/nonexistent/run"], "does not exist"),
    (["--lengths", "5-2"], "bad length range"),
    (["--lengths", "x"], "bad length range"),
    (["--per-length", "0"], "per-length"),
    (["--batch-size", "0"], "batch size"),
    (["--task", "nosuchtask"], "nosuchtask"),
])
def test_eval_bad_input_is_a_one_line_error(tiny, tmp_path, capsys, args, message):
    from retune.cli import main

    run = _run_dir(tmp_path / "run", tiny)
    capsys.readouterr()
    argv = ["eval", "--run", str(run), "--per-length", "1", "--quiet"] + args
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and "\n" not in err and err.startswith("error:")


def test_read_run_config(tmp_path):
    with pytest.raises(RetuneError, match="no train_config.json"):
        read_run_config(tmp_path)
    (tmp_path / "train_config.json").write_text(json.dumps({"tasks": [], "method": "baseline", "lengths": [2, 6],
                                                            "data": "x.jsonl"}))
    (tmp_path / "data_summary.json").write_text(json.dumps({"by_task": {"addition": 10, "parity": 3}}))
    config = read_run_config(tmp_path)
    assert config["tasks"] == ["addition", "parity"] and config["method"] == "baseline"
    assert config["train_lengths"] == [2, 6]
    (tmp_path / "data_summary.json").unlink()
    with pytest.raises(RetuneError, match="give --task"):
        evaluate(tmp_path, "1-2", 1)


def test_table_and_combined_plot(tmp_path):
    results = [evaluate_policy(OraclePolicy(PARITY), "parity", "retuning", (1, 4), 2, train_lengths=(1, 2)),
               evaluate_policy(lambda cs: ["1"] * len(cs), "parity", "baseline", (1, 4), 2, train_lengths=(1, 2))]
    table = format_table(results[0])
    assert "1*" in table and "4 " in table and "parity / retuning" in table
    path = plot_results(results, tmp_path / "combined.png", title="parity")
    assert path.read_bytes().startswith(b"\x89PNG")
    written, plot = write_results(results[1], tmp_path / "baseline.json")
    assert json.loads(written.read_text())["method"] == "baseline" and plot.name == "baseline.png"
