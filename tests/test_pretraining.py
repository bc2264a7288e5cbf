"""The default model's task-agnostic pretraining data and its shipped pretrained weights."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from retune.core.text import ANSWER, CALL, RETURN, SOLUTION, ParsedCall, parse_segment
from retune.models import load_default_model
from retune.models.default import DEFAULT_POSITION_SCHEME, PRETRAINED_DIR
from retune.models.positions import scheme_of
from retune.models.pretraining import (EDITS, MAX_LINE, Line, parse_edits, parse_kinds, pretraining_record,
                                      random_line)
from retune.plugins import get_registry

INDEX = st.integers(min_value=0, max_value=10**9)
_LIST = re.compile(r"\[([^\]]*)\]")


@settings(max_examples=300, deadline=None)
@given(INDEX, st.integers(min_value=0, max_value=5))
def test_records_are_deterministic_and_in_the_text_protocol(index, seed):
    record = pretraining_record(index, seed)
    assert record == pretraining_record(index, seed)
    assert record["task"] == "pretraining" and record["method"] in EDITS
    problem = record["input"].split(SOLUTION)[0]
    assert "\n" not in problem and len(problem) <= MAX_LINE
    if record["method"] == "grow":
        assert record["input"].endswith(ANSWER) and "\n" not in record["output"]
    elif record["method"] == "compare":
        returned = record["input"].split(RETURN)[1]
        first = lambda text: re.search(r"\[([^,\]]+)|(\d)", text).group(1, 2)  # noqa: E731
        same = [v for v in first(problem) if v] == [v for v in first(returned) if v]
        assert record["input"].endswith(ANSWER) and record["output"] == str(same)
    else:
        segment = parse_segment(record["output"])
        assert record["input"].endswith(SOLUTION) and isinstance(segment, ParsedCall)


@settings(max_examples=300, deadline=None)
@given(INDEX)
def test_smaller_drops_the_first_item_of_every_list_and_digit_of_every_number(index):
    import random

    line = random_line(random.Random(index))
    smaller = line.smaller()
    for (kind, before), (_, after) in zip(line.chunks, smaller.chunks):
        if kind in ("list", "number"):
            assert list(after) == list(before)[1:] or (len(before) == 1 and list(after) == list(before))
        else:
            assert after == before
    grown = smaller.grow("x", "7")
    for (kind, before), (_, after) in zip(smaller.chunks, grown.chunks):
        if kind == "list":
            assert after == ["x", *before]
        elif kind == "number":
            assert after == "7" + before


def test_the_default_edits_draw_the_records_the_shipped_weights_were_trained_on():
    import hashlib

    records = [pretraining_record(i) for i in range(200)]
    assert records == [pretraining_record(i, 0, dict(EDITS)) for i in range(200)]
    digest = hashlib.sha256(json.dumps(records).encode()).hexdigest()
    assert digest == "cde3486685f07ec305ef0ef80de4a9376d03a87ec181ce78c95614e149d3b336"  # records of session 1


_HEADS = re.compile(r"\[([^,\]]+)[^\]]*\]|(\d)\d*")  # a list's first item or a number's first digit


@settings(max_examples=200, deadline=None)
@given(INDEX)
def test_firsts_records_ask_for_the_head_of_every_list_and_number_and_of_the_return(index):
    record = pretraining_record(index, 0, {"firsts": 1})
    assert record["method"] == "firsts" and record["input"].endswith(ANSWER)
    problem = record["input"].split(SOLUTION)[0]
    returned = record["input"].split(RETURN)[1].split("\n")[0]
    heads = ["".join(match) for match in _HEADS.findall(problem)]
    assert heads and record["output"] == " ".join(heads) + "; " + "".join(_HEADS.findall(returned)[0])


_INSTRUCTION = re.compile(r"\n" + ANSWER + r"(Compute|Put) (.*?)( in front of return)?\.\n" + ANSWER + "$")


@settings(max_examples=300, deadline=None)
@given(INDEX, st.integers(min_value=0, max_value=5))
def test_arith_records_answer_the_value_of_their_expression(index, seed):
    record = pretraining_record(index, seed, {"arith": 1, "firsts": 1})
    if record["method"] != "arith":
        return
    problem = record["input"].split(SOLUTION)[0]
    returned = record["input"].split(RETURN)[1].split("\n")[0]
    array = [int(item) for item in _LIST.search(problem)[1].split(", ")]
    values = [int(item) for item in _LIST.findall(returned)[-1].split(", ")]
    verb, expression, in_front = _INSTRUCTION.search(record["input"]).groups()
    assert (verb == "Put") == bool(in_front)
    assert re.fullmatch(r"[a-z\[\]\d ,()+=-]+", expression)  # names, indices, +, -, max, min, ==
    value = eval(expression.replace("return", "returned"), {"max": max, "min": min},  # noqa: S307
                 {"array": array, "returned": values})
    if in_front:
        assert record["output"] == returned.replace("[", f"[{value}, ", 1)
    else:
        assert record["output"] == str(value)


def test_arith_records_mix_with_the_others_and_compare_true_about_half_the_time():
    mix = {"smaller": 8.0, "grow": 3.0, "compare": 2.0, "firsts": 6.0, "arith": 4.0}
    assert {pretraining_record(i, 3, mix)["method"] for i in range(300)} == set(mix)
    comparisons = [r["output"] for r in (pretraining_record(i, 3, {"arith": 1}) for i in range(500))
                   if " == " in r["input"]]
    assert len(comparisons) > 50 and 0.3 < comparisons.count("True") / len(comparisons) < 0.7


_FLAG_AT_END = re.compile(r", ([A-Za-z]+(?: [A-Za-z]+)*) (True|False)$")
_FLAG_IN_FRONT = re.compile(r"^([A-Za-z]+(?: [A-Za-z]+)*) (True|False): ")
_CHOICE = re.compile(r" (\d) if ([A-Za-z ]+) else (\d)\.\n" + ANSWER + "$")


@settings(max_examples=300, deadline=None)
@given(INDEX, st.integers(min_value=0, max_value=5))
def test_flags_records_answer_from_the_flag_their_problem_line_names(index, seed):
    record = pretraining_record(index, seed, {"flags": 1})
    assert record["method"] == "flags"
    problem, rest = record["input"].split(SOLUTION, 1)
    match = _FLAG_AT_END.search(problem) or _FLAG_IN_FRONT.search(problem)
    name, flag = match.groups()
    assert rest == "" or rest.endswith("\n" + ANSWER) and rest.count("\n") == 1  # one line below, or two
    choice = _CHOICE.search(rest)
    if choice:
        yes, named, no = choice.groups()
        assert named == name and yes != no
        assert record["output"] == f"[{yes if flag == 'True' else no}]"
    else:
        assert record["output"] in (flag, f"[{flag}]")


def test_flags_records_are_true_about_half_the_time():
    flags = [pretraining_record(i, 4, {"flags": 1})["output"] for i in range(400)]
    plain = [f.strip("[]") for f in flags if f.strip("[]") in ("True", "False")]
    assert len(plain) > 200 and 0.4 < plain.count("True") / len(plain) < 0.6


_SUMS = re.compile(r"Compute (?:max\((\w+)\[(\d)\], )?(?:(\w+)\[(\d)\] == )?(\w+)\[(\d)\] \+ (\w+)\[(\d)\]\)?\.\n"
                   + ANSWER + "$")


def _numbers_record(index: int, seed: int, edit: str) -> tuple[dict, list[list[int]], str]:
    """Record ``index`` of ``edit`` alone, the integer lists of its problem line, and the text after the line."""
    record = pretraining_record(index, seed, {edit: 1})
    assert record["method"] == edit
    problem, rest = record["input"].split(SOLUTION, 1)
    return record, [[int(item) for item in found.split(", ")] for found in _LIST.findall(problem)], rest


def _returned(rest: str) -> list[int]:
    return [int(item) for item in _LIST.findall(rest.split(RETURN)[1])[0].split(", ")]


@settings(max_examples=300, deadline=None)
@given(INDEX, st.integers(min_value=0, max_value=5))
def test_sums_records_answer_one_sum_of_two_small_items_looked_up(index, seed):
    record, lists, rest = _numbers_record(index, seed, "sums")
    if RETURN in rest:  # a combine's lookups: array (the problem line's list) and return
        assert len(lists) == 1 and rest.startswith(CALL)
        named = {"array": lists[0], "return": _returned(rest)}
    else:  # across the problem line's two lists, answered right below it
        assert len(lists) == 2 and rest.count("\n") == 1
        named = {"first": lists[0], "second": lists[1]}
    mx_name, mx_i, eq_name, eq_i, a_name, a_i, b_name, b_i = _SUMS.search(rest).groups()
    assert a_name != b_name and a_name in named and b_name in named  # one item of each list
    assert max(int(i) for i in (a_i, b_i, mx_i or 0, eq_i or 0)) < 3  # the first three items only
    small = [item for n, items in enumerate(lists) for i, item in enumerate(items)
             if not (eq_name == "first" and n == 0 and i == int(eq_i))]  # a compared item may hold the sum
    assert all(-9 <= item <= 9 for item in small)  # small integers, as task lists' items are
    total = named[a_name][int(a_i)] + named[b_name][int(b_i)]
    if mx_name:
        assert record["output"] == str(max(named[mx_name][int(mx_i)], total))
    elif eq_name:
        assert record["output"] == str(named[eq_name][int(eq_i)] == total)
    else:
        assert record["output"] == str(total)
    assert "in front" not in rest


def test_sums_records_mix_with_the_others_and_compare_true_about_half_the_time():
    mix = {"smaller": 8.0, "grow": 3.0, "compare": 2.0, "firsts": 6.0, "flags": 8.0, "sums": 16.0}
    assert {pretraining_record(i, 3, mix)["method"] for i in range(300)} == set(mix)
    comparisons = [r["output"] for r in (pretraining_record(i, 3, {"sums": 1}) for i in range(800))
                   if " == " in r["input"]]
    assert len(comparisons) > 100 and 0.4 < comparisons.count("True") / len(comparisons) < 0.65


def test_the_arith_candidate_s_records_are_the_ones_it_was_trained_on():
    import hashlib

    saved = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "models" / "pretrained-arith"
                        / "pretraining.json").read_text())["settings"]
    records = [pretraining_record(i, saved["seed"], saved["edits"], saved["kinds"]) for i in range(200)]
    digest = hashlib.sha256(json.dumps(records).encode()).hexdigest()
    assert digest == "b61b281e9bde4b36e141b2ae7ab50ce21fba43b96698fcdfe98e54c6e7424be0"  # records of session 17


def test_edits_parse_or_fail_in_one_line():
    assert parse_edits("copy=2, firsts=0.5") == {"copy": 2.0, "firsts": 0.5}
    for bad in ("copy", "copy=x", "teleport=1", "copy=-1", "copy=0", ""):
        with pytest.raises(ValueError, match="bad pretraining edits"):
            parse_edits(bad)


@settings(max_examples=200, deadline=None)
@given(INDEX)
def test_kind_weights_draw_only_the_kinds_they_weigh(index):
    import random

    for kinds, allowed in (({"bits": 1}, {"0", "1"}), ({"letters": 2, "bools": 1}, None)):
        line = random_line(random.Random(index), kinds)
        for kind, value in line.chunks:
            if kind == "list" and allowed:
                assert set(value) <= allowed
            elif kind == "list":
                assert all(v.isalpha() and (len(v) == 1 or v in ("True", "False")) for v in value)
    record = pretraining_record(index, 0, {"copy": 1}, {"bits": 1})
    assert all(set(items.split(", ")) <= {"0", "1"} for items in _LIST.findall(record["input"]))


def test_kinds_parse_or_fail_in_one_line():
    assert parse_kinds("bits=3, digits=1") == {"bits": 3.0, "digits": 1.0}
    for bad in ("bits", "bits=x", "emoji=1", "bits=-1", "bits=0", ""):
        with pytest.raises(ValueError, match="bad pretraining kinds"):
            parse_kinds(bad)


def _tiny_init(tiny_model_dir: Path, directory: Path):
    """A copy of the tiny model (conftest's ``tiny_model_dir``) in ``directory``, to continue pretraining from; the
    model."""
    shutil.copytree(tiny_model_dir, directory)
    return AutoModelForCausalLM.from_pretrained(directory)


def test_pretraining_continues_from_a_model_directory(tmp_path, tiny_model_dir):
    from retune.models.pretraining import pretrain

    model = _tiny_init(tiny_model_dir, tmp_path / "init")
    (tmp_path / "init" / "pretraining.json").write_text(json.dumps({"settings": {"seed": 5}}))
    with pytest.raises(ValueError, match="uses 'words' positions"):
        pretrain(tmp_path / "out", tmp_path / "work", init=tmp_path / "init", position_scheme="hierarchical")
    with pytest.raises(ValueError, match="not a model directory"):
        pretrain(tmp_path / "out", tmp_path / "work", init=tmp_path / "nowhere")
    out = pretrain(tmp_path / "out", tmp_path / "work", init=tmp_path / "init", records=40, batch_size=4,
                   max_steps=2, warmup_steps=0, edits={"copy": 1, "firsts": 1}, kinds={"bits": 1}, progress=False)
    saved = json.loads((out / "pretraining.json").read_text())
    assert saved["init"] == {"settings": {"seed": 5}} and saved["settings"]["edits"] == {"copy": 1, "firsts": 1}
    assert saved["settings"]["kinds"] == {"bits": 1}
    lists = _LIST.findall((tmp_path / "work" / "records.jsonl").read_text())
    assert lists and all(set(items.split(", ")) <= {"0", "1"} for items in lists)
    assert saved["settings"]["max_steps"] == 2
    trained = AutoModelForCausalLM.from_pretrained(out)
    assert trained.config.hidden_size == 32  # the init's architecture, not the default one
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), trained.parameters()))


def test_copy_records_reach_lengths_far_beyond_task_training():
    records = [pretraining_record(i) for i in range(3000)]
    assert max(r["length"] for r in records) >= 60
    assert sum(r["length"] >= 30 for r in records) >= 0.1 * len(records)


def test_long_records_are_the_long_ones_of_the_same_stream():
    from retune.models.pretraining import pretraining_records

    long = pretraining_records(40, seed=3, min_length=32)
    assert len(long) == 40 and all(r["length"] >= 32 for r in long)
    stream = [r for r in pretraining_records(2000, seed=3) if r["length"] >= 32]
    assert long == stream[:40]  # the same records in the same order, the short ones left out


def test_no_record_is_a_task_problem():
    records = [pretraining_record(i) for i in range(500)]
    registry = get_registry()
    for name in registry.names():
        task = registry.get(name)
        for record in records:
            problem = record["input"].split(SOLUTION)[0]
            try:
                task.parse_problem(problem)
            except Exception:
                continue
            assert task.render_problem(task.parse_problem(problem)) != problem, name


def test_line_render_round_trips_lists_and_numbers():
    line = Line([("text", "abc "), ("list", ["1", "0"]), ("text", ", de "), ("number", "907")])
    assert line.render() == "abc [1, 0], de 907"
    assert line.smaller().render() == "abc [0], de 07"
    assert line.grow("5", "3").render() == "abc [5, 1, 0], de 3907"


def _mean_loss(model, tokenizer, records) -> float:
    """Mean per-example loss on the records' outputs, with the model's own position ids."""
    from retune.engines.training.data import collate, encode_records

    examples, _ = encode_records(records, tokenizer, 2048, scheme_of(model.config))
    batch = collate(examples, tokenizer.pad_token_id)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch.get("position_ids")).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    mask = labels != -100
    return float(((losses * mask).sum(1) / mask.sum(1)).mean())


def _stages_of(saved: dict) -> list[dict]:
    """The settings of a pretraining.json and of its chain of inits, the first stage first."""
    chain = []
    while saved:
        chain.append(saved["settings"])
        saved = saved.get("init")
    return chain[::-1]


def test_shipped_weights_are_the_documented_pretrained_default_model():
    from retune.models import build_default_model
    from retune.models.pretraining import PRETRAINING_STAGES, stage_settings

    assert (PRETRAINED_DIR / "model.safetensors").stat().st_size < 4_000_000  # a small file in the package
    saved = json.loads((PRETRAINED_DIR / "pretraining.json").read_text())
    # `python -m retune.models.pretraining --shipped` rebuilds them: every stage's settings as recorded
    assert _stages_of(saved) == [stage_settings(k) for k in range(len(PRETRAINING_STAGES) + 1)]
    assert not {"copy", "rewrite"} & set(saved["settings"]["edits"]) and saved["time_budget"] == 240
    assert _stages_of(saved)[0]["edits"]["firsts"] > 0  # firsts from the first stage on
    model, tokenizer = load_default_model()
    assert scheme_of(model.config) == DEFAULT_POSITION_SCHEME == "words"
    plain = AutoModelForCausalLM.from_pretrained(PRETRAINED_DIR)  # plain transformers loads them too
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain.parameters()))

    # Held-out pretraining records (another seed): the shipped model has learned them, a fresh one has not.
    held_out = [r for r in (pretraining_record(i, seed=123) for i in range(64)) if r["method"] != "rewrite"][:32]
    torch.manual_seed(0)
    fresh, _ = build_default_model()
    assert _mean_loss(model, tokenizer, held_out) < 0.5 * _mean_loss(fresh, tokenizer, held_out)


def test_missing_weights_are_a_one_line_error(tmp_path, monkeypatch):
    import retune.models.default as default
    from retune.core.errors import RetuneError

    monkeypatch.setattr(default, "PRETRAINED_DIR", tmp_path / "nowhere")
    try:
        load_default_model()
    except RetuneError as exc:
        assert "pretrained weights are missing" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("no error for missing weights")
    assert default.load_default_model(pretrained=False)[0].config.retune_position_scheme == "words"


def test_parallel_records_are_the_same_records(monkeypatch):
    from retune.models import pretraining

    monkeypatch.setattr(pretraining, "PARALLEL_MIN", 0)
    assert pretraining.pretraining_records(120, seed=3, processes=2) == pretraining.pretraining_records(120, seed=3)


def test_benchmark_weights_load_and_record_how_they_were_built():
    """The pretrainings kept for the benchmarks (the first shipped CPU weights, two GPU runs, the stages of the
    shipped weights before the last, and a candidate continuing them with arith records): plain transformers loads them, with the position scheme and the settings
    their pretraining.json records; each stage's init is the stage before."""
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "models"
    for name, scheme in (("pretrained-cpu", "hierarchical"), ("pretrained-p2", "hierarchical"),
                         ("pretrained-words-f", "words"), ("pretrained-wf-b", "words"), ("pretrained-cont-b", "words"),
                         ("pretrained-cont-c", "words"), ("pretrained-cont-d", "words"),
                         ("pretrained-cont-e", "words"), ("pretrained-cont-f", "words"),
                         ("pretrained-cont-g", "words"), ("pretrained-arith", "words"),
                         ("pretrained-cont-i", "words")):
        model = AutoModelForCausalLM.from_pretrained(root / name)
        saved = json.loads((root / name / "pretraining.json").read_text())
        assert scheme_of(model.config) == scheme == saved["settings"]["position_scheme"]
    stage2 = json.loads((root / "pretrained-words-f" / "pretraining.json").read_text())
    assert stage2["settings"]["edits"]["firsts"] > 0 and "firsts" not in stage2["init"]["settings"]["edits"]
    wf_b = json.loads((root / "pretrained-wf-b" / "pretraining.json").read_text())
    cont_b = json.loads((root / "pretrained-cont-b" / "pretraining.json").read_text())
    assert cont_b["init"] == wf_b and "init" not in wf_b and cont_b["settings"]["kinds"]["bits"] == 2
    cont_c = json.loads((root / "pretrained-cont-c" / "pretraining.json").read_text())
    assert {**cont_c["init"], "model": None} == {**cont_b, "model": None}  # cont-b, continued on a fitted cosine
    assert cont_c["settings"]["max_steps"] == cont_c["fitted_horizons"][-1][1]
    cont_d = json.loads((root / "pretrained-cont-d" / "pretraining.json").read_text())
    assert cont_d["init"] == {**cont_c, "model": "benchmarks/models/pretrained-cont-c"}
    cont_e = json.loads((root / "pretrained-cont-e" / "pretraining.json").read_text())
    assert cont_e["init"] == {**cont_d, "model": "benchmarks/models/pretrained-cont-d"}
    cont_f = json.loads((root / "pretrained-cont-f" / "pretraining.json").read_text())
    assert cont_f["init"] == {**cont_e, "model": "benchmarks/models/pretrained-cont-e"}
    cont_g = json.loads((root / "pretrained-cont-g" / "pretraining.json").read_text())
    assert cont_g["init"] == {**cont_f, "model": "benchmarks/models/pretrained-cont-f"}
    shipped = json.loads((PRETRAINED_DIR / "pretraining.json").read_text())
    assert shipped["init"] == {**cont_g, "model": "benchmarks/models/pretrained-cont-g"}
    arith = json.loads((root / "pretrained-arith" / "pretraining.json").read_text())  # candidates beside them
    assert arith["init"] == {**shipped, "model": "retune/models/pretrained"} and arith["settings"]["edits"]["arith"] > 0
    cont_i = json.loads((root / "pretrained-cont-i" / "pretraining.json").read_text())
    assert cont_i["init"] == {**shipped, "model": "retune/models/pretrained"} and cont_i["settings"]["edits"]["flags"] > 0


def test_the_shipped_stages_rebuild_one_on_another_and_a_rerun_keeps_finished_stages(tmp_path, monkeypatch):
    from retune.models import pretraining

    tiny = {"records": 8, "batch_size": 2, "max_steps": 2, "warmup_steps": 0, "max_length": 300, "progress": False}
    monkeypatch.setattr(pretraining, "PRETRAINING_SETTINGS", {**pretraining.PRETRAINING_SETTINGS, **tiny})
    monkeypatch.setattr(pretraining, "PRETRAINING_STAGES", ({"seed": 5, "max_steps": 3, "scheduler": "cosine",
                                                             "edits": {"smaller": 1.0}},))
    out = pretraining.pretrain_shipped(tmp_path / "out", tmp_path / "work")
    saved = json.loads((out / "pretraining.json").read_text())
    assert _stages_of(saved) == [pretraining.stage_settings(0), pretraining.stage_settings(1)]
    first = AutoModelForCausalLM.from_pretrained(tmp_path / "work" / "stage-0" / "model")
    last = AutoModelForCausalLM.from_pretrained(out)
    assert not all(torch.equal(a, b) for a, b in zip(first.parameters(), last.parameters()))  # stage 1 trained
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "work").rglob("model.safetensors")}
    pretraining.pretrain_shipped(tmp_path / "again", tmp_path / "work")  # both stages done: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "work").rglob("model.safetensors")}
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="no pretraining stage 2"):
        pretraining.pretrain_shipped(tmp_path / "x", tmp_path / "work", stages=2)


