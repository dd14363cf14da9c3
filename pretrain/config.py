"""Hydra configs -> validated dataclasses: unknown keys, wrong types and bad values stop with the key's name.

The dataclasses are the schema of the configs and the one home of every default (each field documented there): each
command module stores its schema in Hydra's ConfigStore as `<command>_schema`, which its conf/<command>.yaml lists
first, so the yaml files hold only what differs from a default (tests/pretrain/test_config.py keeps them so).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from igsm.config import PRESETS

# The papers' preset numbers live in igsm.config.PRESETS; a yaml names them as ${igsm_preset:hard,max_op}.
OmegaConf.register_new_resolver("igsm_preset", lambda name, key: PRESETS[name][key], replace=True)

T = TypeVar("T")


def to_dataclass(schema: type[T], cfg: DictConfig) -> T:
    """Merge `cfg` onto the dataclass `schema` and build it (running its checks)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ValueError(f"config error: {e}") from None


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# The module that defines (and stores) the schema of each command's config, conf/<command>.yaml.
COMMANDS = {
    "pretrain": "pretrain.train",
    "make_data": "pretrain.data",
    "evaluate": "pretrain.evaluate",
    "rur": "pretrain.evaluate",
    "probe": "probes.probe",
    "finetune": "pretrain.finetune",
    "selfcorrect": "pretrain.selfcorrect",
}


def store_schema(command: str, node: Any) -> None:
    """Store `node` (a dataclass, or a dict of them per config group) as `<command>_schema` in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=f"{command}_schema", node=node)


def compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """A shipped config (conf/<config_name>.yaml) composed with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if config_name not in COMMANDS:
        raise ValueError(f"unknown command config {config_name!r}; choose one of {sorted(COMMANDS)}")
    importlib.import_module(COMMANDS[config_name])  # stores the command's schema

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [])


EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def run_command(
    config_name: str, body: Callable[[DictConfig], None], errors: tuple[type[Exception], ...] = EXPECTED_ERRORS
) -> None:
    """Run `body` as a Hydra command over conf/<config_name>.yaml (the command line is Hydra's); an expected error
    (`errors`: a bad value, a missing file) ends the process with `error: <message>` rather than a traceback."""
    import hydra

    @functools.wraps(body)  # Hydra names the job after `body`'s module (train, evaluate, ...)
    def task(cfg: DictConfig) -> None:
        try:
            body(cfg)
        except errors as e:
            sys.exit(f"error: {e}")

    hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)()
