"""The embedded default model: a small LLaMA-architecture causal LM built from a config, never downloaded.

Its size follows a measurement on 2 CPU cores, where updates per minute matter more than width: a 0.5M
parameter, 2-layer model at batch 16 and lr 1e-3 learned where a 1M, 4-layer one at batch 64 did not.
``build_default_model()`` gives about 0.55M parameters (hidden 128, 2 layers, 4 heads, MLP 512) over the
character-level tokenizer of :mod:`retune.models.tokenizer`; the weights are initialised from ``torch``'s
global RNG, so seed it first for reproducible runs. Its config names its position scheme
(``retune_position_scheme``, see :mod:`retune.models.positions`): training and inference must pass those
position ids. Saved with ``save_pretrained``, it loads with plain
``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from retune.models.positions import CONFIG_KEY
from retune.models.tokenizer import build_tokenizer

# Position ids of the default model (retune.models.positions). "hierarchical" (line/bracket/column ids: every
# copy of a recursive call at a constant offset) is opt-in through TrainConfig.position_scheme until the
# inference policy passes those ids too (see docs/length-generalization.md).
DEFAULT_POSITION_SCHEME = "sequential"
DEFAULT_ARCHITECTURE = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 4096,
}


def default_config(tokenizer: PreTrainedTokenizerFast, **overrides) -> LlamaConfig:
    """A ``LlamaConfig`` sized for ``tokenizer``; ``overrides`` replace any architecture setting."""
    return LlamaConfig(
        **{
            **DEFAULT_ARCHITECTURE,
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            CONFIG_KEY: DEFAULT_POSITION_SCHEME,
            **overrides,
        }
    )


def build_default_model(**overrides) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised default model and its tokenizer (``overrides`` as in :func:`default_config`)."""
    tokenizer = build_tokenizer(model_max_length=overrides.get("max_position_embeddings", 4096))
    model = LlamaForCausalLM(default_config(tokenizer, **overrides))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
