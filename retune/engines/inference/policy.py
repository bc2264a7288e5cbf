"""Model policies for the core solver: batched generation of the segment that follows each context.

:class:`ModelPolicy` turns a causal LM and its tokenizer into the solver's policy: given a batch of contexts it
returns, for each, the text the model writes up to EOS. It is written for throughput on small models, where
per-call overhead and re-encoding cost as much as the arithmetic. What it does, and what each measured (CPU,
1 thread, the 0.55M default model, 64 problems of 20-digit addition or 40-bit parity, tokens forced to the
reference so that the work is that of a perfectly trained model):

* its own greedy loop over a ``DynamicCache`` (no ``generate``): left-padded micro-batches of contexts sorted
  by length, each row stopping at EOS (finished rows leave the batch, and the padding no remaining row needs
  is cut off the cache). At batch 1 this loop alone is about 1.5x faster than ``generate``;
* identical contexts in one call are generated once, and a context already answered in an earlier call is
  answered from a cache (valid because generation is a deterministic function of the context: greedy, or
  sampled from a generator seeded by the context itself). Parity-40: 10% of contexts were duplicates;
* when a context's segment is a call, its key/value states are kept (within ``reuse_budget_mb``) until the
  context resumes with ``Return: ...``: then only the returned text is encoded. Encoding contexts was about
  half the forward time; keeping the states cut the tokens encoded from 177k to 97k (addition-20) and from
  457k to 272k (parity-40), and the solve time by 20-30%. Results are unchanged (the tests compare);
* the cache writes into preallocated buffers (``DynamicLayer`` concatenates at every step), the 4D masks are
  built directly, and a plain ``LlamaForCausalLM`` runs through a lean copy of its eager forward that is
  first checked to give the model's exact bits: together about a fifth of a decoding step;
* position ids and the attention mask are set per row, and attention runs in the ``eager`` implementation,
  whose masked scores become exact zeros: a row's tokens are the same whatever the batch size, the padding or
  its neighbours (fp32 on CPU; checked by the tests). Models trained with their own position ids
  (``retune_position_scheme`` in the config, :mod:`retune.models.positions`) get them from the text.

Segments are decoded from the ids the model produced (only the new ones, special tokens dropped), never by
cutting a decoded full text. :class:`GeneratePolicy` is the authors' engine (one ``generate`` per context,
batch 1, nothing cached), kept as a reference for tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import DynamicCache, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from retune.core import text
from retune.core.errors import RetuneError


PREFILL_SCORES_BYTES = 1 << 30  # a micro-batch is split before its prefill attention scores pass 1 GiB


@dataclass
class PolicyStats:
    """Counters of the work a policy did (cumulative; :meth:`ModelPolicy.reset_stats` clears them)."""

    calls: int = 0  # policy invocations
    contexts: int = 0  # contexts asked for
    cache_hits: int = 0  # answered from the cache of earlier calls
    duplicates: int = 0  # repeated within one call
    generated: int = 0  # contexts actually generated
    truncated: int = 0  # segments cut at max_new_tokens (no EOS)
    prompt_tokens: int = 0  # context tokens encoded (prefill)
    generated_tokens: int = 0  # tokens produced, EOS included
    forward_calls: int = 0
    forward_seconds: float = 0.0  # wall time inside the model's forward
    prefill_seconds: float = 0.0  # the part of it spent encoding contexts
    seconds: float = 0.0  # wall time inside the policy

    def as_dict(self) -> dict:
        return asdict(self)


class _GrowingLayer(DynamicLayer):
    """A full-attention cache layer over buffers that double when full; ``keys``/``values`` are views of the
    filled part. It replaces ``DynamicLayer``'s concatenation at every step, which took about a quarter of a
    decoding step on CPU for the default model."""

    _layer_type = None  # not registered in transformers' layer mappings

    def lazy_initialization(self, key_states, value_states) -> None:
        self.device = key_states.device
        self.length = 0
        self.key_buffer = self.value_buffer = None
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self.key_buffer is None or self.length + new > self.key_buffer.shape[-2]:
            capacity = max(2 * (self.length + new), 64)
            keys = key_states.new_empty((*key_states.shape[:2], capacity, key_states.shape[-1]))
            values = value_states.new_empty((*value_states.shape[:2], capacity, value_states.shape[-1]))
            if self.length:
                keys[:, :, : self.length] = self.keys
                values[:, :, : self.length] = self.values
            self.key_buffer, self.value_buffer = keys, values
        self.key_buffer[:, :, self.length : self.length + new] = key_states
        self.value_buffer[:, :, self.length : self.length + new] = value_states
        self.length += new
        self._views()
        return self.keys, self.values

    def _views(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized and self.key_buffer is not None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._views()

    def preload(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Start from given states (batch, heads, tokens, head_dim), e.g. the reused prefix of every row."""
        self.device = keys.device
        self.is_initialized = True
        self.key_buffer, self.value_buffer, self.length = keys, values, keys.shape[-2]
        self._views()

    def cut_front(self, columns: int) -> None:
        self.key_buffer = self.key_buffer[:, :, columns:]
        self.value_buffer = self.value_buffer[:, :, columns:]
        self.length -= columns
        self._views()

    def crop(self, tokens_to_remove: int) -> None:  # pragma: no cover - unused by the policy
        if tokens_to_remove < 0 and self.is_initialized:
            self.length = max(0, self.length + tokens_to_remove)
            self._views()

    def reset(self) -> None:  # pragma: no cover - unused by the policy
        self.is_initialized = False
        self.keys = self.values = self.key_buffer = self.value_buffer = None
        self.length = 0


