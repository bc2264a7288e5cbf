"""benchmarks/copy_probe.py runs on the shipped weights and reports a share per kind and size."""

from __future__ import annotations

import json


def test_copy_probe_prints_a_share_per_kind_and_size(run_benchmark):
    done = run_benchmark("copy_probe", "--kinds", "bits,letters", "--sizes", "3,8", "--n", "4")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["model"], r["kind"]) for r in rows] == [("default", "bits"), ("default", "letters")]
    for row in rows:
        assert set(row["right_by_size"]) == {"3", "8"}
        assert all(share in (0, 0.25, 0.5, 0.75, 1) for share in row["right_by_size"].values())
    assert sum(row["right_by_size"]["3"] for row in rows) >= 1  # the shipped weights copy most short lists


def test_copy_probe_rejects_an_unknown_kind_in_one_line(run_benchmark):
    done = run_benchmark("copy_probe", "--kinds", "ints")
    assert done.returncode == 2 and "unknown kind 'ints'" in done.stderr.strip().splitlines()[-1]


def test_numbers_probes_are_two_numbers_of_one_size_and_count_both_edits(benchmark_script):
    probe = benchmark_script("copy_probe")
    batch = probe.probes("numbers", 12, 5)
    assert batch == probe.probes("numbers", 12, 5)  # the same probes every time
    for prompt, pair in batch:
        first, operator, second = prompt.split("\n")[0].split(" ")
        assert [first, second] == pair and all(len(number) == 12 and number.isdigit() for number in pair)
        assert operator in probe.OPERATORS
        assert probe.copied(f"Call: {first} {operator} {second}\n", pair, "numbers")
        assert probe.copied(f"Call: {first[1:]} {operator} {second[1:]}\n", pair, "numbers")
        assert not probe.copied(f"Call: {first[2:]} {operator} {second[1:]}\n", pair, "numbers")
        assert not probe.copied(f"Call: {first} {operator} {second[:-1]}\n", pair, "numbers")
        assert not probe.copied("Call: [1, 0]\n", pair, "numbers")
