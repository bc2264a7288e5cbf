"""The batched model policy: same segments as one ``generate`` per context, whatever the batch size."""

from __future__ import annotations

import random

import pytest
import torch

from retune.core.data import generate_problems
from retune.core.errors import RetuneError
from retune.core.oracle import OraclePolicy
from retune.core.solver import Outcome, solve
from retune.engines.inference import GeneratePolicy, ModelPolicy, load_model, load_policy
from retune.models import build_default_model
from retune.plugins import get_registry

REGISTRY = get_registry()
PARITY = REGISTRY.get("parity")


def _tiny_model(scheme: str = "sequential", seed: int = 0):
    """A tiny random LLaMA over the char tokenizer; a wide init makes its logits peaked (few near-ties)."""
    torch.manual_seed(seed)
    return build_default_model(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               max_position_embeddings=512, initializer_range=0.2, retune_position_scheme=scheme)


@pytest.fixture(scope="module")
def tiny():
    """Sequential position ids, as ``generate`` gives them."""
    return _tiny_model()


def _schemes():
    try:
        from retune.models.positions import SCHEMES
    except ImportError:
        return ["sequential"]
    return list(SCHEMES)


@pytest.fixture(scope="module", params=_schemes())
def any_scheme(request):
    """The tiny model under every position scheme retune knows."""
    return _tiny_model(request.param)


def _contexts(n: int = 24, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "0123456789 +[],\nCallSoutinRe:?What is the parity of"
    out = ["What is the parity of [1, 0, 1]?\nSolution: ", "7 + 5\nSolution: ", "x"]
    out += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 70))) for _ in range(n - len(out))]
    return out


