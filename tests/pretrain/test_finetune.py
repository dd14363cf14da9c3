"""Finetuning the session's smoke model (tests/conftest.py) on a CPU: LoRA trains only its adapters (of the size the
formula says), saving, loading, merging and exporting keep the logits, a stopped finetune resumes on the same loss
curve, `full` is the pretraining loop started from the checkpoint, evaluation and aggregation read a finetune run
unchanged, and bad input stops with its value named."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

import pretrain.finetune as ft
from pretrain.adapters import AdapterSpec, add_lora, fuse_qkv, split_qkv
from pretrain.checkpoint import load_model
from pretrain.config import to_dataclass
from pretrain.finetune import FinetuneRunConfig, finetune
from pretrain.finetune_export import export

CONF = Path(__file__).resolve().parents[2] / "conf"


def ft_config(composer, checkpoint, out_root, *overrides) -> FinetuneRunConfig:
    cfg = composer("finetune", [f"checkpoint={checkpoint}", "finetune=smoke", f"out_root={out_root}", *overrides])
    return to_dataclass(FinetuneRunConfig, cfg)


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def lora_run(smoke_checkpoint, smoke_out_root, tmp_path_factory):
    """(run dir, the PeftModel as training left it in memory): 4 steps of qv2e4 on retry data."""
    from pretrain.config import compose

    made = []

    def keep(*args, **kwargs):
        made.append(add_lora(*args, **kwargs))
        return made[-1]

    run = tmp_path_factory.mktemp("ft") / "lora"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ft, "add_lora", keep)
        finetune(ft_config(compose, smoke_checkpoint, smoke_out_root, "mistakes=retry0.2"), run)
    return run, made[0].eval()


def test_lora_changes_only_the_adapters(lora_run, smoke_checkpoint):
    run, model = lora_run
    base = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).state_dict()
    trained = fuse_qkv(
        copy.deepcopy(model).unload()
    ).state_dict()  # the base layers as training left them, adapters removed
    assert trained.keys() == base.keys()
    assert all(torch.equal(trained[k], base[k]) for k in base)  # bit-identical
    ckpt = run / "checkpoints" / "step_0000004"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in ckpt.iterdir()}
    assert not (ckpt / "model.safetensors").exists()
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == smoke_checkpoint.resolve()
    config = OmegaConf.load(run / "config.yaml")
    assert config.data.mistakes.kind == "retry" and config.data.name == "smoke" and config.model.name == "smoke+qv2e4"


def test_adapter_records_the_absolute_base_path(smoke_checkpoint, monkeypatch):
    """`checkpoint=runs/...` on the command line: the adapter must still find its base from any directory."""
    monkeypatch.chdir(smoke_checkpoint.parents[1])
    relative = Path(smoke_checkpoint.parent.name) / smoke_checkpoint.name
    model = add_lora(AutoModelForCausalLM.from_pretrained(relative), AdapterSpec.parse("qv2e4"), relative)
    assert model.peft_config["default"].base_model_name_or_path == str(smoke_checkpoint.resolve())


def test_lora_weights_moved(smoke_checkpoint, lora_run):
    _, model = lora_run
    moved = [n for n, p in model.named_parameters() if "lora_B" in n or "lora_embedding_A" in n]
    assert moved and all(p.abs().sum() > 0 for n, p in model.named_parameters() if n in moved)  # they start at 0


@pytest.mark.parametrize("name", ["qv4e8", "qv2e32", "qkv3e5", "v1e1"])
def test_adapter_parameter_count_matches_the_formula(smoke_checkpoint, name):
    model = AutoModelForCausalLM.from_pretrained(smoke_checkpoint)
    c, rows = model.config, model.get_input_embeddings().weight.shape[0]
    spec = AdapterSpec.parse(name)
    peft_model = add_lora(model, spec, smoke_checkpoint)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable == spec.n_params(c.hidden_size, c.num_hidden_layers, rows)
    if name == "qv4e8":  # 2 layers x (q, v) x r (d_in + d_out) + R (vocab rows + d)
        assert trainable == 2 * 2 * 4 * (64 + 64) + 8 * (rows + 64)


def test_split_qkv_keeps_the_outputs(smoke_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).eval()
    ids = torch.arange(40).view(2, 20)
    ref = model(ids).logits
    split_qkv(model)
    attn = model.gpt_neox.layers[0].attention.query_key_value
    assert attn.query.weight.shape == attn.value.weight.shape == (64, 64)
    torch.testing.assert_close(model(ids).logits, ref)
    fused = fuse_qkv(model).state_dict()
    base = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).state_dict()
    assert all(torch.equal(fused[k], base[k]) for k in base)


def test_save_load_merge_and_export_keep_the_logits(lora_run, tmp_path):
    run, model = lora_run
    ckpt = run / "checkpoints" / "step_0000004"
    ids = torch.arange(3, 50).view(1, -1)
    with torch.no_grad():
        trained = model(ids).logits
        loaded = load_model(ckpt, trainable=True).eval()(ids).logits
        merged = load_model(ckpt).eval()
        exported = AutoModelForCausalLM.from_pretrained(export(ckpt, tmp_path / "export")).eval()
        assert type(merged).__name__ == "GPTNeoXForCausalLM" and not merged.config.tie_word_embeddings
        torch.testing.assert_close(loaded, trained, rtol=0, atol=0)
        torch.testing.assert_close(merged(ids).logits, trained, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(exported(ids).logits, trained, rtol=1e-5, atol=1e-5)
    assert OmegaConf.load(tmp_path / "export" / "run_config.yaml").model.name == "smoke+qv2e4"


def test_a_stopped_finetune_resumes_on_the_same_loss_curve(
    lora_run, composer, smoke_checkpoint, smoke_out_root, tmp_path
):
    straight, _ = lora_run
    args = (composer, smoke_checkpoint, smoke_out_root, "mistakes=retry0.2")
    finetune(ft_config(*args, "finetune.train.stop_at=2"), tmp_path / "run")
    with pytest.raises(FileExistsError, match="train.resume=true"):
        finetune(ft_config(*args), tmp_path / "run")
    finetune(ft_config(*args, "finetune.train.resume=true"), tmp_path / "run")
    assert losses(tmp_path / "run") == losses(straight)


def test_full_is_the_pretraining_loop_from_the_checkpoint(composer, smoke_checkpoint, smoke_out_root, tmp_path):
    """`full` = `pretrain.train` with the pretraining command's config for the same data and recipe, its first model
    the checkpoint's weights (fresh optimizer and schedule): the same losses, step for step; every weight moves."""
    from pretrain.train import RunConfig, train

    cfg = ft_config(composer, smoke_checkpoint, smoke_out_root, "mistakes=retry0.2", "finetune.method=full")
    finetune(cfg, tmp_path / "full")
    recipe = [
        f"train.{k}={v}"
        for k, v in OmegaConf.to_container(OmegaConf.load(CONF / "finetune/smoke.yaml"))["train"].items()
    ]
    pre = composer(
        "pretrain", ["+experiment=smoke", "+mistakes=retry0.2", f"out_root={smoke_out_root}", "train.lr=0.001", *recipe]
    )
    train(
        to_dataclass(RunConfig, pre),
        tmp_path / "pre",
        init=lambda tok: AutoModelForCausalLM.from_pretrained(smoke_checkpoint),
    )
    assert losses(tmp_path / "full") == losses(tmp_path / "pre") and len(losses(tmp_path / "full")) == 4
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "checkpoints" / "step_0000004").state_dict()
    before = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).state_dict()
    assert not any(torch.equal(after[k], before[k]) for k in before if k.endswith("weight"))