def _new_cache(config) -> DynamicCache:
    """A ``DynamicCache`` for ``config``; plain full-attention layers become :class:`_GrowingLayer`."""
    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [_GrowingLayer() for _ in cache.layers]
    return cache


def _cut_front(cache: DynamicCache, columns: int) -> None:
    """Drop the first ``columns`` key/value positions of every layer (padding that no remaining row needs)."""
    for layer in cache.layers:
        if isinstance(layer, _GrowingLayer):
            layer.cut_front(columns)
        else:
            layer.keys, layer.values = layer.keys[:, :, columns:], layer.values[:, :, columns:]


def _lean_llama_forward(model, input_ids, bias, position_ids, cache) -> torch.Tensor:
    """The last position's logits of a ``LlamaForCausalLM``: the ops of its eager forward, in the same order,
    without transformers' per-call wrappers (output records, mask building, kwarg handling), which took about
    a fifth of a decoding step on CPU. ``bias`` is the 4D additive mask; the cache is updated."""
    inner = model.model
    hidden = inner.embed_tokens(input_ids)
    cos, sin = inner.rotary_emb(hidden, position_ids)
    batch, length = input_ids.shape
    for index, layer in enumerate(inner.layers):
        attention = layer.self_attn
        residual = hidden
        x = layer.input_layernorm(hidden)
        shape = (batch, length, -1, attention.head_dim)
        query = attention.q_proj(x).view(shape).transpose(1, 2)
        key = attention.k_proj(x).view(shape).transpose(1, 2)
        value = attention.v_proj(x).view(shape).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        key, value = cache.layers[index].update(key, value)
        key = repeat_kv(key, attention.num_key_value_groups)
        value = repeat_kv(value, attention.num_key_value_groups)
        weights = torch.matmul(query, key.transpose(2, 3)) * attention.scaling + bias
        weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        out = torch.matmul(weights, value).transpose(1, 2).contiguous().reshape(batch, length, -1).contiguous()
        hidden = residual + attention.o_proj(out)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return model.lm_head(inner.norm(hidden[:, -1:]))[:, -1]


_CACHE_NAMES: dict[type, str] = {}


def _cache_kwarg(model, cache) -> dict:
    """The KV cache as the model's forward names it: ``cache`` (recent transformers) or ``past_key_values``."""
    name = _CACHE_NAMES.get(type(model))
    if name is None:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
        parameters = inspect.signature(inner.forward).parameters
        name = _CACHE_NAMES[type(model)] = "cache" if "cache" in parameters else "past_key_values"
    return {name: cache}


