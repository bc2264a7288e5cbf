"""The training engine: masking, batching, the loop, saving, LoRA, resuming after SIGKILL, CLI errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from retune.core.errors import RetuneError
from retune.engines.training import TrainConfig, train
from retune.engines.training.checkpoint import STATE_FILE, latest_checkpoint
from retune.engines.training.command import train_command
from retune.engines.training.data import IGNORE_INDEX, collate, encode_records, epoch_batches
from retune.engines.training.focus import Focus, example_hardness
from retune.engines.training.trainer import (BUDGET_MARGIN, CALIBRATION_STEPS, FIT_QUANTUM, REPLAY_SEED, _example_loss,
                                             _focal, _token_losses,
                                             fit_horizon, make_scheduler, training_summary)
from retune.models import build_default_model, build_tokenizer
from retune.models import pretraining
from retune.models.pretraining import PRETRAINING_FILE

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def parity_records(max_length: int = 6) -> list[dict]:
    """Hand-made Re-Tuning parity records (calls, combines and base cases) for lists up to ``max_length``."""
    records = []
    for length in range(1, max_length + 1):
        for code in range(min(2**length, 12)):
            bits = [(code >> i) & 1 for i in range(length)]
            problem = f"What is the parity of {bits}?"
            answer = str(sum(bits) % 2)
            if length == 1:
                records.append({"input": f"{problem}\nSolution: ", "output": answer, "length": 1, "task": "parity"})
                continue
            call = f"What is the parity of {bits[1:]}?"
            records.append({"input": f"{problem}\nSolution: ", "output": f"Call: {call}\n", "length": length,
                            "task": "parity"})
            records.append({"input": f"{problem}\nSolution: Call: {call}\nReturn: {sum(bits[1:]) % 2}\nAnswer: ",
                            "output": answer, "length": length, "task": "parity"})
    return records


def tiny_config(tmp_path: Path, model_dir: Path, **overrides) -> TrainConfig:
    settings = {"out": tmp_path / "run", "model": str(model_dir), "finetune": "full", "batch_size": 8,
                "lr": 1e-2, "max_steps": 4, "progress": False, "balance_lengths": False}  # records as given
    return TrainConfig(**{**settings, **overrides})


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "training_log.jsonl").read_text().splitlines()]


# ---- data -----------------------------------------------------------------------------------------------


def test_prompt_is_masked_and_output_plus_eos_supervised():
    tokenizer = build_tokenizer()
    records = [{"input": "What is the parity of [1, 0]?\nSolution: ", "output": "Call: What is the parity of [0]?\n"},
               {"input": "What is the parity of [1]?\nSolution: ", "output": "1"}]
    examples, dropped = encode_records(records, tokenizer, max_length=2048)
    assert dropped == []
    batch = collate(examples, tokenizer.pad_token_id)
    for row, record in enumerate(records):
        n_prompt, n_output = len(record["input"]), len(record["output"]) + 1
        labels, ids = batch["labels"][row].tolist(), batch["input_ids"][row].tolist()
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert labels[n_prompt : n_prompt + n_output] == ids[n_prompt : n_prompt + n_output]
        assert tokenizer.decode(ids[n_prompt : n_prompt + n_output - 1]) == record["output"]
        assert ids[n_prompt + n_output - 1] == tokenizer.eos_token_id
        assert set(labels[n_prompt + n_output :]) <= {IGNORE_INDEX}  # right padding is never supervised
        assert batch["attention_mask"][row].sum().item() == n_prompt + n_output
    assert batch["attention_mask"][1, -1].item() == 0


def test_too_long_records_are_dropped():
    tokenizer = build_tokenizer()
    records = [{"input": "ab", "output": "c"}, {"input": "a" * 20, "output": "b"}]
    examples, dropped = encode_records(records, tokenizer, max_length=10)
    assert [e.index for e in examples] == [0] and dropped == [1]


def test_batch_order_is_seeded_complete_and_length_grouped():
    tokenizer = build_tokenizer()
    examples, _ = encode_records(parity_records(8), tokenizer, 2048)
    lengths = [len(e.input_ids) for e in examples]
    first = epoch_batches(lengths, 8, 4, seed=3, epoch=0)
    assert first == epoch_batches(lengths, 8, 4, seed=3, epoch=0)
    assert first != epoch_batches(lengths, 8, 4, seed=3, epoch=1)
    assert sorted(i for batch in first for i in batch) == list(range(len(examples)))
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in first)
    assert 1 - sum(lengths) / padded < 0.10


def test_packed_calls_supervise_every_output_with_its_own_context_and_eos():
    tokenizer = build_tokenizer()
    records = parity_records(3)
    single, _ = encode_records(records, tokenizer, 2048)
    packed, dropped = encode_records(records, tokenizer, 2048, pack=len(records))
    assert dropped == [] and len(packed) < len(single)
    assert sorted(i for e in packed for i in e.record_indices) == list(range(len(records)))
    assert sum(e.n_supervised for e in packed) == sum(e.n_supervised for e in single)
    # every (context, next token) pair a record supervises is supervised in the packed example holding it
    for example in packed:
        labels = list(example.labels) if example.labels is not None else None
        for i in example.record_indices:
            alone = single[i]
            for t in range(alone.n_prompt, len(alone.input_ids)):
                assert example.input_ids[:t] == alone.input_ids[:t]
                target = labels[t] if labels is not None else example.input_ids[t]
                assert target == alone.input_ids[t]
    call = next(e for e in packed if e.n_records > 1)
    first = records[call.records[0]]
    assert call.records == (call.index, call.index + 1) and first["output"].startswith("Call: ")
    assert tokenizer.decode(call.input_ids).startswith(first["input"] + first["output"] + "Return: ")


def test_packed_examples_train_with_the_loss_of_the_separate_records():
    from retune.engines.training.trainer import _example_loss

    torch.manual_seed(0)
    model, tokenizer = build_default_model(**TINY)
    records = parity_records(3)
    single, _ = encode_records(records, tokenizer, 2048)
    packed, _ = encode_records(records, tokenizer, 2048, pack=len(records))
    with torch.no_grad():
        losses = []
        for examples in (single, packed):
            batch = collate(examples, tokenizer.pad_token_id)
            labels = batch.pop("labels")
            logits = model(**batch).logits
            token = model(**batch, labels=labels).loss.item()
            losses.append((token, _example_loss(logits, labels, len(records)).item()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_packing_pairs_copies_one_to_one_and_leaves_replay_and_odd_records_alone():
    tokenizer = build_tokenizer()
    call = {"input": "P\nSolution: ", "output": "Call: Q\n"}
    resume = {"input": "P\nSolution: Call: Q\nReturn: 1\nAnswer: ", "output": "0"}
    other = {"input": "R\nSolution: Call: Q\nReturn: 1\nAnswer: ", "output": "1"}  # no call record: alone
    records = [call, resume, call, resume, other, call, resume]
    examples, _ = encode_records(records, tokenizer, 2048, pack=5)  # the last two: replayed, never packed
    assert [e.record_indices for e in examples] == [(0, 1), (2, 3), (4,), (5,), (6,)]
    # a packed example is as long as its last record: where that is too long, the call trains alone
    short, dropped = encode_records(records[:2], tokenizer, len(call["input"]) + 12, pack=2)
    assert [e.record_indices for e in short] == [(0,)] and dropped == [1]


def test_pack_calls_trains_fewer_examples_on_the_same_records(tmp_path, tiny_model_dir):
    records = parity_records(4)
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=2, pack_calls=True), records)
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["by_task"] == {"parity": len(records)} and summary["examples"] < len(records)
    assert summary["packed_records"] == 2 * (len(records) - summary["examples"])
    log = read_log(run_dir)
    assert len(log) == 2 and all(entry["loss"] > 0 for entry in log)


# ---- the loop -------------------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_the_run_dir(tmp_path, tiny_model_dir):
    records = parity_records(2)[:8]  # one fixed batch
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=25, save_every=10), records)
    log = read_log(run_dir)
    assert [entry["step"] for entry in log] == list(range(1, 26))
    assert all(sorted(entry["batches"][0]) == list(range(8)) for entry in log)
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    assert {"loss", "lr", "tokens_per_s", "padding_tokens", "supervised_tokens"} <= set(log[0])

    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["max_steps"] == 25 and saved["finetune"] == "full"
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["records"] == 8 and summary["by_task"] == {"parity": 8}
    assert summary["max_chars"] == max(len(r["input"]) + len(r["output"]) for r in records)
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["step-20", "step-25"]


def test_saved_model_loads_with_plain_transformers_and_matches_the_checkpoint(tmp_path, tiny_model_dir):
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=3), parity_records(3))
    model = AutoModelForCausalLM.from_pretrained(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    from_checkpoint = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    from_checkpoint.load_state_dict(torch.load(latest_checkpoint(run_dir) / "weights.pt"))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tokenizer("What is the parity of [1, 1]?\nSolution: ", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
        assert torch.equal(logits, from_checkpoint(ids).logits)
        assert not torch.allclose(logits, base(ids).logits)


def test_time_budget_ends_the_run_and_the_model_is_saved(tmp_path, tiny_model_dir):
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=None, time_budget=1.0), parity_records(6))
    log = read_log(run_dir)
    assert log and log[-1]["elapsed_s"] >= 1.0
    assert (run_dir / "model.safetensors").is_file()
    assert latest_checkpoint(run_dir).name == f"step-{log[-1]['step']}"


def test_fit_horizon_ends_the_schedule_at_the_step_that_fits_the_budget():
    # 100 steps in 30 s, 20 s for the last 100: 3,900 more would take 780 s of a 600 s budget
    fits = 100 + int((600 * BUDGET_MARGIN - 30) / 0.2)
    assert fit_horizon(100, 4000, 30.0, 0.2, 600.0) == fits - fits % FIT_QUANTUM
    assert fit_horizon(100, 4000, 30.0, 0.1, 600.0) == 4000  # 3,900 x 0.1 s fit
    assert fit_horizon(100, 4000, 599.0, 0.2, 600.0) == 101  # no time left: stop at the next step


def test_cosine_schedule_is_transformers_cosine_with_warmup(tmp_path):
    from transformers import get_cosine_schedule_with_warmup

    config = TrainConfig(out=tmp_path, model="default", max_steps=60)  # cosine, 6 warmup steps
    optimizers = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0) for _ in range(2)]
    ours = make_scheduler(optimizers[0], config, 60)
    theirs = get_cosine_schedule_with_warmup(optimizers[1], 6, 60)
    for _ in range(60):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), abs=1e-12)
        for optimizer, scheduler in zip(optimizers, (ours, theirs)):
            optimizer.step()
            scheduler.step()


def test_cosine_schedule_under_a_time_budget_decays_within_it_and_resume_keeps_the_fit(tmp_path, tiny_model_dir):
    config = tiny_config(tmp_path, tiny_model_dir, scheduler="cosine", warmup_steps=0, max_steps=10**6,
                         time_budget=6.0, lr=1e-3, save_every=10**6)
    run_dir = train(config, parity_records(4))
    log = read_log(run_dir)
    fit = [entry for entry in log if "fitted_steps" in entry]  # the first fit, then any refit that moved it
    assert fit and fit[0]["step"] >= CALIBRATION_STEPS
    fitted = fit[-1]["fitted_steps"]
    assert fit[0]["step"] < fitted < 10**6
    assert log[-1]["step"] <= fitted  # the fitted end, or the budget itself when steps got slower
    assert log[-1]["lr"] < 0.5 * 1e-3  # decayed, not cut off at the top
    state = json.loads((latest_checkpoint(run_dir) / STATE_FILE).read_text())
    assert state["fitted_steps"] == fitted
    assert training_summary(run_dir) == {"steps": log[-1]["step"], "seconds": round(log[-1]["elapsed_s"], 1),
                                         "fitted_steps": fitted}
    if log[-1]["step"] == fitted:  # resuming a run that reached its fitted end trains no further step
        train(config.model_copy(update={"resume": True}), parity_records(4))
        assert read_log(run_dir)[-1]["step"] == fitted


def test_a_run_that_gets_slower_moves_its_fitted_horizon_earlier(tmp_path, tiny_model_dir, monkeypatch):
    from retune.engines.training import trainer

    update = trainer._Progress.update

    def slow_after_step_60(self, step, *args):  # the machine slows down once the schedule is fitted
        if step > 60:
            time.sleep(0.1)
        return update(self, step, *args)

    monkeypatch.setattr(trainer._Progress, "update", slow_after_step_60)
    monkeypatch.setattr(trainer, "REFIT_EVERY", 20)
    config = tiny_config(tmp_path, tiny_model_dir, scheduler="cosine", warmup_steps=0, max_steps=10**6,
                         time_budget=8.0, lr=1e-3, save_every=10**6)
    log = read_log(train(config, parity_records(4)))
    fits = [(entry["step"], entry["fitted_steps"]) for entry in log if "fitted_steps" in entry]
    before = [fit for step, fit in fits if step <= 60]  # refits on the fast steps may move either way
    after = [fit for step, fit in fits if step > 60]
    assert before and after and after == sorted(after, reverse=True) and after[-1] < before[-1]
    assert log[-1]["elapsed_s"] < 8.0 + 1.0 and log[-1]["step"] <= after[-1]


def test_lora_trains_only_the_adapter_and_reloads(tmp_path):
    base_dir = tmp_path / "base"
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, **TINY))
    base.save_pretrained(base_dir)
    tokenizer.pad_token = None  # like many base models: training pads with EOS
    tokenizer.save_pretrained(base_dir)

    config = tiny_config(tmp_path, base_dir, finetune="auto", lora_r=4, lora_alpha=8, lr=5e-2, max_steps=3)
    assert config.finetune == "lora"
    run_dir = train(config, parity_records(3))
    trained = torch.load(latest_checkpoint(run_dir) / "weights.pt")
    assert trained and all("lora_" in name for name in trained)
    assert {"q_proj", "k_proj", "v_proj", "o_proj"} == {n.split(".")[-4] for n in trained}

    assert AutoTokenizer.from_pretrained(run_dir).pad_token == tokenizer.eos_token
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    merged = AutoModelForCausalLM.from_pretrained(run_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run_dir / "adapter")
    merged_weights, base_weights = merged.state_dict(), base.state_dict()
    untouched, adapted = "model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.v_proj.weight"
    assert torch.equal(merged_weights[untouched], base_weights[untouched])
    assert not torch.equal(merged_weights[adapted], base_weights[adapted])
    ids = torch.tensor([tokenizer("What is the parity of [1]?\nSolution: ")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, with_adapter(ids).logits, atol=1e-5)


def test_auto_settings_the_default_models_recipe_or_the_usual_ones(tmp_path, tiny_model_dir):
    default = TrainConfig(out=tmp_path / "a", model="default", max_steps=2500)
    assert (default.finetune, default.lora_targets, default.lr) == ("lora", ["gate_proj", "up_proj", "down_proj"], 1.5e-3)
    assert (default.scheduler, default.warmup_steps, default.loss_normalization, default.replay) == (
        "cosine", 100, "token", 0.05)
    assert (default.lora_dropout, default.replay_sets, default.replay_min_length) == (0.05, 1, 0)
    assert default.replay_edits == {"smaller": 4, "grow": 2, "compare": 2, "firsts": 2}  # no copy, no rewrite
    budget_only = TrainConfig(out=tmp_path / "a2", model="default", time_budget=60)
    assert (budget_only.scheduler, budget_only.warmup_steps) == ("constant", 0)  # no horizon for a cosine
    full = TrainConfig(out=tmp_path / "a3", model="default", finetune="full", max_steps=50)
    assert (full.lr, full.scheduler, full.warmup_steps) == (1e-3, "cosine", 5)
    scratch = TrainConfig(out=tmp_path / "b", model="default-scratch", max_steps=50)
    assert (scratch.finetune, scratch.lr, scratch.scheduler, scratch.warmup_steps) == ("full", 1e-3, "constant", 0)
    assert (scratch.loss_normalization, scratch.replay) == ("example", 0.0)
    directory = TrainConfig(out=tmp_path / "c", model=str(tiny_model_dir), max_steps=50)
    assert (directory.finetune, directory.lr, directory.scheduler, directory.warmup_steps) == ("lora", 2e-4, "constant", 0)
    assert directory.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (directory.loss_normalization, directory.replay, directory.replay_edits) == ("example", 0.0, None)
    pretrained = tmp_path / "pretrained"  # a directory retune.models.pretraining wrote: the default model's recipe
    shutil.copytree(tiny_model_dir, pretrained)
    (pretrained / PRETRAINING_FILE).write_text("{}")
    ours = TrainConfig(out=tmp_path / "c2", model=str(pretrained), max_steps=2500)
    assert (ours.finetune, ours.lora_targets, ours.lr, ours.scheduler, ours.warmup_steps) == (
        "lora", ["gate_proj", "up_proj", "down_proj"], 1.5e-3, "cosine", 100)
    assert (ours.loss_normalization, ours.replay, ours.replay_edits) == ("token", 0.05, default.replay_edits)
    assert TrainConfig(out=tmp_path / "d", model="default", lora_targets="q_proj").lora_targets == ["q_proj"]
    chosen = TrainConfig(out=tmp_path / "e", model="default", max_steps=50, scheduler="constant", warmup_steps=0,
                         loss_normalization="example", replay=0, lr=1e-4)
    assert (chosen.scheduler, chosen.warmup_steps, chosen.loss_normalization, chosen.replay, chosen.lr) == (
        "constant", 0, "example", 0.0, 1e-4)  # what is given is kept
    assert TrainConfig(out=tmp_path / "f", model="default", replay_edits="copy=1").replay_edits == {"copy": 1.0}


def test_full_finetuning_of_named_parameters_leaves_the_rest_untouched(tmp_path, tiny_model_dir):
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, finetune="full", trainable="mlp", lr=5e-2, max_steps=3),
                    parity_records(3))
    trained = torch.load(latest_checkpoint(run_dir) / "weights.pt")
    assert trained and all(".mlp." in name for name in trained)
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert all(torch.equal(before[name], after[name]) for name in before if ".mlp." not in name)
    assert any(not torch.equal(before[name], after[name]) for name in before if ".mlp." in name)
    with pytest.raises(RetuneError, match="no parameter name contains any of nothing_here"):
        train(tiny_config(tmp_path / "none", tiny_model_dir, finetune="full", trainable="nothing_here", max_steps=1),
              parity_records(2))


def test_unmerged_lora_run_dir_loads_as_base_plus_adapter(tmp_path, tiny_model_dir):
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, finetune="lora", lora_r=2, merge_lora=False, max_steps=2),
                    parity_records(2))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(run_dir)
    assert any("lora_" in name for name, _ in model.named_parameters())


# ---- resuming -------------------------------------------------------------------------------------------

KILLABLE_RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from retune.engines.training import TrainConfig, train, trainer

    config, records, pause_at = TrainConfig(**json.loads(sys.argv[1])), json.loads(sys.argv[2]), int(sys.argv[3])
    update = trainer._Progress.update

    def pausing_update(self, step, *args):
        update(self, step, *args)
        if step == pause_at:  # signal the parent, then wait to be killed
            (config.out / "paused").write_text(str(step))
            time.sleep(120)

    trainer._Progress.update = pausing_update
    train(config, records)
    """
)