def test_evaluate_and_aggregate_read_a_finetune_run(lora_run):
    from igsm.dataset import DataConfig
    from pretrain.aggregate import aggregate
    from pretrain.decode import DecodeConfig
    from pretrain.evaluate import EvalConfig, checkpoint_data, checkpoint_roles, evaluate_model, load_checkpoint, report

    run, _ = lora_run
    ckpt = run / "checkpoints" / "step_0000004"
    model, tok, config = load_checkpoint(ckpt, "cpu")
    data = to_dataclass(DataConfig, checkpoint_data(None, config, ckpt))
    ev = EvalConfig(name="tiny", n=2, splits=["test_op4"], decode=DecodeConfig(max_length=200))
    summary, records = evaluate_model(model, tok, checkpoint_roles(tok, config, ckpt), data, ev, progress=False)
    report(str(ckpt), ev, data, summary, records)
    (row,) = aggregate(run.parent)["rows"]
    assert row["model"] == "smoke+qv2e4" and row["data"] == "retry0.2" and row["runs"] == {"4": 1}
    assert row["finetune"] == "qv2e4" and "smoke+qv2e4" in row["label"]


def test_a_finetune_row_never_shows_a_pretraining_number():
    from pretrain.aggregate import paper_value

    entries = [{"setting": "med", "data": "retry0.2", "decoding": "greedy", "accuracy": {"23": 80.0}}]
    assert paper_value(entries, "med", "retry0.2", "23", "greedy") == 80.0  # pretrained on retry0.2
    assert paper_value(entries, "med", "retry0.2", "23", "greedy", finetune="qv4e8") is None


