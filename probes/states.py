"""Probe inputs and hidden states.

Like V-probing (Part 2.1 §4.1), every probe reads the model at the end of an appended query: the text up to the
probing position, then [START] <parameter> ([MID] <second parameter>) [END]. The markers are rows of the model's
embedding that no token uses (the vocabulary is padded), so the probed model has never seen them as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probes.examples import ProbeExample, ProbeSet


@dataclass(frozen=True)
class Markers:
    start: int
    mid: int
    end: int

    @classmethod
    def for_model(cls, model: torch.nn.Module, tokenizer_len: int) -> Markers:
        rows = model.get_input_embeddings().weight.shape[0]
        if rows < tokenizer_len + 3:
            raise ValueError(
                f"the model embeds {rows} rows for {tokenizer_len} tokens: 3 spare rows are needed for "
                "the probe markers"
            )
        return cls(tokenizer_len, tokenizer_len + 1, tokenizer_len + 2)


def query_ids(tokenizer, markers: Markers, names: tuple[str, ...]) -> list[int]:
    out = [markers.start]
    for k, name in enumerate(names):
        if k:
            out.append(markers.mid)
        out += tokenizer(" " + name, add_special_tokens=False).input_ids
    return [*out, markers.end]


def probe_inputs(probe_set: ProbeSet, tokenizer, markers: Markers) -> list[list[int]]:
    """One token sequence per example: its prefix and the query."""
    return [
        probe_set.sequences[e.seq][: e.position + 1] + query_ids(tokenizer, markers, e.names)
        for e in probe_set.examples
    ]


def pad_batch(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask (the state read is each sequence's last real token)."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def end_states(model, inputs: list[list[int]], batch_size: int = 32, layers: list[int] | None = None) -> np.ndarray:
    """Hidden states at each input's last token: (examples, layers, hidden) for every layer output (0 is the
    embedding), or only `layers`."""
    device = next(model.parameters()).device
    chunks = []
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))  # similar lengths together: less padding
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = pad_batch([inputs[i] for i in idx], device)
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        last = mask.sum(1) - 1
        picked = torch.stack([h[torch.arange(len(idx), device=device), last] for h in hs], dim=1)
        if layers is not None:
            picked = picked[:, layers]
        chunks.append((idx, picked.float().cpu().numpy()))
    out = np.zeros((len(inputs), *chunks[0][1].shape[1:]), dtype=np.float32)
    for idx, arr in chunks:
        out[idx] = arr
    return out


def labels_of(examples: list[ProbeExample]) -> np.ndarray:
    return np.array([e.label for e in examples], dtype=np.int64)