def test_a_run_killed_mid_way_resumes_to_the_same_steps_and_data_order(tmp_path, tiny_model_dir):
    records = parity_records(5)
    settings = {"batch_size": 4, "save_every": 3, "max_steps": 8, "lr": 1e-2}
    reference = train(tiny_config(tmp_path / "ref", tiny_model_dir, **settings), records)

    config = tiny_config(tmp_path / "killed", tiny_model_dir, **settings)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_RUN, config.model_dump_json(), json.dumps(records), "5"],
        cwd=Path(__file__).parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (config.out / "paused").exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the training subprocess never reached step 5"
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert latest_checkpoint(config.out).name == "step-3"
    assert len(read_log(config.out)) == 5  # steps 4 and 5 were lost with the process
    (config.out / "checkpoints" / ".tmp-step-6").mkdir()  # a checkpoint cut short by the kill

    with pytest.raises(RetuneError, match="--resume"):
        train(config, records)
    resumed = train(config.model_copy(update={"resume": True}), records)

    expected, got = read_log(reference), read_log(resumed)
    assert [e["step"] for e in got] == list(range(1, 9))
    assert [e["batches"] for e in got] == [e["batches"] for e in expected]
    assert [e["loss"] for e in got] == pytest.approx([e["loss"] for e in expected], rel=1e-4)
    assert not (resumed / "checkpoints" / ".tmp-step-6").exists()
    final, uninterrupted = load_file(resumed / "model.safetensors"), load_file(reference / "model.safetensors")
    assert all(torch.allclose(final[name], uninterrupted[name], atol=1e-5) for name in final)


