"""Error detection by finetuning (Part 2.2 §3, "detector v2"): a small LoRA adapter on the model (by default the
paper's: rank 32 on the embedding, rank 2 on the query and value projections; `pretrain.adapters`) and a linear head
on the last layer's state at the query's [END], trained together on the probing examples of the regret task, the
same examples the linear probe and the V-probe are trained and scored on. At a "Define A as" the regret label is
1 - can_next(A): the paper's detector predicts can_next there, the same question.

The adapter sits on a copy of the model: the model being decoded stays untouched. Saved as a peft adapter with the
head beside it, it is a detector for retry upon regret (`probes.rur detector=adapter`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pretrain.adapters import AdapterSpec, add_lora, quiet_peft, split_qkv
from probes.regret import ScoreDetector
from probes.states import Markers, pad_batch, query_ids
from probes.vprobe import fit_probe

DETECTOR_DIR = "regret_adapter"  # in the probe's output folder: the peft adapter, head.pt and markers.json


class AdapterProbe(torch.nn.Module):
    """A LoRA-adapted copy of `model` and a linear head on its last layer at each sequence's last real token."""

    def __init__(self, model: torch.nn.Module, n_classes: int, spec: AdapterSpec | None = None, peft_model=None):
        super().__init__()
        self.model = peft_model if peft_model is not None else add_lora(copy.deepcopy(model), spec)
        device = next(model.parameters()).device
        self.head = torch.nn.Linear(model.config.hidden_size, n_classes, device=device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        last = mask.sum(1) - 1
        return self.head(h[torch.arange(len(ids), device=ids.device), last].float())

    def save(self, out: Path, markers: Markers) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        torch.save(self.head.state_dict(), out / "head.pt")
        (out / "markers.json").write_text(json.dumps(asdict(markers)) + "\n")


def train_adapter_probe(
    model,
    inputs: list[list[int]],
    labels: np.ndarray,
    n_classes: int,
    spec: AdapterSpec,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.01,
    seed: int = 0,
    desc: str | None = None,
) -> AdapterProbe:
    """Train adapter and head together on (input, label) pairs, with the V-probe's loop and schedule."""
    torch.manual_seed(seed)
    probe = AdapterProbe(model, n_classes, spec)
    return fit_probe(probe, inputs, labels, steps, batch_size, lr, weight_decay, seed, desc or "adapter", bool(desc))


@dataclass
class AdapterDetector(ScoreDetector):
    """The finetuned regret detector, with `probes.regret.ProbeDetector`'s interface."""

    probe: AdapterProbe
    tokenizer: object
    markers: Markers
    threshold: float = 0.5
    calls: int = 0
    flags: int = 0

    @torch.inference_mode()
    def score(self, prefix: list[int], name: str) -> float:
        """P(mistake) for the step naming `name` that ends `prefix` (its " as" token)."""
        seq = prefix + query_ids(self.tokenizer, self.markers, (name,))
        ids, mask = pad_batch([seq], self.probe.head.weight.device)
        return float(torch.softmax(self.probe(ids, mask), -1)[0, 1])


def load_adapter_detector(model, tokenizer, probe_dir: str | Path) -> AdapterDetector:
    """The detector saved by `probes.probe` in <probe_dir>/regret_adapter, on a copy of `model`."""
    from peft import PeftModel

    folder = Path(probe_dir) / DETECTOR_DIR
    if not (folder / "head.pt").exists():
        raise FileNotFoundError(f"{folder} holds no finetuned detector (run probes.probe with probe.detector_adapter)")
    with quiet_peft():
        peft_model = PeftModel.from_pretrained(split_qkv(copy.deepcopy(model)), str(folder)).eval()
    head = torch.load(folder / "head.pt", map_location=next(model.parameters()).device)
    probe = AdapterProbe(model, head["weight"].shape[0], peft_model=peft_model)
    probe.head.load_state_dict(head)
    markers = Markers(**json.loads((folder / "markers.json").read_text()))
    return AdapterDetector(probe.eval(), tokenizer, markers)
