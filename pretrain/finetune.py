"""Finetuning a checkpoint of ours (Part 2.2 §5, Result 7): LoRA adapters or every weight, on the data machinery and
with the training loop of pretraining.

    python -m pretrain.finetune checkpoint=<ckpt> mistakes=retry0.2                      # LoRA qv8e16, med recipe
    python -m pretrain.finetune checkpoint=<ckpt> mistakes=retry0.2 finetune.method=full  # continued pretraining
    python -m pretrain.finetune checkpoint=<ckpt> finetune=laptop finetune.method=qv4e8 mistakes=retry0.5-maskname
    python -m pretrain.finetune -m +experiment=finetune_grid_laptop checkpoint=<ckpt>    # P22 Fig. 7, laptop scale
    python -m pretrain.finetune checkpoint=<ckpt> ... finetune.train.resume=true        # continue a stopped run

The checkpoint's run config gives the data world, the tokenizer (the checkpoint's own) and its roles, and the model;
the `mistakes` group (default: clean), `data.mistakes.*` and `+data.<key>=...` change the data; the `finetune` group
(conf/finetune/) gives the method and the training recipe, with a fresh optimizer and schedule. A finetune is a run like any other (`pretrain.train.train` with the checkpoint as
its first model): runs/<run_name> with config.yaml, metrics.jsonl and checkpoints that `pretrain.evaluate`,
`probes.*` and `pretrain.aggregate` read unchanged. A LoRA run's checkpoints hold peft adapters naming their base
checkpoint; `python -m pretrain.finetune_export <ckpt> <out>` writes the merged model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from igsm.dataset import DataConfig
from pretrain.adapters import AdapterSpec, add_lora, is_adapter
from pretrain.config import run_command, store_schema, to_dataclass
from pretrain.model import MODEL_TYPES, ModelConfig, check_vocab
from pretrain.tokenizer import TokenizerConfig, resolve_roles
from pretrain.train import RunConfig, TrainConfig

FULL = "full"


def _med_recipe() -> TrainConfig:
    # P22 App. D.3: same AdamW betas and cosine schedule as pretraining, lr 0.001, wd 0.05, batch 256, context 768,
    # 200k steps (the pretraining tokens)
    return TrainConfig(steps=200_000, lr=1e-3, batch_size=256)


@dataclass
class FinetuneConfig:
    """A finetune (conf/finetune/): the method and its training recipe. The defaults are the paper's iGSM-med LoRA
    (P22 App. D.3; ../shared/paper-notes.md §2.2-H)."""

    name: str = "med"
    # full: every weight trains (continued pretraining), with a fresh optimizer and schedule from `train`; or a
    # LoRA adapter by the paper's name, qv<r>e<R>: rank r on the query and value projections, rank R on the input
    # embedding (the paper's grid qv4e8 ... qv256e512; letters q, k, v pick the projections)
    method: str = "qv8e16"
    train: TrainConfig = field(default_factory=_med_recipe)

    def __post_init__(self) -> None:
        if self.method != FULL:
            self.adapter  # noqa: B018 -- parses the name, failing on a bad one

    @property
    def adapter(self) -> AdapterSpec | None:
        return None if self.method == FULL else AdapterSpec.parse(self.method)


@dataclass
class FinetuneRunConfig:
    """`python -m pretrain.finetune` (conf/finetune.yaml)."""

    checkpoint: str = MISSING  # a checkpoint of pretrain.train, of a full finetune, or a LoRA one merged by finetune_export
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # changes to the checkpoint's data config: the mistakes group, data.mistakes.*, +data.<key>=<value>
    data: dict[str, Any] = field(default_factory=dict)
    out_root: str = "data"  # saved datasets (train.source=dataset) are cached here
    run_name: str = (
        "ft_${finetune.name}_${finetune.method}_${data.mistakes.kind}${data.mistakes.rate}"
        "-mask${oc.select:data.mistakes.mask,none}_s${finetune.train.seed}"
    )
    sweep_name: str = "finetune"  # multirun: runs/sweeps/<sweep_name>/<run_name>


store_schema("finetune", FinetuneRunConfig)


def base_config(checkpoint: str | Path):
    """The run config of `checkpoint`, failing unless it is a checkpoint of ours (GPT-NeoX, with its run config)."""
    import json

    from pretrain.checkpoint import run_config

    path = Path(checkpoint)
    if is_adapter(path):
        raise ValueError(
            f"checkpoint={checkpoint} is a LoRA adapter: merge it first (python -m pretrain.finetune_export "
            f"{checkpoint} <out>) and finetune the export"
        )
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"checkpoint={checkpoint}: not a save_pretrained checkpoint (no config.json)")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"checkpoint={checkpoint} is a {model_type!r} model, not one of ours ({', '.join(MODEL_TYPES)})")
    cfg = run_config(path)
    if cfg is None or OmegaConf.select(cfg, "tokenizer.roles") is None:
        raise ValueError(
            f"checkpoint={checkpoint} is not a checkpoint of ours: no run config with tokenizer.roles (<run>/config.yaml "
            "beside <run>/checkpoints/, or its training state)"
        )
    return cfg


def run_config_for(cfg: FinetuneRunConfig) -> RunConfig:
    """The pretraining RunConfig of the finetune: the checkpoint's world, tokenizer (its own files) and model, the
    finetune's data changes and training recipe."""
    base = base_config(cfg.checkpoint)
    data = to_dataclass(DataConfig, OmegaConf.merge(base.data, cfg.data))
    tokenizer = to_dataclass(TokenizerConfig, base.tokenizer)
    # the roles exactly as the run had them: merged with today's defaults, a run from before an optional role
    # (retry) would gain a token its tokenizer lacks
    roles = OmegaConf.to_container(base.tokenizer.roles, resolve=True)
    model = to_dataclass(ModelConfig, base.model)
    return RunConfig(
        data=data,
        tokenizer=replace(tokenizer, path=str(Path(cfg.checkpoint).resolve()), roles=roles),
        model=replace(model, name=f"{model.name}+{cfg.finetune.method}"),  # aggregate's rows tell methods apart
        train=cfg.finetune.train,
        out_root=cfg.out_root,
        run_name=cfg.run_name,
        sweep_name=cfg.sweep_name,
    )