def test_resume_refuses_changed_settings(tmp_path, tiny_model_dir):
    config = tiny_config(tmp_path, tiny_model_dir, max_steps=1)
    train(config, parity_records(2))
    with pytest.raises(RetuneError, match="changed settings: lr"):
        train(config.model_copy(update={"resume": True, "lr": 0.5}), parity_records(2))
    with pytest.raises(RetuneError, match="training data differ"):
        train(config.model_copy(update={"resume": True}), parity_records(3))


def test_two_processes_train_like_one_with_the_same_effective_batch(tmp_path, tiny_model_dir):
    """Data-parallel training under accelerate (2 CPU processes, gloo) equals 1 process accumulating 2x."""
    records = parity_records(5)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    script = tmp_path / "run.py"
    script.write_text("import sys\nfrom retune.engines.training.command import train_command\ntrain_command(sys.argv[1:])\n")
    out = tmp_path / "two"
    args = ["--data", str(data), "--model", str(tiny_model_dir), "--full", "--lr", "0.01", "--batch-size", "4",
            "--grad-accum", "2", "--max-steps", "4", "--save-every", "2", "--no-progress", "--out", str(out)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    done = subprocess.run([*launch, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    one = train(tiny_config(tmp_path / "one", tiny_model_dir, data=data, batch_size=4, grad_accum=4, max_steps=4,
                            balance_lengths=True))

    two_log, one_log = read_log(out), read_log(one)
    assert [e["batches"] for e in two_log] == [e["batches"] for e in one_log]
    assert len(two_log[0]["batches"]) == 4
    assert [e["loss"] for e in two_log] == pytest.approx([e["loss"] for e in one_log], rel=1e-5)
    assert {p.name for p in latest_checkpoint(out).iterdir()} >= {"rng-0.pt", "rng-1.pt"}
    two_weights, one_weights = load_file(out / "model.safetensors"), load_file(one / "model.safetensors")
    assert all(torch.allclose(two_weights[name], one_weights[name], atol=1e-6) for name in one_weights)


# ---- the command ----------------------------------------------------------------------------------------


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``retune train`` as the CLI's main() does: a RetuneError becomes one line and exit status 2."""
    result = CliRunner().invoke(train_command, args, standalone_mode=False)
    if isinstance(result.exception, RetuneError):
        return 2, f"error: {result.exception}"
    if isinstance(result.exception, click.ClickException):
        return 2, f"error: {result.exception.format_message()}"
    assert result.exception is None, result.exception
    return 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "parity", "--lengths", "5-2"], "bad length range '5-2'"),
        (["--task", "parity", "--lengths", "a-b"], "bad length range 'a-b'"),
        (["--task", "parity", "--model", "no/such/dir"], "model directory 'no/such/dir' does not exist"),
        (["--data", "EMPTY"], "holds no records"),
        (["--task", "parity", "--time-budget", "soon"], "bad duration 'soon'"),
        (["--task", "parity", "--batch-size", "0"], "batch_size"),
        (["--task", "parity", "--replay-sets", "0"], "replay_sets"),
        (["--task", "parity", "--replay-min-length", "65"], "replay_min_length"),
        (["--task", "parity", "--replay-edits", "copy=x"], "bad pretraining edits 'copy=x'"),
        (["--task", "parity", "--replay-edits", "teleport=1"], "bad pretraining edits 'teleport=1'"),
        ([], "no training data"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(tmp_path, args, message):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    args = [str(empty) if a == "EMPTY" else a for a in args]
    status, output = run_cli([*args, "--out", str(tmp_path / "run"), "--no-progress"])
    assert status == 2
    assert message in output and "\n" not in output
    assert not (tmp_path / "run").exists()  # a run that never started leaves no run dir behind


def test_cli_flags_override_the_config_file(tmp_path, tiny_model_dir):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in parity_records(2)))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model": str(tiny_model_dir), "data": str(data), "max_steps": 50, "lr": 0.01}))
    out = tmp_path / "run"
    status, _ = run_cli(["--config", str(config_file), "--max-steps", "2", "--full", "--out", str(out),
                         "--no-progress", "--loss-normalization", "token", "--no-balance-lengths", "--replay", "0.5",
                         "--position-scheme", "words"])
    assert status == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["max_steps"], saved["lr"], saved["finetune"], saved["progress"]) == (2, 0.01, "full", False)
    assert (saved["loss_normalization"], saved["balance_lengths"], saved["replay"], saved["position_scheme"]) == (
        "token", False, 0.5, "words")
    assert len(read_log(out)) == 2

    status, output = run_cli(["--out", str(out), "--resume", "--max-steps", "3", "--no-progress"])
    assert status == 0, output
    assert [e["step"] for e in read_log(out)] == [1, 2, 3]
    assert output.strip().splitlines()[-1] == f"retune train: model saved in {out}"  # where the model went


