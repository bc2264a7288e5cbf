"""Loading the model to train, setting up full or LoRA fine-tuning, and saving the result.

What a finished run directory holds, so that plain ``AutoModelForCausalLM.from_pretrained(run_dir)`` and
``AutoTokenizer.from_pretrained(run_dir)`` load it:

* full fine-tuning: the model and the tokenizer in the run dir;
* LoRA with ``merge_lora`` (the default): the merged full model and the tokenizer in the run dir, and the
  adapter alone (``adapter_model.safetensors``, ``adapter_config.json``) in ``run_dir/adapter``;
* LoRA without ``merge_lora``: the adapter and the tokenizer in the run dir; transformers (with peft
  installed) loads it on top of the base model, whose absolute path the adapter config records.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from retune.core.errors import RetuneError
from retune.engines.training.config import DEFAULT_MODEL, SCRATCH_MODEL, TrainConfig
from retune.models import load_default_model

ADAPTER_DIR = "adapter"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


def mixed_precision(precision: str) -> str:
    """The ``Accelerator`` mixed-precision mode for a config's ``precision``."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    if precision == "fp16" and not cuda:
        raise RetuneError("fp16 needs a CUDA GPU (use --precision fp32 or bf16)")
    return "no" if precision == "fp32" else precision


def load_model(config: TrainConfig, mixed: str):
    """The model and tokenizer to train. Trained weights stay fp32; a frozen LoRA base uses the compute dtype.
    Without ``config.progress`` transformers shows no loading bar either."""
    with _loading_bars(config.progress):
        return _load_model(config, mixed)


@contextmanager
def _loading_bars(shown: bool):
    """transformers' progress bars off inside, unless ``shown`` (or they are off already)."""
    if shown or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _load_model(config: TrainConfig, mixed: str):
    if config.model in (DEFAULT_MODEL, SCRATCH_MODEL):
        return load_default_model(pretrained=config.model == DEFAULT_MODEL)
    path = Path(config.model).expanduser()
    if not path.is_dir():
        raise RetuneError(f"model directory {config.model!r} does not exist")
    dtype = _DTYPES[mixed] if config.finetune == "lora" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path.resolve(), dtype=dtype)
    except Exception as exc:  # transformers raises many types for a directory it cannot load
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RetuneError(f"cannot load a causal LM from {config.model!r}: {reason}") from None
    if tokenizer.eos_token is None:
        raise RetuneError(f"the tokenizer in {config.model!r} has no EOS token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def prepare_finetuning(model, config: TrainConfig):
    """The model with exactly the parameters to train left trainable (all, those named in ``trainable``, or a
    fresh LoRA adapter)."""
    if config.finetune == "full":
        model.requires_grad_(not config.trainable)
        for name, parameter in model.named_parameters():
            if any(part in name for part in config.trainable):
                parameter.requires_grad_(True)
        if not any(p.requires_grad for p in model.parameters()):
            raise RetuneError(f"no parameter name contains any of {','.join(config.trainable)} (trainable)")
        return model
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
    )
    try:
        with warnings.catch_warnings():  # peft asks transformers 5 for a renamed attribute: no news to a user
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise RetuneError(f"cannot add LoRA to modules {','.join(config.lora_targets)}: {reason}") from None


def save_final(model, tokenizer, config: TrainConfig, run_dir: Path) -> None:
    """Write the trained model as described in the module docstring (merging consumes a LoRA model)."""
    tokenizer.save_pretrained(run_dir)
    if config.finetune == "full" or not config.merge_lora:
        model.save_pretrained(run_dir)
    else:
        model.save_pretrained(run_dir / ADAPTER_DIR)
        model.merge_and_unload().save_pretrained(run_dir)
