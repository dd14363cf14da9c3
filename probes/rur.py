"""Retry upon regret (Part 2.2 §3), evaluated like any decoding:

    python -m probes.rur checkpoint=<ckpt> detector=perfect                      # the "100% detector"
    python -m probes.rur checkpoint=<ckpt> detector=probe probe_dir=<run>/probes/<ckpt>/default
    python -m probes.rur checkpoint=<ckpt> detector=adapter probe_dir=<run>/probes/<ckpt>/default   # finetuned

Greedy decoding; after each "Define A as" the detector judges the step, and a detected mistake sends the model back
to the end of the previous sentence to sample it again (at most eval.decode.max_retries times per solution). The
report goes to <run>/eval/<checkpoint>/rur_<detector>/, beside greedy and beam search, for `pretrain.aggregate`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from igsm.dataset import DataConfig
from pretrain.aggregate import RUR_PREFIX
from pretrain.config import run_command, to_dataclass
from pretrain.evaluate import EvalConfig, checkpoint_data, checkpoint_roles, evaluate_model, load_checkpoint, report
from probes.adapter_probe import load_adapter_detector
from probes.probe import load_detector
from probes.regret import PerfectDetector

if TYPE_CHECKING:
    from omegaconf import DictConfig


def rur(cfg: DictConfig) -> dict:
    """Evaluate retry upon regret as `cfg` (conf/rur.yaml) says; write its report and return the summary."""
    ev = replace(to_dataclass(EvalConfig, cfg.eval), name=f"{RUR_PREFIX}{cfg.detector}")
    model, tokenizer, run_config = load_checkpoint(cfg.checkpoint, ev.device, ev.dtype)
    data_cfg = checkpoint_data(cfg.get("data"), run_config, cfg.checkpoint)
    roles = checkpoint_roles(tokenizer, run_config, cfg.checkpoint)
    if cfg.detector == "perfect":
        detector = PerfectDetector(tokenizer)
    elif cfg.detector in ("probe", "adapter"):
        if not cfg.probe_dir:
            raise ValueError(f"detector={cfg.detector} needs probe_dir=<folder written by python -m probes.probe>")
        load = load_detector if cfg.detector == "probe" else load_adapter_detector
        detector = load(model, tokenizer, cfg.probe_dir)
    else:
        raise ValueError(f"detector must be 'perfect', 'probe' or 'adapter', got {cfg.detector!r}")
    data = to_dataclass(DataConfig, data_cfg)
    summary, records = evaluate_model(model, tokenizer, roles, data, ev, regret=detector)
    report(
        cfg.checkpoint,
        ev,
        data,
        summary,
        records,
        detector=str(cfg.detector),
        probe_dir=str(cfg.probe_dir) if cfg.detector != "perfect" else None,
        detector_calls=detector.calls,
        detector_flags=detector.flags,
    )
    print(f"detector: {detector.flags} of {detector.calls} steps flagged")
    return summary


def main() -> None:
    run_command("rur", rur, errors=(ValueError, FileNotFoundError, RuntimeError))


if __name__ == "__main__":
    main()