def test_shipped_rebuild_takes_no_other_setting(capsys):
    from retune.models.pretraining import main

    with pytest.raises(SystemExit) as exc:
        main(["--out", "nowhere", "--shipped", "--lr", "0.1"])
    assert exc.value.code == 2 and "drop --lr" in capsys.readouterr().err


def test_a_pretraining_fitted_to_a_time_budget_records_the_budget_and_its_horizons(tmp_path, tiny_model_dir):
    from retune.engines.training.trainer import CALIBRATION_STEPS
    from retune.models.pretraining import pretrain

    _tiny_init(tiny_model_dir, tmp_path / "init")
    out = pretrain(tmp_path / "out", tmp_path / "work", time_budget=4.0, init=tmp_path / "init", records=64,
                   batch_size=2, max_steps=10**6, warmup_steps=0, scheduler="cosine", progress=False)
    saved = json.loads((out / "pretraining.json").read_text())
    horizons = saved["fitted_horizons"]
    assert saved["time_budget"] == 4.0 and horizons and horizons[0][0] >= CALIBRATION_STEPS
    assert all(step < end < 10**6 for step, end in horizons)
    assert saved["settings"]["max_steps"] <= horizons[-1][1]  # the fitted end, or the budget itself
    untimed = pretrain(tmp_path / "out2", tmp_path / "work2", init=tmp_path / "init", records=8, batch_size=2,
                       max_steps=2, warmup_steps=0, progress=False)
    assert not {"time_budget", "fitted_horizons"} & json.loads((untimed / "pretraining.json").read_text()).keys()


