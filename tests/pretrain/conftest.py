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


@pytest.fixture(scope="session")
def smoke_out_root(tmp_path_factory, smoke_tokenizer_dir):
    """A data root with the smoke tokenizer already in its cache (as `make data` would leave it)."""
    import shutil

    root = tmp_path_factory.mktemp("data")
    shutil.copytree(smoke_tokenizer_dir, root / "tokenizers" / SMOKE_TOKENIZER.cache_name)
    return root


def compose(config_name: str, overrides: list[str]):
    """A shipped Hydra config, composed as the command line would."""
    from pathlib import Path

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=False)


@pytest.fixture
def composer():
    return compose