@torch.inference_mode()
def _lean_forward_matches(model, dtype) -> bool:
    """Whether :func:`_lean_llama_forward` gives exactly the model's own logits (prefill with padding, then a
    step), on a small random input; otherwise the model's forward is used."""
    generator = torch.Generator().manual_seed(0)
    device = _device_of(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 6), generator=generator).to(device)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keys = torch.arange(6, device=device)
    allowed = mask.bool()[:, None, None, :] & (keys[None, :] <= keys[:, None])[None, None]
    minimum = torch.finfo(dtype).min
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, minimum)
    step_bias = torch.zeros((2, 1, 1, 7), dtype=dtype, device=device).masked_fill_(
        ~torch.cat([mask, mask.new_ones((2, 1))], 1).bool()[:, None, None, :], minimum)
    try:
        outputs = []
        for lean in (False, True):
            cache = _new_cache(model.config)
            run = []
            for step, (x, b, p) in enumerate(((ids, bias, positions), (ids[:, -1:], step_bias, positions[:, -1:] + 1))):
                if lean:
                    run.append(_lean_llama_forward(model, x, b, p, cache))
                else:
                    run.append(model(input_ids=x, attention_mask=b, position_ids=p, use_cache=True,
                                     logits_to_keep=1, **_cache_kwarg(model, cache)).logits[:, -1])
            outputs.append(run)
        return all(torch.equal(a, b) for a, b in zip(*outputs))
    except Exception:  # an architecture the lean copy does not cover
        return False


def _position_scheme(config) -> str:
    """The position-id scheme a model was trained with (``sequential`` unless its config names another)."""
    try:
        from retune.models.positions import scheme_of
    except ImportError:  # pragma: no cover - an install without retune's position schemes
        return "sequential"
    return scheme_of(config)