def test_the_med_grid_has_the_papers_fig7_numbers_beside_it():
    from pretrain.aggregate import paper_value, published

    grid = OmegaConf.load(CONF / "experiment" / "finetune_grid_med.yaml").hydra.sweeper.params
    for method in grid["finetune.method"].split(","):
        for tag in grid["mistakes"].split(","):
            assert paper_value(published(), "med", tag, "op<=15", None, finetune=method) is not None, (method, tag)
    assert paper_value(published(), "med", "retry0.2", "23", None, finetune="qv4e8") == 63.3  # P22 Fig. 7


def test_bad_input_names_the_value(composer, smoke_checkpoint, smoke_out_root, lora_run, tmp_path):
    for method, words in (("qv0e8", "ranks must be >= 1"), ("qx4e8", "does not exist"), ("lora", "no adapter name")):
        with pytest.raises(ValueError, match=f"{method}.*{words}"):
            ft_config(composer, smoke_checkpoint, smoke_out_root, f"finetune.method={method}")
    run = lambda ckpt: finetune(ft_config(composer, ckpt, smoke_out_root), tmp_path / "run")  # noqa: E731
    with pytest.raises(FileNotFoundError, match="no config.json"):
        run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="is a LoRA adapter: merge it first"):
        run(lora_run[0] / "checkpoints" / "step_0000004")
    bare = tmp_path / "bare"  # a GPT-NeoX save_pretrained folder with no run config: not ours
    AutoModelForCausalLM.from_pretrained(smoke_checkpoint).save_pretrained(bare)
    with pytest.raises(ValueError, match=f"checkpoint={bare} is not a checkpoint of ours"):
        run(bare)
    gpt2 = tmp_path / "gpt2"
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=1, vocab_size=16)).save_pretrained(gpt2)
    with pytest.raises(ValueError, match="'gpt2' model, not one of ours"):
        run(gpt2)
    small = tmp_path / "run0" / "checkpoints" / "step_0000030"  # its tokenizer has ids the model cannot embed
    shutil.copytree(smoke_checkpoint.parent.parent, tmp_path / "run0", ignore=shutil.ignore_patterns("eval", "probes"))
    model = AutoModelForCausalLM.from_pretrained(smoke_checkpoint)
    model.resize_token_embeddings(100)
    model.save_pretrained(small)
    with pytest.raises(ValueError, match=f"checkpoint={small}: its tokenizer does not fit"):
        run(small)


def test_a_run_from_before_an_optional_role_keeps_its_own_roles(composer, smoke_checkpoint, smoke_out_root, tmp_path):
    """A checkpoint whose run config lists only the four roles of its time (no `retry`) finetunes with exactly those:
    today's role defaults must not be merged in (its tokenizer may lack the newer token)."""
    old = tmp_path / "old"
    shutil.copytree(smoke_checkpoint.parent.parent, old, ignore=shutil.ignore_patterns("eval", "probes"))
    cfg = OmegaConf.load(old / "config.yaml")
    del cfg.tokenizer.roles["retry"]
    OmegaConf.save(cfg, old / "config.yaml")
    checkpoint = old / "checkpoints" / smoke_checkpoint.name
    run = ft.run_config_for(ft_config(composer, checkpoint, smoke_out_root))
    assert run.tokenizer.roles == OmegaConf.to_container(cfg.tokenizer.roles)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("finetune_*.yaml")))
def test_every_finetune_experiment_composes(composer, name):
    cfg = composer(
        "finetune",
        [f"+experiment={name}", "checkpoint=x"],
    )
    assert to_dataclass(FinetuneRunConfig, cfg).finetune.train.total_steps > 0


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_make_target_of_the_grid_composes(composer):
    import shlex
    import subprocess

    r = subprocess.run(
        ["make", "-n", "--no-print-directory", "cpu-finetune-grid", "EXP=smoke", "FT_ARGS=finetune=smoke"],
        cwd=CONF.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = [x for x in r.stdout.splitlines() if "-m pretrain.finetune" in x]
    words = shlex.split(line.replace("$(cat runs/cpu/smoke/checkpoints/latest)", "NEWEST"))
    overrides = [w for w in words[3:] if not w.startswith(("-m", "hydra."))]
    assert "checkpoint=runs/cpu/smoke/checkpoints/NEWEST" in overrides
    assert to_dataclass(FinetuneRunConfig, composer("finetune", overrides)).finetune.name == "smoke"