def first_model(cfg: FinetuneRunConfig, roles: dict):
    """`init` for the training loop: the checkpoint's model, with LoRA adapters unless the method is full."""

    def init(tokenizer):
        from pretrain.checkpoint import load_model

        model = load_model(cfg.checkpoint)
        try:
            check_vocab(model, len(tokenizer))
            resolve_roles(tokenizer, roles)
        except ValueError as e:
            raise ValueError(f"checkpoint={cfg.checkpoint}: its tokenizer does not fit its model or roles: {e}") from e
        spec = cfg.finetune.adapter
        return model if spec is None else add_lora(model, spec, cfg.checkpoint)

    return init


def finetune(cfg: FinetuneRunConfig, run_dir: Path) -> dict:
    """Finetune `cfg.checkpoint` in `run_dir` (resuming if `finetune.train.resume`); returns the final metrics."""
    from pretrain.checkpoint import latest_checkpoint
    from pretrain.train import train

    if latest_checkpoint(run_dir) and not cfg.finetune.train.resume:
        raise FileExistsError(
            f"{run_dir} already has checkpoints: add finetune.train.resume=true, or choose another run_name"
        )
    run = run_config_for(cfg)
    resolved = OmegaConf.to_yaml(
        {**asdict(run), "finetune": {**asdict(cfg.finetune), "checkpoint": str(Path(cfg.checkpoint).resolve())}}
    )
    return train(run, run_dir, resolved, init=first_model(cfg, run.tokenizer.roles))


def command(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from pretrain.distributed import teardown_distributed

    try:
        finetune(to_dataclass(FinetuneRunConfig, cfg), Path(HydraConfig.get().runtime.output_dir))
    finally:
        teardown_distributed()


def main() -> None:
    from pretrain.finetune import command as task  # by name, for the launcher plugins (see pretrain.train.main)

    run_command("finetune", task, errors=(ValueError, FileExistsError, FileNotFoundError))


if __name__ == "__main__":
    main()