def test_retune_cli_train_reports_bad_input_as_one_line(tmp_path):
    from retune.cli import cli

    if "train" not in cli.commands:
        pytest.skip("retune.cli does not register the train command yet")
    done = subprocess.run(
        [sys.executable, "-m", "retune.cli", "train", "--task", "parity", "--lengths", "5-2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "bad length range '5-2'" in done.stderr


def test_replay_adds_pretraining_records_to_the_task_records(tmp_path, tiny_model_dir):
    records = parity_records(4)
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=1, replay=0.5), records)
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["by_task"] == {"parity": len(records), "pretraining": round(0.5 * len(records))}


def test_each_epoch_replays_its_own_set_of_pretraining_records(tmp_path, tiny_model_dir):
    records = parity_records(4)
    n, share = len(records), round(0.5 * len(records))
    config = tiny_config(tmp_path, tiny_model_dir, max_steps=None, epochs=3, replay=0.5, replay_sets=3,
                         replay_min_length=30)
    run_dir = train(config, records)
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["by_task"] == {"parity": n, "pretraining": 3 * share}
    replayed_lengths = {int(k): v for k, v in summary["by_length"].items() if int(k) > 4}  # parity's are 1-4
    assert sum(replayed_lengths.values()) == 3 * share and min(replayed_lengths) >= 30  # long records only
    log = read_log(run_dir)
    per_epoch = len(log) // 3
    assert per_epoch and len(log) == 3 * per_epoch
    for epoch in range(3):
        seen = {i for entry in log[epoch * per_epoch:(epoch + 1) * per_epoch] for batch in entry["batches"]
                for i in batch}
        assert len([i for i in seen if i < n]) > 0.8 * n  # the task's records every epoch (a last part batch aside)
        replayed = {i for i in seen if i >= n}
        assert replayed and replayed <= set(range(n + epoch * share, n + (epoch + 1) * share))


