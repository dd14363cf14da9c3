"""Feeding examples to a model: a stream of fresh examples, a saved dataset, and packing into fixed windows."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from igsm.dataset import DataConfig, make_example
from pretrain.tokenizer import encode_batch, load_tokenizer, resolve_roles


class ExampleStream(IterableDataset):
    """Fresh training examples, generated and tokenized on the fly (the papers never repeat a problem).

    Rank r of R reads the examples r, r + R, r + 2R, ... of the stream, from its position `start` on; DataLoader
    workers deal that sequence round-robin. So the stream is a pure function of (data config, rank), whatever the
    number of workers, and `start` (examples already read by this rank) resumes it exactly.
    """

    def __init__(
        self,
        data: DataConfig,
        tokenizer_path: str | os.PathLike,
        roles: dict,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        chunk: int = 32,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.data, self.tokenizer_path, self.roles = data, str(tokenizer_path), roles
        self.rank, self.world_size, self.start, self.chunk = rank, world_size, start, chunk

    def indices(self, worker: int = 0, num_workers: int = 1) -> Iterator[int]:
        """Example indices of one worker: positions k = worker, worker + W, ... of this rank's sequence."""
        k = self.start + worker
        while True:
            yield self.rank + k * self.world_size
            k += num_workers

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        tok = load_tokenizer(self.tokenizer_path)
        roles = resolve_roles(tok, self.roles)
        mask = self.data.mistakes.mask
        it = self.indices(worker, num_workers)
        while True:
            idx = [next(it) for _ in range(self.chunk)]
            examples = [make_example(self.data, "train", i) for i in idx]
            enc = encode_batch(tok, roles, examples, mask)
            for k, i in enumerate(idx):
                yield {
                    "index": i,
                    "input_ids": torch.tensor(enc["input_ids"][k], dtype=torch.long),
                    "loss_mask": torch.tensor(enc["loss_mask"][k], dtype=torch.bool),
                    "prompt_length": enc["prompt_length"][k],
                }


def dataset_examples(train, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> Iterator[dict]:
    """Examples of a saved training split, reshuffled every epoch (seeded); rank r reads positions r, r + R, ... of
    the endless shuffled sequence, from its position `start` on."""
    import numpy as np

    n = len(train)
    if n == 0:
        raise ValueError("the training split is empty")
    train = train.select_columns(["input_ids", "loss_mask", "prompt_length"])
    perms: dict[int, np.ndarray] = {}
    k = start
    while True:
        g = rank + k * world_size
        epoch = g // n
        if epoch not in perms:
            perms.clear()
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        row = train[int(perms[epoch][g % n])]
        yield {
            "input_ids": torch.tensor(row["input_ids"], dtype=torch.long),
            "loss_mask": torch.tensor(row["loss_mask"], dtype=torch.bool),
            "prompt_length": row["prompt_length"],
        }
        k += 1


class Packer:
    """Windows of `context` tokens as in the papers: whole examples concatenated from the window's start and cut at
    the right end (the cut example's rest is dropped); an example longer than the window is skipped.

    labels are the input ids where the loss applies and -100 elsewhere: masked mistake tokens, and the prompt when
    `loss_on="solution"` (the papers train on everything). `doc_mask` adds a block-diagonal causal attention mask
    and restarts positions at each example, so examples in a window do not attend to each other.
    """

    def __init__(self, examples: Iterator[dict], context: int, loss_on: str = "all", doc_mask: bool = False):
        if loss_on not in ("all", "solution"):
            raise ValueError(f"train.loss_on must be 'all' or 'solution', got {loss_on!r}")
        self.examples, self.context, self.loss_on, self.doc_mask = examples, context, loss_on, doc_mask
        self.consumed = 0  # examples read from the source (the data position to resume from)
        self.skipped = 0  # of which longer than the window

    def window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, labels, docs = [], [], []
        doc = length = 0
        while length < self.context:
            ex = next(self.examples)
            self.consumed += 1
            x = ex["input_ids"]
            if len(x) > self.context:
                self.skipped += 1
                continue
            keep = ex["loss_mask"].clone()
            if self.loss_on == "solution":
                keep[: ex["prompt_length"]] = False
            ids.append(x)
            labels.append(torch.where(keep, x, torch.full_like(x, -100)))
            docs.append(torch.full_like(x, doc))
            doc += 1
            length += len(x)
        t = self.context
        return torch.cat(ids)[:t], torch.cat(labels)[:t], torch.cat(docs)[:t]

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        """`size` windows: input_ids and labels (size, context), and for doc_mask the mask and positions."""
        wins = [self.window() for _ in range(size)]
        out = {"input_ids": torch.stack([w[0] for w in wins]), "labels": torch.stack([w[1] for w in wins])}
        if self.doc_mask:
            docs = torch.stack([w[2] for w in wins])
            same = docs[:, :, None] == docs[:, None, :]
            causal = torch.ones(self.context, self.context, dtype=torch.bool).tril()
            out["attention_mask"] = (same & causal)[:, None]
            starts = torch.cat([torch.ones_like(docs[:, :1], dtype=torch.bool), docs[:, 1:] != docs[:, :-1]], dim=1)
            idx = torch.arange(self.context).expand_as(docs)
            out["position_ids"] = idx - torch.cummax(torch.where(starts, idx, torch.zeros_like(idx)), dim=1).values
        return out