class Forced(ModelPolicy):
    """A policy whose model runs for real but whose tokens are forced: ``script(context)`` gives the ids
    (EOS follows them). Tokens the script does not cover come from the model (``None``: argmax)."""

    def __init__(self, *args, script, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = script

    def _next_tokens(self, logits, rows, produced):
        free = logits.argmax(-1).tolist()
        out = []
        for b, r in enumerate(rows):
            ids = self.script(self._rows[r])
            if ids is None:
                out.append(free[b])
            else:
                k = len(produced[r])
                out.append(ids[k] if k < len(ids) else self.eos_ids[0])
        return torch.tensor(out)


def _oracle_script(tokenizer, task, *, free_after_return: bool = False):
    oracle = OraclePolicy(task)

    def script(context):
        if free_after_return and "Return: " in context:
            return None
        return tokenizer(oracle([context])[0], add_special_tokens=False)["input_ids"]

    return script


# ---- equal to the authors' engine, and independent of batching ---------------------------------------
def test_batched_policy_writes_what_one_generate_per_context_writes(tiny):
    model, tokenizer = tiny
    contexts = _contexts()
    reference = GeneratePolicy(model, tokenizer, max_new_tokens=12)(contexts)
    assert len(set(reference)) > len(contexts) // 2  # the model writes varied text
    for batch_size in (1, 3, 64):
        policy = ModelPolicy(model, tokenizer, batch_size=batch_size, max_new_tokens=12)
        assert policy(contexts) == reference


def test_segments_do_not_depend_on_batch_size_padding_or_neighbours(any_scheme):
    model, tokenizer = any_scheme
    contexts = _contexts(40, seed=1)
    alone = [ModelPolicy(model, tokenizer, batch_size=1, max_new_tokens=20, cache_size=0)([c])[0] for c in contexts]
    for kwargs in ({"batch_size": 64}, {"batch_size": 7}, {"batch_size": 64, "max_batch_tokens": 300},
                   {"batch_size": 64, "fast_forward": False}):
        policy = ModelPolicy(model, tokenizer, max_new_tokens=20, **kwargs)
        assert policy(contexts) == alone
        assert policy(list(reversed(contexts))) == list(reversed(alone))


def test_results_through_the_solver_do_not_depend_on_batch_size(any_scheme):
    """Forced calls, free answers after each return: real recursion, then the model's own text."""
    model, tokenizer = any_scheme
    problems = [p for _, p in generate_problems(PARITY, (1, 6), 3, seed=3)]
    script = _oracle_script(tokenizer, PARITY, free_after_return=True)
    runs, prompt_tokens = {}, {}
    for batch_size, reuse in ((1, False), (64, False), (1, True), (5, True), (64, True)):
        policy = Forced(model, tokenizer, batch_size=batch_size, max_new_tokens=40, reuse_prefix=reuse,
                        script=script)
        solutions = solve(PARITY, problems, policy)
        runs[batch_size, reuse] = [s.model_dump_json() for s in solutions]
        prompt_tokens[reuse] = policy.stats.prompt_tokens
    first = runs[1, False]
    assert all(run == first for run in runs.values())
    assert prompt_tokens[True] < prompt_tokens[False]  # resumed contexts reused their prefix
    outcomes = {s.outcome for s in solve(PARITY, problems, Forced(model, tokenizer, max_new_tokens=40, script=script))}
    assert Outcome.MALFORMED in outcomes and len(outcomes) > 1  # the model's free text really decides


def test_a_perfectly_forced_model_solves_through_the_solver_with_prefix_reuse(tiny):
    model, tokenizer = tiny
    task = REGISTRY.get("addition")
    problems = [p for _, p in generate_problems(task, (1, 6), 3, seed=5)]
    for reuse in (False, True):
        policy = Forced(model, tokenizer, batch_size=8, max_new_tokens=40, reuse_prefix=reuse,
                        script=_oracle_script(tokenizer, task))
        solutions = solve(task, problems, policy)
        assert all(s.correct for s in solutions)
        if reuse:
            assert policy.stats.prompt_tokens < plain_tokens
        else:
            plain_tokens = policy.stats.prompt_tokens


# ---- decoding, stopping, caching --------------------------------------------------------------------
def test_segment_is_decoded_from_new_tokens_without_special_tokens(tiny):
    model, tokenizer = tiny
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    text_ids = tokenizer("Carry 1, Output 3", add_special_tokens=False)["input_ids"]
    policy = Forced(model, tokenizer, max_new_tokens=50, script=lambda c: [bos] + text_ids[:5] + [pad] + text_ids[5:])
    assert policy(["12 + 21\nSolution: "]) == ["Carry 1, Output 3"]
    assert policy.tokens_of("12 + 21\nSolution: ") == len(text_ids) + 3  # bos, pad and EOS count
    policy = Forced(model, tokenizer, max_new_tokens=4, script=lambda c: text_ids)
    assert policy(["x"]) == ["Carr"] and policy.stats.truncated == 1
    policy = Forced(model, tokenizer, max_new_tokens=50, script=lambda c: [])
    assert policy(["x", "y"]) == ["", ""]


def test_stop_at_call_ends_a_row_after_the_call_line(tiny):
    model, tokenizer = tiny
    ids = tokenizer("Call: What is the parity of [1]?\nmore text", add_special_tokens=False)["input_ids"]
    assert Forced(model, tokenizer, script=lambda c: ids)(["q"]) == ["Call: What is the parity of [1]?\nmore text"]
    policy = Forced(model, tokenizer, script=lambda c: ids, stop_at_call=True)
    assert policy(["q"]) == ["Call: What is the parity of [1]?\n"]
    assert policy.stats.truncated == 0
    # a newline that does not end a call line does not stop the row
    ids = tokenizer("Append max.\nAnswer: [1]", add_special_tokens=False)["input_ids"]
    assert Forced(model, tokenizer, script=lambda c: ids, stop_at_call=True)(["q"]) == ["Append max.\nAnswer: [1]"]


def test_identical_contexts_are_generated_once_and_cached_across_calls(tiny):
    model, tokenizer = tiny
    contexts = _contexts(10)
    policy = ModelPolicy(model, tokenizer, max_new_tokens=10)
    first = policy(contexts + contexts[:4])
    assert first[:10] == first[10:] + first[4:10] or first[10:] == first[:4]
    assert policy.stats.generated == 10 and policy.stats.duplicates == 4
    assert policy(contexts[::-1]) == first[:10][::-1]
    assert policy.stats.generated == 10 and policy.stats.cache_hits == 10
    uncached = ModelPolicy(model, tokenizer, max_new_tokens=10, cache_size=0)
    uncached(contexts)
    uncached(contexts)
    assert uncached.stats.generated == 20


def test_seeded_sampling_is_a_function_of_seed_and_context(tiny):
    model, tokenizer = tiny
    contexts = _contexts(12, seed=2)

    def sample(seed, batch_size, order=1):
        policy = ModelPolicy(model, tokenizer, do_sample=True, temperature=1.5, seed=seed, batch_size=batch_size,
                             max_new_tokens=15, cache_size=0)
        return policy(contexts[::order])[::order]

    a = sample(1, 64)
    assert a == sample(1, 1) == sample(1, 5, order=-1)
    assert a != sample(2, 64)
    assert a != ModelPolicy(model, tokenizer, max_new_tokens=15)(contexts)
    top1 = ModelPolicy(model, tokenizer, do_sample=True, top_k=1, seed=3, max_new_tokens=15)(contexts)
    assert top1 == ModelPolicy(model, tokenizer, max_new_tokens=15)(contexts)  # top-1 sampling is greedy


def test_bad_settings_are_one_line_errors(tiny):
    model, tokenizer = tiny
    for kwargs in ({"batch_size": 0}, {"max_new_tokens": 0}, {"do_sample": True, "temperature": 0}):
        with pytest.raises(RetuneError):
            ModelPolicy(model, tokenizer, **kwargs)
    with pytest.raises(RetuneError, match="does not exist"):
        load_policy("/nonexistent/run")


# ---- loading ----------------------------------------------------------------------------------------
def test_load_policy_from_a_saved_model_and_from_a_peft_adapter(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    contexts = _contexts(8, seed=4)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    expected = ModelPolicy(model, tokenizer, max_new_tokens=10)(contexts)
    assert load_policy(base, max_new_tokens=10)(contexts) == expected

    torch.manual_seed(1)
    fresh, _ = load_model(base)
    lora = get_peft_model(fresh, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    adapter = tmp_path / "adapter"
    lora.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    with_adapter = ModelPolicy(lora, tokenizer, max_new_tokens=10)(contexts)
    loaded = load_policy(adapter, max_new_tokens=10)
    assert type(loaded.model).__name__.startswith("Peft")
    assert loaded(contexts) == with_adapter
    assert with_adapter != expected  # the adapter changes the model


def test_generate_policy_counts_its_work(tiny):
    model, tokenizer = tiny
    policy = GeneratePolicy(model, tokenizer, max_new_tokens=5)
    out = policy(["abc", "abc"])
    assert out[0] == out[1] and policy.stats.generated == 2 and policy.stats.generated_tokens <= 10


def test_model_policy_outcomes_are_classified_by_the_solver(tiny):
    model, tokenizer = tiny
    problems = [p for _, p in generate_problems(PARITY, (1, 4), 3, seed=0)]
    solutions = solve(PARITY, problems, ModelPolicy(model, tokenizer, max_new_tokens=30))
    assert all(isinstance(s.outcome, Outcome) for s in solutions)


# ---- a model trained with its own position ids ---------------------------------------------------------
def test_a_model_with_hierarchical_positions_gets_them_at_inference(tiny):
    positions = pytest.importorskip("retune.models.positions")
    scheme_model, tokenizer = _tiny_model("hierarchical", seed=2)
    scheme_model.eval()
    contexts = _contexts(12, seed=6) + ["What is the parity of [1, 0]?\nSolution: Call: What is the parity of [0]?\n"
                                        "Return: 0\nAnswer: "]

    @torch.inference_mode()
    def naive(context, steps=10):  # no cache, position ids of the whole text recomputed at every token
        ids, out = tokenizer(context)["input_ids"], []
        for _ in range(steps):
            seq = ids + out
            pos = positions.position_ids(seq, "hierarchical", tokenizer=tokenizer)
            logits = scheme_model(input_ids=torch.tensor([seq]), position_ids=torch.tensor([pos])).logits[0, -1]
            token = int(logits.argmax())
            if token == tokenizer.eos_token_id:
                break
            out.append(token)
        return tokenizer.decode(out, skip_special_tokens=True)

    expected = [naive(c) for c in contexts]
    for batch_size in (1, 64):
        assert ModelPolicy(scheme_model, tokenizer, batch_size=batch_size, max_new_tokens=10)(contexts) == expected
    sequential = ModelPolicy(tiny[0], tiny[1], max_new_tokens=10)
    assert sequential._scheme == "sequential" and sequential(contexts) != expected
    with pytest.raises(RetuneError, match="position ids"):
        GeneratePolicy(scheme_model, tokenizer)


def test_the_lean_forward_is_checked_against_the_model_and_used_only_when_equal(tiny):
    model, tokenizer = tiny
    policy = ModelPolicy(model, tokenizer, max_new_tokens=5)
    policy(["abc"])
    assert policy._lean is True  # a plain LlamaForCausalLM: the lean copy gave the same bits
    assert ModelPolicy(model, tokenizer, fast_forward=False)._lean is False
    assert ModelPolicy(model, tokenizer, attn_implementation="sdpa")._lean is False
    model.set_attn_implementation("eager")


def test_the_cache_goes_by_the_name_the_forward_takes():
    """Older transformers call the KV cache ``past_key_values``; passing ``cache`` there would drop it."""
    from retune.engines.inference.policy import _cache_kwarg

    class Old:
        def forward(self, input_ids=None, past_key_values=None, **kwargs): ...

    class New:
        def forward(self, input_ids=None, cache=None, **kwargs): ...

    class Wrapped:  # as a peft model: its forward takes **kwargs, the base model's names the cache
        def forward(self, *args, **kwargs): ...

        def get_base_model(self):
            return New()

    assert _cache_kwarg(Old(), "kv") == {"past_key_values": "kv"}
    assert _cache_kwarg(New(), "kv") == {"cache": "kv"}
    assert _cache_kwarg(Wrapped(), "kv") == {"cache": "kv"}
