"""Feeding examples to a model: a stream of fresh examples, a saved dataset, and packing into fixed windows."""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from igsm.dataset import DataConfig, make_example
from igsm.vocab import load_vocabulary
from pretrain.tokenizer import encode_batch, load_tokenizer, resolve_roles


class ExampleStream(IterableDataset):
    """Fresh training examples, generated and tokenized on the fly (the papers never repeat a problem).

    Example indices are dealt round-robin: under `world_size` ranks with W DataLoader workers each, worker w of
    rank r yields examples start + (r * W + w) + k * world_size * W for k = 0, 1, ... So the stream is a pure
    function of (data config, rank, worker), and `start` resumes it.
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
        stride = self.world_size * num_workers
        i = self.start + self.rank * num_workers + worker
        while True:
            yield i
            i += stride

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        tok = load_tokenizer(self.tokenizer_path)
        roles = resolve_roles(tok, self.roles)
        vocab = load_vocabulary()
        mask = self.data.mistakes.mask
        it = self.indices(worker, num_workers)
        while True:
            idx = [next(it) for _ in range(self.chunk)]
            examples = [make_example(self.data, "train", i, vocab) for i in idx]
            enc = encode_batch(tok, roles, examples, mask)
            for k, i in enumerate(idx):
                yield {
                    "index": i,
                    "input_ids": torch.tensor(enc["input_ids"][k], dtype=torch.long),
                    "loss_mask": torch.tensor(enc["loss_mask"][k], dtype=torch.bool),
                    "prompt_length": enc["prompt_length"][k],
                }
