"""benchmarks/arith_probe.py: arith records outside any task's format, scored exactly, by kind of instruction."""

from __future__ import annotations

import json
import re


def test_probes_are_fixed_arith_records_of_every_kind(benchmark_script):
    probe = benchmark_script("arith_probe")
    batch = probe.probes(60)
    assert batch == probe.probes(60) and batch != probe.probes(60, seed=1)
    assert {record["method"] for record in batch} == {"arith"}
    assert {record["kind"] for record in batch} == {"value", "in_front", "compare"}
    for record in batch:
        instruction = record["input"].rsplit("\n", 2)[-2]
        if record["kind"] == "compare":
            assert " == " in instruction and record["output"] in ("True", "False")
        elif record["kind"] == "in_front":
            assert instruction.startswith("Answer: Put ") and record["output"].endswith("]")
        else:
            assert instruction.startswith("Answer: Compute ") and re.fullmatch(r"-?\d+", record["output"])


def test_sums_probes_are_sums_records_by_kind_of_instruction_and_lookup(benchmark_script):
    probe = benchmark_script("arith_probe")
    batch = probe.probes(120, edit="sums")
    assert batch == probe.probes(120, edit="sums") and {record["method"] for record in batch} == {"sums"}
    assert {record["kind"] for record in batch} == {f"{kind}/{lookup}" for kind in ("sum", "max", "compare")
                                                    for lookup in ("across", "return")}
    for record in batch:
        instruction = record["input"].rsplit("\n", 2)[-2]
        kind, lookup = record["kind"].split("/")
        assert ("first[" in instruction) == (lookup == "across") and ("return[" in instruction) == (lookup == "return")
        assert (record["output"] in ("True", "False")) == (kind == "compare")
        assert ("max(" in instruction) == (kind == "max")


def test_score_counts_exact_answers_by_kind(benchmark_script):
    probe = benchmark_script("arith_probe")
    batch = probe.probes(30)
    assert probe.score(batch, [r["output"] for r in batch])["right"] == 1.0
    wrong = probe.score(batch, [r["output"] + "0" for r in batch])
    assert wrong["right"] == 0 and set(wrong["right_by_kind"].values()) == {0}
    half = probe.score(batch, [r["output"] if r["kind"] == "compare" else "x" for r in batch])
    assert half["right_by_kind"]["compare"] == 1.0 and half["right_by_kind"]["value"] == 0
    assert sum(half["n_by_kind"].values()) == 30


def test_the_script_prints_one_line_per_model_and_rejects_bad_arguments_in_one_line(run_benchmark):
    models = "default,benchmarks/models/pretrained-arith"
    done = run_benchmark("arith_probe", "--models", models, "--n", "6")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["model"] for row in rows] == models.split(",")
    assert all(sum(row["n_by_kind"].values()) == 6 and 0 <= row["right"] <= 1 for row in rows)
    done = run_benchmark("arith_probe", "--edit", "sums", "--n", "6")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["edit"] == "sums" and sum(row["n_by_kind"].values()) == 6
    for bad, message in ((["--n", "0"], "--n must be at least 1"), (["--models", "no/such/dir"], "no/such/dir")):
        done = run_benchmark("arith_probe", *bad)
        assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1]
