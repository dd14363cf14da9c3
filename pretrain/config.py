"""Hydra configs -> validated dataclasses: unknown keys, wrong types and bad values stop with the key's name."""

from __future__ import annotations

from typing import TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


def to_dataclass(schema: type[T], cfg: DictConfig) -> T:
    """Merge `cfg` onto the dataclass `schema` and build it (running its checks)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ValueError(f"config error: {e}") from None