def test_replay_draws_only_the_edits_it_is_given(tmp_path, tiny_model_dir, monkeypatch):
    drawn = []

    def spy(*args, **kwargs):
        records = real(*args, **kwargs)
        drawn.extend(records)
        return records

    real = pretraining.pretraining_records
    monkeypatch.setattr(pretraining, "pretraining_records", spy)
    records = parity_records(4)
    train(tiny_config(tmp_path, tiny_model_dir, max_steps=1, replay=1.0, replay_edits="smaller=4,grow=1"), records)
    assert len(drawn) == len(records) and {r["method"] for r in drawn} == {"smaller", "grow"}
    assert drawn == real(len(records), seed=REPLAY_SEED, edits={"smaller": 4, "grow": 1})
    config = tiny_config(tmp_path, tiny_model_dir, replay_edits={"smaller": 1})
    assert config.replay_edits == {"smaller": 1.0} and tiny_config(tmp_path, tiny_model_dir).replay_edits is None


def test_a_record_dropped_for_its_length_leaves_the_rest_to_train(tmp_path, tiny_model_dir):
    records = parity_records(4)
    records.insert(0, {"input": "x" * 300, "output": "y", "task": "parity", "length": 9})  # dropped: too long
    run_dir = train(tiny_config(tmp_path, tiny_model_dir, max_steps=2, max_length=200), records)
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["dropped_too_long"] == 1 and summary["examples"] == len(records) - 1
    assert len(read_log(run_dir)) == 2


