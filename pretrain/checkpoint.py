"""Checkpoints: a `save_pretrained` folder (model + tokenizer) with the training state beside it, written atomically.

    <run>/config.yaml               the run's resolved config (data, tokenizer and its roles, model, training)
    <run>/checkpoints/step_0001000/{config.json, model.safetensors, tokenizer.json, ..., training_state.pt}
    <run>/checkpoints/latest        name of the newest complete checkpoint

`AutoModelForCausalLM.from_pretrained(<checkpoint>)` and `AutoTokenizer.from_pretrained(<checkpoint>)` open any of
them; `training_state.pt` holds the optimizer, scheduler, step, each rank's data position and the RNG states.
A LoRA finetune's checkpoints hold a peft adapter (adapter_config.json, adapter_model.safetensors) in place of the
model, its base checkpoint named in adapter_config.json; `load_model` opens both kinds, and everything that opens a
checkpoint goes through it.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igsm.io import atomic_dir

STATE = "training_state.pt"
RUN_CONFIG = "run_config.yaml"  # an exported checkpoint carries its run's config (pretrain.finetune_export)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model under DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any], keep_last: int) -> Path:
    """Write checkpoint `step` (model, tokenizer, training state) and keep only the newest `keep_last`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    with atomic_dir(final) as tmp:
        unwrap(model).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save({**state, "step": step}, tmp / STATE)
    pointer = root / ".latest.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, root / "latest")
    done = sorted(p for p in root.glob("step_*") if (p / STATE).exists())
    for old in done[: max(0, len(done) - keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_model(checkpoint: str | Path, trainable: bool = False, dtype: torch.dtype = torch.float32):
    """The model of a checkpoint of ours: a save_pretrained folder, or a LoRA adapter (`pretrain.adapters`) on its
    base model, merged into it (`trainable`: the PeftModel itself, its adapters trainable, to resume training)."""
    from transformers import AutoModelForCausalLM

    import pretrain.model  # noqa: F401  registers the canon model type with transformers' Auto classes
    from pretrain.adapters import is_adapter, load_adapter, merge

    path = Path(checkpoint)
    if is_adapter(path):
        if trainable:
            return load_adapter(path, True, dtype)
        return merge(load_adapter(path)).to(dtype)  # merged in fp32, rounded once
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a save_pretrained checkpoint (no config.json nor adapter_config.json)")
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if (path / STATE).exists():
            return path
    done = sorted(p for p in root.glob("step_*") if (p / STATE).exists())
    return done[-1] if done else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / STATE, map_location="cpu", weights_only=False)


def run_config(checkpoint: Path):
    """The resolved config (an OmegaConf DictConfig) of the run that wrote `checkpoint`: `<run>/config.yaml` beside
    `<run>/checkpoints/`, else the copy in the checkpoint's training state or its run_config.yaml (an export), else
    None (a bare save_pretrained folder)."""
    from omegaconf import OmegaConf

    checkpoint = Path(checkpoint)
    if (checkpoint / RUN_CONFIG).exists():
        return OmegaConf.load(checkpoint / RUN_CONFIG)
    beside = checkpoint.parent.parent / "config.yaml"
    if checkpoint.parent.name == "checkpoints" and beside.exists():
        return OmegaConf.load(beside)
    if (checkpoint / STATE).exists():
        return OmegaConf.create(load_state(checkpoint)["config"])
    return None
