"""Two-attempt self-correction (SCoRe): the pieces against hand-computed values, RL on a planted reward, Stage I's
anchor on the first attempt, the metrics on hand-made cases, bad input, and the command in smoke mode."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from pretrain.config import to_dataclass
from pretrain.decode import DecodeConfig
from pretrain.model import ModelConfig, build_model
from pretrain.score import (
    Rollout,
    edit_distance,
    pair_sft_pairs,
    rloo_advantages,
    stage_terms,
    star_pairs,
    token_kl,
    two_attempt_metrics,
)
from pretrain.selfcorrect import RLConfig, check_format, rl_step, sft_step
from pretrain.tokenizer import Roles, second_prompt

TOY = Roles(begin_problem=1, begin_solution=2, begin_answer=3, end=0, retry=4)


def test_rloo_advantage_is_the_reward_minus_the_others_mean():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    a = rloo_advantages(r)
    # sample 0: 1 - (0 + 0 + 1) / 3; sample 1: 0 - (1 + 0 + 1) / 3
    assert a[0].tolist() == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    assert a[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"k >= 2.*\(3, 1\)"):
        rloo_advantages(torch.ones(3, 1))


def test_the_kl_is_exact_over_the_vocabulary():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert token_kl(p.log(), q.log()).item() == pytest.approx(expected, abs=1e-6)
    assert token_kl(torch.randn(3, 5) + 7, torch.randn(3, 5)).shape == (3,)
    same = torch.randn(4, 9)
    assert token_kl(same, same + 3.0).abs().max().item() < 1e-5  # a shift of the logits is the same distribution


def test_stage_terms_put_rewards_and_kl_weights_on_the_right_attempt():
    r1 = torch.tensor([[0.0, 1.0, 1.0, 0.0]])  # i->c, c->c, c->i, i->i
    r2 = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    a1, a2, k1, k2 = stage_terms("I", r1, r2, alpha=10, beta1=0.01, beta2=0.1)
    assert a1.tolist() == [0, 0, 0, 0] and a2.tolist() == pytest.approx(rloo_advantages(r2).flatten().tolist())
    assert (k1, k2) == (0.1, 0.01)
    a1, a2, k1, k2 = stage_terms("II", r1, r2, alpha=10, beta1=0.01, beta2=0.1)
    shaped = torch.tensor([[11.0, 1.0, -10.0, 0.0]])  # r2 + 10 (r2 - r1)
    assert a2.tolist() == pytest.approx(rloo_advantages(shaped).flatten().tolist())
    assert a1.tolist() == pytest.approx(rloo_advantages(r1).flatten().tolist()) and (k1, k2) == (0.01, 0.01)
    with pytest.raises(ValueError, match=r"beta1 must be >= 0, got -0.5"):
        stage_terms("II", r1, r2, alpha=10, beta1=-0.5, beta2=0.1)
    with pytest.raises(ValueError, match="'III'"):
        stage_terms("III", r1, r2, 10, 0.01, 0.1)


def test_two_attempt_metrics_on_hand_made_cases():
    rows = [
        {"correct1": False, "correct2": True, "first": "a b c", "second": "a b d"},  # i -> c, one word of three
        {"correct1": True, "correct2": False, "first": "a b", "second": "x y"},  # c -> i, all changed
        {"correct1": True, "correct2": True, "first": "a b c d", "second": "a b c d"},  # unchanged
        {"correct1": False, "correct2": False, "first": "a", "second": "a"},  # unchanged, wrong twice
    ]
    m = two_attempt_metrics(rows)
    assert m["acc_t1"] == 0.5 and m["acc_t2"] == 0.5 and m["delta"] == 0.0
    assert m["delta_i_to_c"] == 0.25 and m["delta_c_to_i"] == 0.25 and m["unchanged"] == 0.5
    assert m["edit_distance"] == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)
    assert edit_distance("kitten", "sitting") == 3 and edit_distance([], [1, 2]) == 2


def test_the_sft_baselines_keep_the_right_pairs():
    r = Rollout(k=3, prompts=[[9]] * 3 + [[8]] * 3, first=[[1], [2], [3], [4], [5], [6]], second=[[7]] * 6)
    r1 = [0, 1, 0, 0, 0, 0]
    # Pair-SFT: each wrong first attempt of prompt 9 with its right one; prompt 8 has none right
    assert pair_sft_pairs(r, r1) == [([9, 1], [2]), ([9, 3], [2])]
    r2 = [1, 1, 0, 0, 1, 0]  # STaR keeps wrong-then-right only: rows 0 and 4
    assert star_pairs(r, r1, r2) == [([9, 1], [7]), ([8, 5], [7])]


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match=r"rl.k must be >= 2.*got 1"):
        RLConfig(k=1)
    with pytest.raises(ValueError, match=r"rl.beta2 must be >= 0, got -0.1"):
        RLConfig(beta2=-0.1)
    with pytest.raises(ValueError, match=r"rl.stages.*'III'"):
        RLConfig(stages=["I", "III"])
    no_retry = Roles(1, 2, 3, 0)
    with pytest.raises(ValueError, match=r"old_run.*'retry'"):
        check_format(None, no_retry, "old_run")
    with pytest.raises(ValueError, match="retry"):
        second_prompt(no_retry, [0, 1, 2])
    assert second_prompt(TOY, [0, 1, 5, 2, 7]) == [0, 1, 5, 2, 7, 0, 4]  # closed with <end>, then <retry>
    assert second_prompt(TOY, [0, 1, 5, 2, 7, 0]) == [0, 1, 5, 2, 7, 0, 4]


# ---- RL on a toy: a planted reward, Stage I's anchor ----------------------------------------------------------------
PLANTED = set(range(8, 16))  # y2 earns 1 only when it starts with one of these 8 of 64 tokens


def planted(i: int, y1: list[int], y2: list[int]) -> tuple[float, float]:
    return float(bool(y1) and y1[0] in PLANTED), float(bool(y2) and y2[0] in PLANTED)


@torch.no_grad()
def first_token_dists(model, prompt: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token log-probabilities for y1's first token, and for y2's first token after a fixed y1."""
    ctx1 = torch.tensor([prompt])
    ctx2 = torch.tensor([second_prompt(TOY, [*prompt, 20, 21, 0])])
    return (
        torch.log_softmax(model(input_ids=ctx1).logits[0, -1], -1),
        torch.log_softmax(model(input_ids=ctx2).logits[0, -1], -1),
    )


