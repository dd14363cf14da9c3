"""Merge a LoRA checkpoint into its base model and save the result as a plain checkpoint:

    python -m pretrain.finetune_export runs/<finetune run>/checkpoints/step_0001000 exports/<name>

The export is a `save_pretrained` folder (model + tokenizer) that `AutoModelForCausalLM.from_pretrained` opens, with
the run's config beside the weights (run_config.yaml), so `pretrain.evaluate` and `probes.*` read it like any
checkpoint. The output head is untied: it keeps the pretrained matrix (`pretrain.adapters`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from igsm.io import atomic_dir
from pretrain.checkpoint import RUN_CONFIG, load_model, run_config
from pretrain.tokenizer import load_tokenizer


def export(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the merged model of `checkpoint` (adapters merged; a plain checkpoint is copied) to `out`."""
    from omegaconf import OmegaConf

    model, config = load_model(checkpoint), run_config(checkpoint)
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output folder")
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        load_tokenizer(checkpoint).save_pretrained(tmp)
        if config is not None:
            OmegaConf.save(config, tmp / RUN_CONFIG)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a checkpoint folder (a LoRA run's adapters, or a plain model)")
    ap.add_argument("out", help="the folder to write (must not exist)")
    args = ap.parse_args()
    try:
        print(f"wrote {export(args.checkpoint, args.out)}")
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