_SUMFRONT = re.compile(r"Put (?:max\(return\[(\d)\], )?array\[(\d)\] \+ return\[(\d)\]\)? in front of return\.\n"
                       + ANSWER + "$")


@settings(max_examples=300, deadline=None)
@given(INDEX, st.integers(min_value=0, max_value=5))
def test_sumfront_records_put_one_sum_of_two_small_items_in_front_of_the_returned_list(index, seed):
    record, lists, rest = _numbers_record(index, seed, "sumfront")
    assert len(lists) == 1 and rest.startswith(CALL) and all(-9 <= item <= 9 for item in lists[0])
    returned = _returned(rest)
    mx, a, b = _SUMFRONT.search(rest).groups()
    value = lists[0][int(a)] + returned[int(b)]
    if mx is not None:
        value = max(value, returned[int(mx)])
    assert record["output"] == "[" + ", ".join(str(v) for v in [value, *returned]) + "]"


def test_widening_to_numbers_keeps_what_the_model_computes_on_characters(tmp_path, tiny_model_dir):
    from retune.models.pretraining import widen_to_numbers
    from retune.models.tokenizer import NUMBER_TOKENS, build_tokenizer

    model = _tiny_init(tiny_model_dir, tmp_path / "init")
    out = widen_to_numbers(tmp_path / "init", tmp_path / "widened")
    widened = AutoModelForCausalLM.from_pretrained(out)
    numbers = build_tokenizer(numbers=True)
    assert widened.config.vocab_size == len(numbers) == 100 + len(NUMBER_TOKENS)
    ids = torch.tensor([build_tokenizer()("What is the parity of [1, 0]?\nSolution: ")["input_ids"]])
    with torch.no_grad():  # the old tokens' logits unchanged (the default model's position ids, as it runs)
        assert torch.allclose(model(ids).logits, widened(ids).logits[..., :100], atol=1e-5)
    rows = widened.get_input_embeddings().weight
    char = build_tokenizer().convert_tokens_to_ids
    assert torch.allclose(rows[numbers.convert_tokens_to_ids("-37")],
                          model.get_input_embeddings().weight[[char("-"), char("3"), char("7")]].mean(0))
    with pytest.raises(ValueError, match="not a model of the character tokenizer"):
        widen_to_numbers(out, tmp_path / "again")


def test_pretraining_continues_a_model_over_the_numbers_tokenizer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from retune.models.pretraining import pretrain

    _tiny_init(tiny_model_dir, tmp_path / "init")
    with pytest.raises(ValueError, match="give init"):
        pretrain(tmp_path / "out", tmp_path / "work", numbers=True)
    out = pretrain(tmp_path / "out", tmp_path / "work", init=tmp_path / "init", numbers=True, records=40,
                   batch_size=4, max_steps=2, warmup_steps=0, edits={"sumfront": 1}, progress=False)
    saved = json.loads((out / "pretraining.json").read_text())
    assert saved["tokenizer"] == "numbers" and saved["init"] == {"model": str(tmp_path / "init")}
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == len(tokenizer) == 289
    assert tokenizer.tokenize("Return: [12, -3]")[-5:] == ["12", ",", " ", "-3", "]"]