@pytest.fixture
def one_thread():
    """The toy's tensors are tiny: one thread is fastest, and keeps them fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_toy(beta2: float, steps: int = 40):
    """A one-layer model trained `steps` Stage-I steps on the planted reward: (reference, policy, step rows)."""
    torch.manual_seed(0)
    model = ModelConfig(name="toy", n_layer=1, n_head=2, head_dim=16, max_positions=64)
    ref, policy = build_model(model, 16).eval(), build_model(model, 16)
    policy.load_state_dict(ref.state_dict())
    cfg = RLConfig(k=8, prompts_per_step=8, max_new_tokens=2, lr=3e-3, micro_batch_size=64, beta2=beta2)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    rows = [rl_step(policy, ref, optimizer, TOY_PROMPTS, planted, "I", cfg, TOY, generator) for _ in range(steps)]
    return ref, policy.eval(), rows


TOY_PROMPTS = [[0, 1, 5 + i, 2] for i in range(8)]


def first_attempt_kls(policy, ref) -> tuple[float, float]:
    """Mean exact KL to the reference of y1's and of y2's first token over the toy prompts."""
    kl1 = kl2 = 0.0
    for prompt in TOY_PROMPTS:
        (p1, p2), (q1, q2) = first_token_dists(policy, prompt), first_token_dists(ref, prompt)
        kl1 += token_kl(p1, q1).item() / len(TOY_PROMPTS)
        kl2 += token_kl(p2, q2).item() / len(TOY_PROMPTS)
    return kl1, kl2


@pytest.fixture(scope="module")
def toy_stage_one():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_toy(beta2=0.1)
    finally:
        torch.set_num_threads(threads)


def test_rl_raises_a_planted_reward_only_the_behaviour_earns(toy_stage_one):
    ref, policy, rows = toy_stage_one
    start = sum(r["acc_t2"] for r in rows[:3]) / 3
    end = sum(r["acc_t2"] for r in rows[-3:]) / 3
    assert start < 0.3 and end > 0.8, (start, end)
    _, y2 = first_token_dists(policy, TOY_PROMPTS[0])
    assert y2.exp()[list(PLANTED)].sum() > 0.8


def test_stage_one_keeps_the_first_attempt_close_to_the_reference(toy_stage_one, one_thread):
    """Measured: beta2 = 0.1 leaves y1's KL near 0.01 while y2's grows past 1; without beta2 y1 drifts as far
    as y2 (the attempts share their weights)."""
    ref, policy, _ = toy_stage_one
    kl1, kl2 = first_attempt_kls(policy, ref)
    assert kl1 < 0.05 and kl2 > 20 * kl1, (kl1, kl2)
    ref, unanchored, _ = train_toy(beta2=0.0)
    drift, _ = first_attempt_kls(unanchored, ref)
    assert drift > 10 * kl1, (drift, kl1)


@pytest.mark.parametrize("method", ["star", "pair_sft"])
def test_the_sft_baselines_learn_the_planted_second_attempt(method, one_thread):
    """STaR (wrong-then-right samples of the base model) and Pair-SFT (a wrong first attempt paired with a right
    one) both teach y2 to start with a planted token: measured 0.13 -> 0.38 / 0.44 in 20 steps."""
    torch.manual_seed(0)
    model = ModelConfig(name="toy", n_layer=1, n_head=2, head_dim=16, max_positions=64)
    ref, policy = build_model(model, 16).eval(), build_model(model, 16)
    policy.load_state_dict(ref.state_dict())
    cfg = RLConfig(method=method, k=8, prompts_per_step=8, max_new_tokens=2, lr=3e-3, micro_batch_size=64)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)

    def share() -> float:
        return first_token_dists(policy, TOY_PROMPTS[0])[1].exp()[list(PLANTED)].sum().item()

    before = share()
    rows = [sft_step(policy, ref, optimizer, TOY_PROMPTS, planted, cfg, TOY, generator) for _ in range(20)]
    assert before < 0.2 and share() > 0.3, (before, share())
    assert all(r["pairs"] > 0 for r in rows) and rows[0]["stage"] == method


# ---- the command in smoke mode --------------------------------------------------------------------------------------
def test_selfcorrect_smoke_runs_and_resumes(composer, smoke_checkpoint, tmp_path, one_thread):
    from omegaconf import OmegaConf

    from pretrain.evaluate import checkpoint_roles
    from pretrain.selfcorrect import train
    from pretrain.tokenizer import load_tokenizer

    cfg = composer("selfcorrect", [f"checkpoint={smoke_checkpoint}", "rl=smoke"])
    rl = to_dataclass(RLConfig, cfg.rl)
    assert (rl.k, rl.alpha, rl.beta1, rl.beta2, rl.temperature) == (2, 10.0, 0.01, 0.1, 1.0)
    run = tmp_path / "rl"
    final = train(rl, cfg.checkpoint, None, run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "eval" not in r]
    assert [r["stage"] for r in steps] == ["I", "I", "II", "II"]
    assert all({"reward", "kl_t1", "kl_t2", "acc_t1", "acc_t2"} <= set(r) for r in steps)
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in evals] == [0, 4] and set(evals[0]["eval"]) == {"test_op4", "test_op6"}
    generations = [json.loads(x) for x in (run / "generations" / "step_0000004.jsonl").read_text().splitlines()]
    assert len(generations) == 2 * rl.eval_n and {"solution1", "solution2", "correct1", "correct2"} <= set(
        generations[0]
    )
    assert {"acc_t1", "acc_t2", "delta_i_to_c", "delta_c_to_i", "unchanged", "edit_distance"} <= set(
        final["eval"]["test_op4"]
    )
    # the run's checkpoints read like any run's: the base run's roles and data
    ckpt = run / "checkpoints" / "step_0000004"
    run_cfg = OmegaConf.load(run / "config.yaml")
    assert checkpoint_roles(load_tokenizer(ckpt), run_cfg, ckpt).retry is not None
    with pytest.raises(FileExistsError, match="rl.resume"):
        train(rl, cfg.checkpoint, None, run)
    longer = {"stages": ["I", "II", "II"], "eval_every": 100}  # steps 5-6 are one more Stage-II "stage"
    train(to_dataclass(RLConfig, OmegaConf.merge(cfg.rl, {**longer, "resume": True})), cfg.checkpoint, None, run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval" not in r] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["step"] == 6 and "eval" in rows[-1]  # the last step is evaluated
    # resuming continues exactly: the same samples, rewards and KL as one uninterrupted run
    train(to_dataclass(RLConfig, OmegaConf.merge(cfg.rl, longer)), cfg.checkpoint, None, tmp_path / "straight")
    straight = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    keys = ("step", "stage", "acc_t1", "acc_t2", "kl_t1", "kl_t2", "tokens_t1", "tokens_t2", "tokens_prompt")
    assert [[r[k] for k in keys] for r in straight if "eval" not in r] == [
        [r[k] for k in keys] for r in rows if "eval" not in r
    ]


def test_two_attempt_decoding_config_is_sampling():
    cfg = RLConfig().sampling()
    assert cfg == DecodeConfig(mode="sample", temperature=1.0, batch_size=128, max_new_tokens=512)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_targets_compose(composer):
    r = subprocess.run(
        ["make", "-n", "--no-print-directory", "cpu-selfcorrect", "EXP=smoke", "RL_ARGS=rl=smoke"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    newest = re.compile(r"\$\(cat [^)]*\)")  # the newest checkpoint's name, known once trained
    lines = [shlex.split(newest.sub("NEWEST", x)) for x in r.stdout.splitlines() if " -m pretrain.selfcorrect " in x]
    methods = []
    for words in lines:
        overrides = [w for w in words[3:] if not w.startswith("hydra.")]
        methods.append(to_dataclass(RLConfig, composer("selfcorrect", overrides).rl).method)
    assert methods == ["score", "star", "pair_sft"]
    assert r.stdout.splitlines()[-1].split()[-2:] == ["pretrain.selfcorrect_summary", "runs/cpu/smoke/selfcorrect"]


def test_the_summary_tables_the_base_model_and_each_method(tmp_path):
    from pretrain.selfcorrect_summary import main, summarize

    def metrics(acc1: float, acc2: float) -> dict:
        return {"test_op4": {"n": 8, **two_attempt_metrics(rows(acc1, acc2))}}

    def rows(acc1: float, acc2: float) -> list[dict]:
        return [{"correct1": i < 8 * acc1, "correct2": i < 8 * acc2, "first": "a", "second": "a"} for i in range(8)]

    for name, method, after in (("score", "score", (0.25, 0.5)), ("star", "star", (0.25, 0.25))):
        (tmp_path / name).mkdir()
        final = {"rl": asdict(RLConfig(method=method)), "steps": 4, "base_checkpoint": "base/step_1"}
        final |= {"eval_start": metrics(0.25, 0.25), "eval": metrics(*after)}
        (tmp_path / name / "final.json").write_text(json.dumps(final))
    (tmp_path / "pretraining").mkdir()
    (tmp_path / "pretraining" / "final.json").write_text(json.dumps({"loss": 1.0}))  # not a self-correction run
    table = summarize(tmp_path)
    assert [r["method"] for r in table["rows"]] == ["base", "score I/II", "star"]
    assert [r["splits"]["test_op4"]["delta"] for r in table["rows"]] == [0.0, 0.25, 0.0]
    main([str(tmp_path)])
    row = "| score I/II | 4 | 8 | 25.0 (7.1-59.1) | 50.0 (21.5-78.5) | +25.0 (p 0.5) | 25.0 | 0.0 | 100.0 |"
    assert row in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "summary.png").exists()
    final["base_checkpoint"] = "another/step_1"
    (tmp_path / "star" / "final.json").write_text(json.dumps(final))
    with pytest.raises(ValueError, match="several base checkpoints"):
        summarize(tmp_path)
    with pytest.raises(FileNotFoundError, match="no self-correction runs"):
        summarize(tmp_path / "pretraining")


def test_the_laptop_base_model_experiment_composes(composer):
    from pretrain.train import RunConfig

    run = to_dataclass(RunConfig, composer("pretrain", ["+experiment=laptop_two_attempts"]))
    assert run.data.two_attempts == 0.05 and run.data.name == "laptop" and run.data.symbols == "ordered"
    assert run.model.name == "laptop_canon" and run.model.canon_kernel == 12 and run.train.doc_mask  # L5's recipe
    assert run.train.steps == 1000
    assert run.run_name == "laptop_laptop_canon_two_attempts0.05_s0"  # the README's commands name this run