def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def _context_seed(seed: int, context: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{context}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class _Saved:
    """The key/value states of a context whose segment was a call, kept until the context resumes."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (heads, tokens, head_dim)


class ModelPolicy:
    """The solver's policy over a causal LM: ``policy(contexts) -> segments``.

    ``batch_size`` bounds the rows of one forward call (and ``max_batch_tokens``, if set, rows times padded
    length); ``max_new_tokens`` bounds a segment (a segment cut there has no EOS and is counted in
    ``stats.truncated``). With ``do_sample`` tokens are drawn at ``temperature`` (optionally from the
    ``top_k`` best) from a generator seeded by ``seed`` and the context alone, so sampled segments are also a
    deterministic function of the context. ``stop_at_call`` ends a row as soon as its text ends a call line
    (``Call: ...\\n``), as if the model had emitted EOS there. ``cache_size`` bounds the context cache
    (0 disables it). ``reuse_prefix`` keeps the key/value states of a context whose segment was a call, up to
    ``reuse_budget_mb``, so that when it resumes (``...Return: ...``) only the new text is encoded.
    ``attn_implementation`` (default ``eager``) is set on the model; ``None`` keeps the model's.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = 64,
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        device: str | torch.device | None = None,
        cache_size: int = 200_000,
        stop_at_call: bool = False,
        max_batch_tokens: int | None = None,
        reuse_prefix: bool = True,
        reuse_budget_mb: float = 2048,
        attn_implementation: str | None = "eager",
        add_special_tokens: bool = True,
        fast_forward: bool = True,
    ):
        if batch_size < 1:
            raise RetuneError(f"batch size must be at least 1, got {batch_size}")
        if max_new_tokens < 1:
            raise RetuneError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if do_sample and temperature <= 0:
            raise RetuneError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.tokenizer = tokenizer
        if device is not None:
            self.model.to(device)
        self.device = _device_of(model)
        if attn_implementation and getattr(model.config, "_attn_implementation", None) != attn_implementation:
            model.set_attn_implementation(attn_implementation)
        self.model.eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_k = top_k
        self.seed = 0 if seed is None else seed
        self.cache_size = cache_size
        self.stop_at_call = stop_at_call
        self.max_batch_tokens = max_batch_tokens
        self.add_special_tokens = add_special_tokens
        self.eos_ids = self._eos_ids(model, tokenizer)
        if not self.eos_ids:
            raise RetuneError("the tokenizer and the model declare no EOS token")
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]
        self._eos = torch.tensor(self.eos_ids, device=self.device)
        self._newline_ids = self._ids_with_newline(tokenizer) if stop_at_call else set()
        self._cache: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._last: dict[str, tuple[str, int]] = {}
        full_attention = all(isinstance(layer, _GrowingLayer) for layer in _new_cache(model.config).layers)
        self.reuse_prefix = reuse_prefix and full_attention
        # plain full attention: the policy builds the 4D masks itself (what transformers would build)
        self._own_masks = full_attention and model.config._attn_implementation in ("eager", "sdpa")
        self._heads = model.config.get_text_config(decoder=True).num_attention_heads
        self._dtype = model.get_input_embeddings().weight.dtype
        self._min = torch.finfo(self._dtype).min
        # a plain LlamaForCausalLM runs through a lean copy of its forward, once checked to give the same bits
        self._lean = None if (fast_forward and self._own_masks and type(model) is LlamaForCausalLM
                              and model.config._attn_implementation == "eager") else False
        self._scheme = _position_scheme(model.config)
        self._texts: dict[int, str] = {}
        self._saved: OrderedDict[str, _Saved] = OrderedDict()
        self._saved_tokens = 0
        self._reuse_budget_tokens = int(reuse_budget_mb * 2**20 / max(1, self._kv_bytes_per_token()))
        self.stats = PolicyStats()

    # ---- the policy -----------------------------------------------------------------------------
    def __call__(self, contexts: Sequence[str]) -> list[str]:
        start = time.perf_counter()
        self.stats.calls += 1
        self.stats.contexts += len(contexts)
        todo: dict[str, None] = {}
        for context in contexts:
            if context in self._cache:
                self.stats.cache_hits += 1
            elif context in todo:
                self.stats.duplicates += 1
            else:
                todo[context] = None
        fresh = self._generate(list(todo)) if todo else {}
        out = []
        for context in contexts:
            if context in fresh:
                out.append(fresh[context][0])
            else:
                self._cache.move_to_end(context)
                out.append(self._cache[context][0])
        if self.cache_size > 0:
            for context, value in fresh.items():
                self._cache[context] = value
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._last = fresh
        self.stats.seconds += time.perf_counter() - start
        return out

    def tokens_of(self, context: str) -> int | None:
        """Tokens generated (EOS included) for ``context``, if it is in the cache or the last call."""
        hit = self._cache.get(context) or self._last.get(context)
        return hit[1] if hit else None

    def reset_stats(self) -> None:
        self.stats = PolicyStats()

    def clear_cache(self) -> None:
        self._cache.clear()
        self._saved.clear()
        self._saved_tokens = 0

    # ---- generation -----------------------------------------------------------------------------
    def _generate(self, contexts: list[str]) -> dict[str, tuple[str, int]]:
        encoded = self.tokenizer(contexts, add_special_tokens=self.add_special_tokens)["input_ids"]
        prefixes = [self._take_saved(c, ids) for c, ids in zip(contexts, encoded)]
        # sort by the tokens still to encode (then by the reused prefix): little padding in either part
        order = sorted(range(len(contexts)),
                       key=lambda i: (len(encoded[i]) - _saved_len(prefixes[i]), _saved_len(prefixes[i]), i))
        results: dict[str, tuple[str, int]] = {}
        saves: dict[str, _Saved] = {}  # context -> its states, the context having called
        for batch in self._micro_batches(order, encoded, prefixes):
            rows = self._generate_batch([encoded[i] for i in batch], [contexts[i] for i in batch],
                                        [prefixes[i] for i in batch])
            for i, (ids, ended, count, saved) in zip(batch, rows):
                segment = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                results[contexts[i]] = (segment, count)
                self.stats.truncated += not ended
                if saved is not None and ended and isinstance(text.parse_segment(segment), text.ParsedCall):
                    saves[contexts[i]] = saved
        for context in contexts:  # stored in the caller's order: what is kept never depends on batching
            if context in saves:
                self._store(context + results[context][0], saves[context])
        self.stats.generated += len(contexts)
        return results

    def _micro_batches(self, order: list[int], encoded: list[list[int]], prefixes):
        batch: list[int] = []
        for i in order:
            width = len(encoded[i]) + self.max_new_tokens  # sorted: the newest row is about the longest
            # eager attention holds rows x heads x new tokens x all tokens scores while encoding
            scores = (len(batch) + 1) * self._heads * (len(encoded[i]) - _saved_len(prefixes[i])) * len(encoded[i]) * 4
            if batch and (
                len(batch) >= self.batch_size
                or (self.max_batch_tokens and (len(batch) + 1) * width > self.max_batch_tokens)
                or scores > PREFILL_SCORES_BYTES
            ):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _forward(self, input_ids, attention_mask, position_ids, cache, prefill: bool = False):
        start = time.perf_counter()
        if self._own_masks:
            attention_mask = self._attention_bias(attention_mask, input_ids.shape[1])
        if self._lean is None:
            self._lean = _lean_forward_matches(self.model, self._dtype)
        if self._lean:
            logits = _lean_llama_forward(self.model, input_ids, attention_mask, position_ids, cache)
        else:
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                **_cache_kwarg(self.model, cache),
                logits_to_keep=1,
            ).logits[:, -1, :]
        logits = logits.float()
        elapsed = time.perf_counter() - start
        self.stats.forward_seconds += elapsed
        if prefill:
            self.stats.prefill_seconds += elapsed
        self.stats.forward_calls += 1
        return logits

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], contexts: list[str], prefixes: list[_Saved | None]):
        """Generate for one micro-batch. Per row: ``(new ids without EOS, ended, tokens generated, saved
        key/values or None)``.

        Row layout: ``[pad][reused prefix][pad][new prompt tokens]``, then the generated tokens; every pad
        is masked and every row has its own position ids, so a row computes what it would alone.
        """
        n = len(prompts)
        reused = [_saved_len(p) for p in prefixes]
        if any(len(prompt) - r < 1 for prompt, r in zip(prompts, reused)):
            raise RetuneError("cannot generate after an empty context")
        head = max(reused)
        width = max(len(prompt) - r for prompt, r in zip(prompts, reused))
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, head + width), dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        for row, (prompt, r) in enumerate(zip(prompts, reused)):
            rest = prompt[r:]
            ids[row, width - len(rest):] = torch.tensor(rest)
            mask[row, head - r: head] = 1
            mask[row, head + width - len(rest):] = 1
            positions[row, width - len(rest):] = torch.tensor(self._positions(prompt)[1][r:])
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        trackers = [self._positions(p)[0] for p in prompts] if self._scheme != "sequential" else None
        next_position = torch.tensor([len(p) for p in prompts], device=self.device)
        self.stats.prompt_tokens += sum(len(p) - r for p, r in zip(prompts, reused))
        self._rows = contexts
        self._generators = self._make_generators(contexts) if self.do_sample else None

        cache = _new_cache(self.model.config)
        if head:
            self._preload(cache, prefixes, head)
        logits = self._forward(ids, mask, positions, cache, prefill=True)
        alive = list(range(n))  # batch row -> result row
        out: list[list[int]] = [[] for _ in range(n)]
        finished = [False] * n
        eos = [False] * n
        saved: list[_Saved | None] = [None] * n
        for _ in range(self.max_new_tokens):
            tokens = self._next_tokens(logits, alive, out)
            is_eos = torch.isin(tokens, self._eos).tolist()
            token_list = tokens.tolist()
            keep = []
            for b, r in enumerate(alive):
                if is_eos[b]:
                    finished[r] = eos[r] = True
                    if self.reuse_prefix:
                        saved[r] = self._extract(cache, mask, b, prompts[r] + out[r])
                    continue
                out[r].append(token_list[b])
                if self.stop_at_call and token_list[b] in self._newline_ids and self._ends_call(out[r]):
                    finished[r] = True
                    if self.reuse_prefix:
                        saved[r] = self._extract(cache, mask, b, prompts[r] + out[r][:-1])
                    continue
                keep.append(b)
            self.stats.generated_tokens += len(alive)
            if not keep:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                tokens, mask, next_position = tokens[index], mask[index], next_position[index]
                token_list = [token_list[b] for b in keep]
                alive = [alive[b] for b in keep]
                cut = int((mask.cumsum(-1) == 0).sum(-1).min())  # leading padding no remaining row needs
                if cut:
                    mask = mask[:, cut:]
                    _cut_front(cache, cut)
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            if trackers is not None:  # the model's own position scheme: from the text of each new token
                next_position = torch.tensor([trackers[r].push(self._token_text(t)) for r, t in zip(alive, token_list)],
                                             device=self.device)
            logits = self._forward(tokens[:, None], mask, next_position[:, None], cache)
            next_position = next_position + 1
        return [(out[r], finished[r], len(out[r]) + eos[r], saved[r]) for r in range(n)]

    def _attention_bias(self, mask: torch.Tensor, queries: int) -> torch.Tensor:
        """The 4D additive mask transformers' eager path would build from the 2D ``mask`` (0 where a query may
        attend, the dtype's minimum elsewhere; the last ``queries`` columns are the queries, causally), made
        directly: transformers' mask construction took about 5% of a decoding step."""
        allowed = mask.bool()[:, None, None, :]
        if queries > 1:
            columns = mask.shape[1]
            key = torch.arange(columns, device=mask.device)
            query = torch.arange(columns - queries, columns, device=mask.device)
            allowed = allowed & (key[None, :] <= query[:, None])[None, None]
        return torch.zeros(allowed.shape, dtype=self._dtype, device=mask.device).masked_fill_(~allowed, self._min)

    def _positions(self, prompt: list[int]):
        """``(tracker, position ids)`` of a context's tokens: ``0, 1, 2, ...``, or the model's own scheme
        (:mod:`retune.models.positions`, named in its config), whose tracker then places the new tokens."""
        if self._scheme == "sequential":
            return None, range(len(prompt))
        from retune.models.positions import PositionTracker

        tracker = PositionTracker(self._scheme)
        return tracker, tracker.extend([self._token_text(t) for t in prompt])

    def _token_text(self, token: int) -> str:
        if token not in self._texts:
            piece = self.tokenizer.convert_ids_to_tokens([token])
            self._texts[token] = self.tokenizer.convert_tokens_to_string(piece)
        return self._texts[token]

    def _next_tokens(self, logits: torch.Tensor, rows: list[int], produced: list[list[int]]) -> torch.Tensor:
        """The next token of every live row (``rows`` index the micro-batch; ``produced`` its tokens so far)."""
        if not self.do_sample:
            return logits.argmax(-1)
        logits = logits / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1).cpu()
        picks = [torch.multinomial(probs[b], 1, generator=self._generators[r]) for b, r in enumerate(rows)]
        return torch.cat(picks).to(logits.device)

    def _make_generators(self, contexts: list[str]) -> list[torch.Generator]:
        gens = []
        for context in contexts:
            g = torch.Generator()
            g.manual_seed(_context_seed(self.seed, context))
            gens.append(g)
        return gens

    def _ends_call(self, ids: list[int]) -> bool:
        decoded = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return isinstance(text.parse_segment(decoded), text.ParsedCall)

    # ---- resumed contexts: key/value states kept across calls -----------------------------------
    def _take_saved(self, context: str, ids: list[int]) -> _Saved | None:
        """The saved states of this context's parent text (the context before its last ``Return: ``)."""
        if not self.reuse_prefix:
            return None
        cut = context.rfind(text.RETURN)
        if cut < 0:
            return None
        saved = self._saved.pop(context[:cut], None)
        if saved is None:
            return None
        self._saved_tokens -= len(saved.ids)
        usable = min(len(saved.ids), len(ids) - 1)
        while usable > 0 and ids[:usable] != saved.ids[:usable]:  # a tokenizer may merge across the seam
            usable = max(0, usable - 8)
        if usable <= 0:
            return None
        if usable < len(saved.ids):
            saved = _Saved(saved.ids[:usable], [(k[:, :usable], v[:, :usable]) for k, v in saved.layers])
        return saved

    def _store(self, key: str, saved: _Saved) -> None:
        if len(saved.ids) > self._reuse_budget_tokens:
            return
        self._saved[key] = saved
        self._saved_tokens += len(saved.ids)
        while self._saved_tokens > self._reuse_budget_tokens:
            _, old = self._saved.popitem(last=False)
            self._saved_tokens -= len(old.ids)

    @staticmethod
    def _extract(cache, mask: torch.Tensor, row: int, ids: list[int]) -> _Saved:
        row_mask = mask[row]
        start = int(row_mask.shape[0]) - len(ids)
        if bool(row_mask[start:].all()):  # the usual case: the row's tokens are the last columns
            columns = slice(start, None)
        else:  # a reused prefix left padding between it and the new tokens
            columns = row_mask.nonzero().squeeze(-1)
        layers = [(layer.keys[row, :, columns].clone(), layer.values[row, :, columns].clone()) for layer in cache.layers]
        assert layers[0][0].shape[1] == len(ids), (layers[0][0].shape, len(ids))
        return _Saved(list(ids), layers)

    @staticmethod
    def _preload(cache, prefixes: list[_Saved | None], head: int) -> None:
        for index, layer in enumerate(cache.layers):
            sample = next(p for p in prefixes if p is not None).layers[index][0]
            heads, dim = sample.shape[0], sample.shape[-1]
            keys = sample.new_zeros((len(prefixes), heads, head, dim))
            values = sample.new_zeros((len(prefixes), heads, head, dim))
            for row, saved in enumerate(prefixes):
                if saved is not None:
                    k, v = saved.layers[index]
                    keys[row, :, head - k.shape[1]:] = k
                    values[row, :, head - v.shape[1]:] = v
            layer.preload(keys, values)

    def _kv_bytes_per_token(self) -> int:
        config = self.model.config.get_text_config(decoder=True)
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        element = next(self.model.parameters()).element_size()
        return 2 * config.num_hidden_layers * heads * head_dim * element

    # ---- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _eos_ids(model, tokenizer) -> list[int]:
        ids: list[int] = []
        for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            for value in source if isinstance(source, (list, tuple)) else [source]:
                if value is not None and value not in ids:
                    ids.append(int(value))
        return ids

    @staticmethod
    def _ids_with_newline(tokenizer) -> set[int]:
        found = set()
        for index in tokenizer.get_vocab().values():
            if "\n" in tokenizer.decode([index], clean_up_tokenization_spaces=False):
                found.add(index)
        return found


