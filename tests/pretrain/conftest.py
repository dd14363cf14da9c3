"""A small tokenizer trained once per test session (the smoke preset's)."""

from __future__ import annotations

import pytest

from pretrain.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer

SMOKE_TOKENIZER = TokenizerConfig(vocab_size=1024, train_problems=1500)


@pytest.fixture(scope="session")
def smoke_tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / SMOKE_TOKENIZER.cache_name
    train_tokenizer(SMOKE_TOKENIZER, path)
    return path


@pytest.fixture(scope="session")
def smoke_tokenizer(smoke_tokenizer_dir):
    return load_tokenizer(smoke_tokenizer_dir)