def test_focus_draws_by_hardness_among_examples_that_fit_and_none_before_any_was_trained():
    focus = Focus([10, 10, 10, 10, 30], per_batch=5, seed=3)
    assert focus.draw(step=0, widths=[40, 40]) == [[], []]
    focus.update([0, 1, 2, 3, 4], torch.tensor([0.0, 0.0, 10.0, 0.01, 20.0]))
    draws = focus.draw(step=7, widths=[12] * 40)
    assert [len(batch) for batch in draws] == [5] * 40
    drawn = [i for batch in draws for i in batch]
    assert set(drawn) <= {2, 3} and drawn.count(2) > 0.95 * len(drawn)  # never hardness 0, never longer than 12
    assert draws == focus.draw(step=7, widths=[12] * 40)
    assert 4 in {i for batch in focus.draw(step=7, widths=[30] * 4) for i in batch}  # it fits a wider batch
    assert focus.draw(step=7, widths=[5]) == [[]]  # nothing trained fits
    focus.update([2, 3], torch.tensor([1.0, 1.0]))
    assert focus.draw(step=7, widths=[12] * 4) != focus.draw(step=8, widths=[12] * 4)  # each step draws anew
    focus.update([2, 2], torch.tensor([5.0, 0.0]))  # drawn twice in a step: the last value counts
    assert {i for batch in focus.draw(step=9, widths=[12] * 10) for i in batch} == {3}
    chosen = Focus([10, 10], per_batch=5, seed=3, eligible=[False, True])  # e.g. a replayed record and a task's
    chosen.update([0, 1], torch.tensor([9.0, 0.1]))
    assert chosen.draw(step=1, widths=[10] * 4) == [[1] * 5] * 4