def _saved_len(saved: _Saved | None) -> int:
    return len(saved.ids) if saved is not None else 0


class GeneratePolicy:
    """The authors' engine: one ``model.generate`` per context, batch 1, greedy, nothing cached or shared.

    A reference for tests (the batched policy must write the same segments) and the benchmark's baseline.
    """

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 256, add_special_tokens: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens = max_new_tokens
        self.add_special_tokens = add_special_tokens
        scheme = _position_scheme(model.config)
        if scheme != "sequential":
            raise RetuneError(f"generate() cannot give this model its {scheme} position ids: use "
                              "ModelPolicy(batch_size=1, cache_size=0, reuse_prefix=False) as the one-sequence engine")
        self.eos_ids = ModelPolicy._eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.stats = PolicyStats()
        model.eval()

    @torch.inference_mode()
    def __call__(self, contexts: Sequence[str]) -> list[str]:
        start = time.perf_counter()
        self.stats.calls += 1
        out = []
        for context in contexts:
            enc = self.tokenizer(context, return_tensors="pt", add_special_tokens=self.add_special_tokens)
            enc = {k: v.to(_device_of(self.model)) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            generated = self.model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
                **self._generate_kwargs(context, enc["input_ids"].shape[1]),
            )
            new = generated[0, enc["input_ids"].shape[1]:].tolist()
            ended = bool(new) and new[-1] in self.eos_ids
            self.stats.generated_tokens += len(new)
            self.stats.truncated += not ended
            if ended:
                new = new[:-1]
            out.append(self.tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False))
        self.stats.contexts += len(contexts)
        self.stats.generated += len(contexts)
        self.stats.seconds += time.perf_counter() - start
        return out


    def _generate_kwargs(self, context: str, prompt_length: int) -> dict:
        """Extra ``generate`` arguments for one context (none; subclasses may add logits processors)."""
        return {}


def load_model(path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
    """``(model, tokenizer)`` from a run or model directory with plain transformers; a directory holding a
    peft adapter (``adapter_config.json``) loads its base model with the adapter on top."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise RetuneError(f"model directory {str(path)!r} does not exist")
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        if (path / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(str(path), **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RetuneError(f"cannot load a model from {str(path)!r}: {first}") from None
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


def load_policy(path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                **policy_kwargs) -> ModelPolicy:
    """A :class:`ModelPolicy` over the model saved in ``path`` (see :func:`load_model`)."""
    model, tokenizer = load_model(path, device=device, dtype=dtype)
    return ModelPolicy(model, tokenizer, **policy_kwargs)
