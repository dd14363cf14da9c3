"""V-probing (Part 2.1 §4.1, App. B): the model frozen; a rank-r update of its input embeddings (which also lets it
adapt to the query markers) and a linear head on the last layer's state at [END] are trained."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from probes.states import pad_batch


class VProbe(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, n_classes: int, rank: int = 8):
        super().__init__()
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        emb = model.get_input_embeddings()
        rows, hidden = emb.weight.shape
        device = emb.weight.device
        self.low = torch.nn.Parameter(torch.zeros(rows, rank, device=device))  # the update starts at zero
        self.up = torch.nn.Parameter(torch.randn(rank, hidden, device=device) * 0.02)
        self.head = torch.nn.Linear(hidden, n_classes, device=device)
        self._hook = emb.register_forward_hook(lambda mod, args, out: out + F.embedding(args[0], self.low) @ self.up)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        last = mask.sum(1) - 1
        return self.head(h[torch.arange(len(ids), device=ids.device), last].float())

    def remove(self) -> None:
        """Detach from the model (it works unprobed again)."""
        self._hook.remove()


def train_vprobe(
    model,
    inputs: list[list[int]],
    labels: np.ndarray,
    n_classes: int,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    rank: int = 8,
    seed: int = 0,
    desc: str | None = None,
) -> VProbe:
    """Train on (input, label) pairs; lr decays linearly to 0 with no warmup (Part 2.1 App. F.2)."""
    torch.manual_seed(seed)
    probe = VProbe(model, n_classes, rank)
    return fit_probe(
        probe, inputs, labels, steps, batch_size, lr, weight_decay, seed, desc or "V-probe", desc is not None
    )


def fit_probe(
    probe: torch.nn.Module,
    inputs: list[list[int]],
    labels: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    desc: str,
    show: bool = False,
):
    """Train the trainable parameters of `probe` (a module mapping (ids, mask) to class logits) with AdamW, lr
    decaying linearly to 0 (Part 2.1 App. F.2); the V-probe's loop, shared with the finetuned detector."""
    rng = random.Random(seed)
    params = [p for p in probe.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    device = params[0].device
    y = torch.tensor(labels, device=device)
    probe.eval()  # no dropout anywhere; the frozen model's buffers stay as they are
    for _ in tqdm(range(steps), desc=desc, unit="step", disable=not show):
        idx = rng.sample(range(len(inputs)), min(batch_size, len(inputs)))
        ids, mask = pad_batch([inputs[i] for i in idx], device)
        loss = F.cross_entropy(probe(ids, mask), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{desc}: loss is not finite; lower probe.vprobe_lr")
    return probe


@torch.inference_mode()
def predict(probe: torch.nn.Module, inputs: list[list[int]], batch_size: int = 64) -> np.ndarray:
    """Class predictions of a V-probe or a finetuned detector."""
    device = probe.head.weight.device
    out = []
    for s in range(0, len(inputs), batch_size):
        ids, mask = pad_batch(inputs[s : s + batch_size], device)
        out.append(probe(ids, mask).argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