def test_example_hardness_is_the_largest_supervised_token_loss_of_a_wrong_example(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [{"input": "What is the parity of [1, 0]?\nSolution: ", "output": "Call: x\n"},
               {"input": "ab\nSolution: ", "output": "1"}]
    examples, _ = encode_records(records, tokenizer, 512)
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    supervised = labels[:, 1:] != IGNORE_INDEX
    token_loss = _token_losses(logits, labels)
    wrong = logits[:, :-1].argmax(dim=-1) != labels[:, 1:]
    assert bool(wrong[0][supervised[0]].any())  # an untrained model gets the first record wrong
    got = example_hardness(token_loss, supervised, wrong)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        losses = [torch.nn.functional.cross_entropy(logits[row, t - 1], labels[row, t]).item()
                  for t in range(example.n_prompt, n)]
        assert got[row].item() == pytest.approx(max(losses), rel=1e-5)
    right = torch.zeros_like(wrong)  # as if greedy decoding had written every supervised token
    right[:, 0] = True  # a wrong prediction outside the supervised tokens does not count
    assert example_hardness(token_loss, supervised, right).tolist() == [0.0, 0.0]


def test_a_focused_run_adds_hard_examples_and_resumes_to_the_same_draws(tmp_path, tiny_model_dir):
    records = parity_records(5)
    settings = {"batch_size": 4, "focus": 3, "save_every": 4, "max_steps": 8, "replay": 0.3}
    reference = train(tiny_config(tmp_path / "ref", tiny_model_dir, **settings), records)
    log = read_log(reference)
    replayed = pretraining.pretraining_records(round(0.3 * len(records)), seed=REPLAY_SEED)  # as the trainer adds
    examples, _ = encode_records([*records, *replayed], AutoTokenizer.from_pretrained(tiny_model_dir), 512)
    length = {e.index: len(e.input_ids) for e in examples}
    trained = set()
    for entry in log:
        batch = entry["batches"][0]
        width = max(length[i] for i in batch[:4])
        fits = any(length[i] <= width for i in trained if i < len(records))
        assert len(batch) == (7 if fits else 4)  # 3 extras whenever an example trained before fits the batch
        assert set(batch[4:]) <= trained and all(length[i] <= width for i in batch[4:])  # and so adds no padding
        assert all(i < len(records) for i in batch[4:])  # a task's record, never a replayed one
        trained |= set(batch)
    assert sum(len(e["batches"][0]) == 7 for e in log) >= 3
    assert (latest_checkpoint(reference) / "hardness.pt").is_file()

    part = train(tiny_config(tmp_path / "part", tiny_model_dir, **{**settings, "max_steps": 4}), records)
    resumed = train(tiny_config(tmp_path / "part", tiny_model_dir, **settings, resume=True), records)
    assert resumed == part
    got = read_log(resumed)
    assert [e["batches"] for e in got] == [e["batches"] for e in log]
    assert [e["loss"] for e in got] == pytest.approx([e["loss"] for e in log], rel=1e-4)


def test_focal_loss_weighs_each_token_by_the_probability_it_misses():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7) * 3
    labels = torch.randint(0, 7, (2, 5))
    labels[0, :2] = IGNORE_INDEX
    token_loss = _token_losses(logits, labels)
    assert torch.equal(_focal(token_loss, 0.0), token_loss)
    p = torch.softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])[..., 0]
    expected = -((1 - p) ** 2) * torch.log(p) * (labels[:, 1:] != IGNORE_INDEX)
    assert torch.allclose(_focal(token_loss, 2.0), expected, atol=1e-6)
    sure, unsure = torch.tensor([0.01]), torch.tensor([2.0])  # p = 0.99 and p = 0.14
    assert (_focal(sure, 2.0) / sure).item() < 1e-3 < 0.7 < (_focal(unsure, 2.0) / unsure).item()
    logits[1, 1, labels[1, 2]] = 200.0  # a supervised token the model is certain of: its loss is exactly 0
    for gamma in (0.5, 2.0):  # and the gradient stays finite (gamma < 1: the weight's derivative at 0 is infinite)
        leaf = logits.clone().requires_grad_(True)
        token_loss = _token_losses(leaf, labels)
        assert token_loss[1, 1].item() == 0
        _focal(token_loss, gamma).sum().backward()
        assert torch.isfinite(leaf.grad).all() and leaf.grad[0, :1].abs().sum() == 0


