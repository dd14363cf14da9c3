"""Config files and dataclasses do not drift apart: the dataclasses are the one home of every default, a yaml file
holds only what differs from them (each key known to the schema), and the schema is what Hydra composes against."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from igsm.dataset import DataConfig
from pretrain.config import COMMANDS, to_dataclass
from pretrain.data import BuildConfig
from pretrain.decode import DecodeConfig
from pretrain.evaluate import EvalConfig
from pretrain.finetune import FinetuneConfig, FinetuneRunConfig
from pretrain.model import ModelConfig
from pretrain.selfcorrect import RLConfig
from pretrain.tokenizer import TokenizerConfig
from pretrain.train import RunConfig, TrainConfig
from probes.probe import ProbeConfig

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "probe": ProbeConfig,
    "finetune": FinetuneConfig,
    "rl": RLConfig,
}
COMMAND_SCHEMAS = {"pretrain": RunConfig, "make_data": BuildConfig, "finetune": FinetuneRunConfig}  # commands whose own keys have a dataclass
PRESETS = [(group, p.stem) for group in GROUPS for p in sorted((CONF / group).glob("*.yaml"))]


def repeats(values: dict, defaults: dict, where: str) -> tuple[list[str], list[str]]:
    """(keys of `values` the schema lacks, keys that only repeat the schema's default), recursing into mappings."""
    unknown, repeated = [], []
    for key, value in values.items():
        path = f"{where}.{key}"
        if key not in defaults:
            unknown.append(path)
        elif isinstance(value, dict) and isinstance(defaults[key], dict):
            u, r = repeats(value, defaults[key], path)
            unknown, repeated = unknown + u, repeated + r
        elif value == defaults[key] and key != "name":  # a preset states its name even when it is the default
            repeated.append(f"{path}={value!r}")
    return unknown, repeated


def schema_defaults(schema: type) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(schema))


@pytest.mark.parametrize("group,option", PRESETS, ids=[f"{g}/{o}" for g, o in PRESETS])
def test_a_preset_holds_only_what_differs_from_its_schema(group, option):
    values = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml")) or {}
    assert "defaults" not in values, f"{group}/{option}.yaml: a preset extends the schema, not another preset"
    unknown, repeated = repeats(values, schema_defaults(GROUPS[group]), group)
    assert not unknown, f"{group}/{option}.yaml: keys {GROUPS[group].__name__} does not have: {unknown}"
    assert not repeated, f"{group}/{option}.yaml repeats defaults of {GROUPS[group].__name__}: {repeated}"


@pytest.mark.parametrize("command", sorted(COMMAND_SCHEMAS))
def test_a_command_config_holds_only_what_differs_from_its_schema(command):
    values = OmegaConf.to_container(OmegaConf.load(CONF / f"{command}.yaml"))
    assert values["defaults"][0] == f"{command}_schema", "the schema comes first, so that everything merges onto it"
    own = {k: v for k, v in values.items() if k not in ("defaults", "hydra")}
    unknown, repeated = repeats(own, schema_defaults(COMMAND_SCHEMAS[command]), command)
    assert not unknown and not repeated, (unknown, repeated)


def test_every_command_config_starts_from_its_schema():
    for command in COMMANDS:
        first = OmegaConf.load(CONF / f"{command}.yaml").defaults[0]
        assert first.endswith("_schema"), f"conf/{command}.yaml lists {first!r} first, not its schema"


def test_composed_defaults_are_the_dataclass_defaults(composer):
    """What a run gets when no preset changes a key is the dataclass default: here the five keys whose yaml and
    dataclass values once differed."""
    run = to_dataclass(RunConfig, composer("pretrain", []))
    assert run.data == DataConfig() and run.model == ModelConfig() and run.tokenizer == TokenizerConfig()
    assert run.train == TrainConfig(steps=100_000)
    assert run.train.num_workers == 12 and run.train.log_every == 50 and run.train.ckpt_every == 5000
    assert run.data.reask_ops == [20] and run.run_name == "med_gpt2-12-12_none0.0_s0"
    ev = to_dataclass(EvalConfig, composer("evaluate", ["checkpoint=x"]).eval)
    assert ev == EvalConfig() and ev.decode.batch_size == DecodeConfig().batch_size == 128


def test_a_key_outside_the_schema_stops_composition(composer):
    with pytest.raises(Exception, match="bogus"):
        composer("pretrain", ["model.bogus=1"])
    with pytest.raises(Exception, match="num_layers"):
        composer("pretrain", ["model.num_layers=4"])


@pytest.mark.parametrize("path", sorted((CONF / "model").glob("gpt2-*.yaml")), ids=lambda p: p.stem)
def test_the_depth_width_grid_files_are_three_lines(path):
    layers, heads = (int(x) for x in path.stem.removeprefix("gpt2-").split("-"))
    model = to_dataclass(ModelConfig, OmegaConf.load(path))
    assert model.name == path.stem and (model.n_layer, model.n_head) == (layers, heads)
    assert len(path.read_text().splitlines()) <= 3
    assert {f.name for f in fields(ModelConfig)} >= set(OmegaConf.load(path))