@pytest.mark.parametrize("normalization", ["token", "example"])
def test_a_focal_run_trains_on_the_focal_loss_of_its_batch(tmp_path, tiny_model_dir, normalization):
    records = parity_records(4)
    run = train(tiny_config(tmp_path, tiny_model_dir, focal=2.0, max_steps=1, batch_size=6,
                            loss_normalization=normalization), records)
    entry = read_log(run)[0]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples, _ = encode_records(records, AutoTokenizer.from_pretrained(tiny_model_dir), 2048)
    by_index = {e.index: e for e in examples}
    batch = collate([by_index[i] for i in entry["batches"][0]], model.config.pad_token_id)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    supervised = int((labels[:, 1:] != IGNORE_INDEX).sum())

    def loss(token_loss: torch.Tensor) -> float:
        return (token_loss.sum() / supervised if normalization == "token"
                else _example_loss(logits, labels, len(entry["batches"][0]), token_loss)).item()

    plain = loss(_token_losses(logits, labels))
    assert entry["loss"] == pytest.approx(loss(_focal(_token_losses(logits, labels), 2.0)), rel=1e-4)
    assert entry["loss"] < 0.99 * plain  # an untrained model (p ~ 1/100): every token weighs a little less


def test_a_run_without_progress_shows_no_loading_bar_when_called_as_a_library(tmp_path, tiny_model_dir, capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    train(tiny_config(tmp_path, tiny_model_dir, max_steps=1), parity_records(2))
    assert "Loading" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is back
