"""Decoding and evaluation: batched greedy equals one-by-one greedy, the verifier decides what counts, the command
writes its files, and a sweep aggregates into the papers' table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from igsm.dataset import DataConfig, MistakeConfig, make_example
from pretrain.aggregate import aggregate, markdown
from pretrain.aggregate import main as aggregate_main
from pretrain.decode import DecodeConfig, decode_batch, generate, split_generation
from pretrain.evaluate import judge, mcnemar_p, summarize, wilson
from pretrain.tokenizer import SPECIAL_TOKENS, load_tokenizer, prompt_ids, resolve_roles

REPO = Path(__file__).resolve().parents[2]
SMOKE = DataConfig(name="smoke", max_op=4, max_edge=6, test_ops=[4, 6], train_size=0, test_size=8)


@pytest.fixture(scope="module")
def model_and_tok(smoke_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).eval()
    tok = load_tokenizer(smoke_checkpoint)
    return model, tok, resolve_roles(tok, SPECIAL_TOKENS)


def prompts(tok, roles, n=6):
    exs = [make_example(SMOKE, "test_op6", i) for i in range(n)]
    return [prompt_ids(tok, roles, e["prompt"]) for e in exs]


def test_batched_greedy_equals_one_by_one(model_and_tok):
    model, tok, roles = model_and_tok
    ps = prompts(tok, roles)
    assert len({len(p) for p in ps}) > 1  # different lengths: the batch is really padded
    cfg = DecodeConfig(max_length=max(len(p) for p in ps) + 40)
    together = decode_batch(model, ps, roles.end, cfg)
    alone = [decode_batch(model, [p], roles.end, cfg)[0] for p in ps]
    assert together == alone
    # the same through generate(), which sorts by length and batches
    assert generate(model, ps, roles, DecodeConfig(max_length=cfg.max_length, batch_size=4)) == together
    # and greedy is what transformers' own greedy search gives, token for token
    ids = torch.tensor([ps[0]])
    ref = model.generate(
        ids, do_sample=False, max_new_tokens=cfg.max_length - len(ps[0]), eos_token_id=roles.end, pad_token_id=roles.end
    )[0, len(ps[0]) :].tolist()
    assert ref == together[0]


def test_sampling_and_beams(model_and_tok):
    model, tok, roles = model_and_tok
    ps = prompts(tok, roles, 3)
    cfg = DecodeConfig(mode="sample", max_length=max(len(p) for p in ps) + 30, seed=1)
    a, b = generate(model, ps, roles, cfg), generate(model, ps, roles, cfg)
    assert a == b and a != generate(model, ps, roles, DecodeConfig(mode="greedy", max_length=cfg.max_length))
    assert a != generate(model, ps, roles, DecodeConfig(mode="sample", max_length=cfg.max_length, seed=2))
    beam = generate(model, ps, roles, DecodeConfig(mode="beam", num_beams=2, max_length=cfg.max_length))
    assert len(beam) == 3 and all(len(x) > 0 for x in beam)
    nucleus = generate(model, ps, roles, DecodeConfig(mode="sample", top_p=0.5, max_length=cfg.max_length))
    assert all(len(x) > 0 for x in nucleus)
    with pytest.raises(ValueError, match="decode.mode"):
        DecodeConfig(mode="nucleus")


def test_split_generation(model_and_tok):
    _, tok, roles = model_and_tok
    sol = tok(" Define x as a; so a = 3.", add_special_tokens=False).input_ids
    ans = tok(" 3", add_special_tokens=False).input_ids
    assert split_generation(tok, [*sol, roles.begin_answer, *ans, roles.end], roles) == (
        "Define x as a; so a = 3.",
        " 3",
    )
    assert split_generation(tok, sol, roles) == ("Define x as a; so a = 3.", None)


def test_the_verifier_decides_what_counts():
    cfg = DataConfig(mistakes=MistakeConfig("retry", 0.5))
    rows = []
    for i in range(10):
        e = make_example(cfg, "train", i)
        good = judge(e, e["solution"], f" {e['answer']}")  # with its BACK steps, still right
        assert good["correct"] and good["answer_correct"] and good["n_back"] == e["n_mistakes"]
        wrong_number = judge(e, e["solution"][:-2] + str((int(e["solution"][-2]) + 1) % 10) + ".", f" {e['answer']}")
        wrong_answer = judge(e, e["solution"], f" {(e['answer'] + 1) % 23}")
        no_answer = judge(e, e["solution"], None)
        for bad in (wrong_number, wrong_answer, no_answer):
            assert not bad["correct"]
        assert wrong_answer["error_kinds"] == ["wrong_answer"] and not wrong_answer["answer_correct"]
        rows += [
            dict(good, op=e["op"], generated_tokens=1, finished=True),
            dict(wrong_answer, op=e["op"], generated_tokens=1, finished=True),
        ]
    s = summarize(rows)
    assert s["n"] == 20 and s["accuracy"] == 0.5 and s["error_kinds"] == {"wrong_answer": 10}
    assert s["back_per_correct"] == s["back_per_wrong"] > 0


def test_roles_come_from_the_checkpoint_run_config(smoke_checkpoint, tmp_path):
    """A model trained with other tokens in the roles (here ordinary byte tokens given as ids, as GPT-2's 222/223/224
    are) is evaluated with its own roles, read from its run's config.yaml: no role flag exists or is needed. The
    model is the smoke model with the special tokens' embedding rows moved to those ids, so it must decode the same."""
    from omegaconf import OmegaConf

    from pretrain.config import to_dataclass
    from pretrain.evaluate import EvalConfig, checkpoint_roles, evaluate_model, load_checkpoint
    from pretrain.tokenizer import REQUIRED_ROLES, Roles

    model, tok, run_config = load_checkpoint(smoke_checkpoint, "cpu", "fp32")
    default = checkpoint_roles(tok, run_config, smoke_checkpoint)
    assert default == resolve_roles(tok, SPECIAL_TOKENS)
    moved, _, _ = load_checkpoint(smoke_checkpoint, "cpu", "fp32")
    ids = [tok.convert_tokens_to_ids(c) for c in "ĀāĂă"]  # bytes 0..3 of the byte-level alphabet: never in iGSM text
    old = [default.begin_problem, default.begin_solution, default.begin_answer, default.end]
    emb, out = moved.get_input_embeddings().weight, moved.get_output_embeddings().weight
    with torch.no_grad():
        for w in (emb,) if out.data_ptr() == emb.data_ptr() else (emb, out):
            w[old + ids] = w[ids + old].clone()
    run = tmp_path / "id_roles"
    ckpt = run / "checkpoints" / "step_0000001"
    moved.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    OmegaConf.update(run_config, "tokenizer.roles", dict(zip(REQUIRED_ROLES, ids, strict=True)))  # retry: kept
    OmegaConf.save(run_config, run / "config.yaml")

    model2, tok2, run_config2 = load_checkpoint(ckpt, "cpu", "fp32")
    roles = checkpoint_roles(tok2, run_config2, ckpt)
    assert roles == Roles(*ids, retry=default.retry)
    data = to_dataclass(DataConfig, run_config2.data)
    ev = EvalConfig(name="ids", splits=[next(s for s in data.splits() if s != "train")], n=3)
    ev.decode = DecodeConfig(max_length=300, batch_size=3)
    _, theirs = evaluate_model(model2, tok2, roles, data, ev, progress=False)
    _, ours = evaluate_model(model, tok, default, data, ev, progress=False)
    assert [r["generated_solution"] for r in theirs] == [r["generated_solution"] for r in ours]
    assert [r["correct"] for r in theirs] == [r["correct"] for r in ours] and any(r["generated_solution"] for r in ours)
    with pytest.raises(ValueError, match="no run config with tokenizer.roles"):
        checkpoint_roles(tok, None, "bare")


def test_mcnemar_p_is_the_exact_two_sided_binomial_test_of_the_changes():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_p(10, 2) == mcnemar_p(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    with pytest.raises(ValueError, match="-1"):
        mcnemar_p(-1, 2)


def test_wilson_interval():
    assert wilson(0, 6) == (0.0, pytest.approx(0.390, abs=1e-3))
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)


def test_evaluate_command_writes_its_files(smoke_checkpoint):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pretrain.evaluate",
            f"checkpoint={smoke_checkpoint}",
            "eval=smoke",
            "eval.decode.max_length=500",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = smoke_checkpoint.parent.parent / "eval" / smoke_checkpoint.name / "smoke"
    res = json.loads((out / "results.json").read_text())
    assert set(res["splits"]) == {"test_op4", "test_op6"} and res["splits"]["test_op6"]["n"] == 6
    assert res["splits"]["test_op6"]["op"] == 6 and res["splits"]["test_op6"]["column"] == "6"
    assert len(res["splits"]["test_op4"]["accuracy_ci95"]) == 2
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 12 and {"generated_solution", "correct", "error_kinds", "n_back"} <= set(gens[0])
    assert (out / "accuracy.png").stat().st_size > 0 and "| test_op6 | 6 | 6 |" in (out / "results.md").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "pretrain.evaluate", "checkpoint=/nonexistent", "eval=smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "not a save_pretrained checkpoint" in bad.stderr


def fake_run(
    root: Path, name: str, setting: str, kind: str, rate: float, seed: int, acc: dict, decoding: str = "greedy"
):
    run = root / name
    (run / "eval" / "step_0001000" / decoding).mkdir(parents=True)
    if not (run / "config.yaml").exists():
        (run / "config.yaml").write_text(
            f"data: {{name: {setting}, mistakes: {{kind: {kind}, rate: {rate}, include_current: false, mask: none}}}}\n"
            f"model: {{name: gpt2-12-12}}\ntrain: {{seed: {seed}}}\n"
        )
    splits = {f"test_{c}": {"n": 100, "column": c, "accuracy": a} for c, a in acc.items()}
    (run / "eval" / "step_0001000" / decoding / "results.json").write_text(
        json.dumps({"eval": {"name": decoding}, "splits": splits})
    )


def test_aggregate_builds_the_table(tmp_path):
    fake_run(tmp_path, "a", "med", "none", 0.0, 0, {"op<=15": 0.99, "23": 0.70, "reask20": 0.9})
    fake_run(tmp_path, "b", "med", "retry", 0.2, 0, {"op<=15": 1.0, "23": 0.88})
    fake_run(tmp_path, "b2", "med", "retry", 0.2, 1, {"op<=15": 0.98, "23": 0.90})  # a second seed: max is kept
    table = aggregate(tmp_path)
    assert table["columns"] == ["op<=15", "23", "reask20"]
    assert [r["label"] for r in table["rows"]] == ["med clean", "med retry0.2"]
    clean, retry = table["rows"]
    assert retry["ours"] == {"op<=15": 100.0, "23": 90.0} and retry["runs"] == {"op<=15": 2, "23": 2}
    # the papers: Part 2.1 Fig. 3 (greedy) for the clean model, Part 2.2 Fig. 4(b) for retry 0.2
    assert clean["paper"] == {"op<=15": 99.9, "23": 76.8, "reask20": 91.6} and retry["paper"]["23"] == 91.6
    assert aggregate(tmp_path, reduce="mean")["rows"][1]["ours"]["23"] == 89.0
    aggregate_main([str(tmp_path)])
    md = (tmp_path / "summary.md").read_text()
    assert "| data | op<=15 | op=23 | reask20 |" in md
    assert "| med retry0.2 | 100.0 (100.0) | 90.0 (91.6) | - |" in md and (tmp_path / "summary.png").exists()
    assert markdown(table) == md
    with pytest.raises(SystemExit, match="no evaluated runs"):
        aggregate_main([str(tmp_path / "empty")])


def test_a_data_sweep_of_a_small_world_is_drawn_by_variant_with_intervals_and_the_papers_figure(tmp_path, monkeypatch):
    from pretrain import aggregate as agg

    fake_run(tmp_path, "c0", "laptop", "none", 0.0, 0, {"3": 0.02, "seen2": 0.30, "seen1": 0.60})
    fake_run(tmp_path, "c1", "laptop", "none", 0.0, 1, {"3": 0.04, "seen2": 0.34, "seen1": 0.62})
    fake_run(tmp_path, "r0", "laptop", "retry_weak", 0.5, 0, {"3": 0.0, "seen2": 0.20, "seen1": 0.50})
    table = aggregate(tmp_path, reduce="mean")
    assert table["columns"] == ["seen1", "seen2", "3"]  # in distribution before out of it
    clean, weak = table["rows"]
    assert clean["values"]["seen2"] == [30.0, 34.0] and clean["ours"]["seen2"] == 32.0
    assert clean["ci95"]["seen2"] == [round(100 * b, 1) for b in wilson(64, 200)]  # both seeds' problems pooled
    assert weak["ci95"]["seen2"] == [round(100 * b, 1) for b in wilson(20, 100)]
    assert aggregate(tmp_path)["rows"][0]["ci95"]["seen2"] == [round(100 * b, 1) for b in wilson(34, 100)]  # max's own
    drawn = []
    monkeypatch.setattr(agg, "paper_panel", lambda ax, tags, *a: drawn.append(tags))
    agg.plot(table, tmp_path / "summary.png")
    assert drawn == [["clean", "retry_weak0.5"]]  # no cell has the papers' number: their Figs. 4(b), 8 beside ours
    assert (tmp_path / "summary.png").stat().st_size > 0
    two = tmp_path / "L5"
    fake_run(two, "L5", "laptop", "none", 0.0, 0, {"seen2": 0.31})
    (two / "L5" / "config.yaml").write_text(
        (two / "L5" / "config.yaml").read_text().replace("{name: laptop,", "{name: laptop, two_attempts: 0.05,")
    )
    rows = aggregate(tmp_path, reduce="mean", also=(two,))["rows"]  # 5% two-attempt documents: not the clean variant
    assert [r["data"] for r in rows] == ["clean", "clean+two_attempts0.05", "retry_weak0.5"] and rows[0]["runs"][
        "seen2"
    ] == 2
    med = tmp_path / "med"
    fake_run(med, "c", "med", "none", 0.0, 0, {"23": 0.7})
    fake_run(med, "r", "med", "retry", 0.5, 0, {"23": 0.9})
    drawn.clear()
    agg.plot(aggregate(med), med / "summary.png")  # the papers' world: their numbers are crosses in our panels
    assert drawn == [] and (med / "summary.png").stat().st_size > 0


def test_retry_upon_regret_is_a_row_of_its_own_never_in_the_best_of(tmp_path):
    fake_run(tmp_path, "a", "med", "none", 0.0, 0, {"op<=15": 0.99, "23": 0.78})
    fake_run(tmp_path, "a", "med", "none", 0.0, 0, {"op<=15": 0.98, "23": 0.70}, decoding="beam4_sample")
    fake_run(tmp_path, "a", "med", "none", 0.0, 0, {"op<=15": 1.0, "23": 0.95}, decoding="rur_perfect")
    table = aggregate(tmp_path)  # no decoding named: best of greedy and beam, not of rur_perfect
    assert table["decodings"] == ["beam4_sample", "greedy"] and table["methods"] == ["rur_perfect"]
    best, rur = table["rows"]
    assert best["label"] == "med clean" and best["ours"] == {"op<=15": 99.0, "23": 78.0} and best["method"] is None
    assert rur["label"] == "med clean rur_perfect" and rur["ours"] == {"op<=15": 100.0, "23": 95.0}
    assert rur["paper"] == {"op<=15": None, "23": None}  # the papers' best-of is not a retry-upon-regret number
    md = markdown(table)
    assert "| med clean | 99.0 (99.9) | 78.0 (77.7) |" in md and "| med clean rur_perfect | 100.0 | 95.0 |" in md
    only = aggregate(tmp_path, ["greedy", "rur_perfect"])  # named together: still apart
    assert [r["ours"]["23"] for r in only["rows"]] == [78.0, 95.0]


def test_a_finetune_grid_is_tabled_in_the_papers_method_order_beside_its_base(tmp_path):
    grid, base = tmp_path / "grid", tmp_path / "base"
    for method, acc in (("qv16e32", 0.5), ("full", 0.7), ("qv4e8", 0.4)):
        run = grid / f"ft_{method}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(
            "data: {name: med, mistakes: {kind: retry, rate: 0.2, include_current: false, mask: none}}\n"
            f"model: {{name: gpt2-12-12+{method}}}\ntrain: {{seed: 0}}\nfinetune: {{method: {method}}}\n"
        )
        fake_run(grid, f"ft_{method}", "med", "retry", 0.2, 0, {"op<=15": acc, "23": acc})
    fake_run(base, "clean", "med", "none", 0.0, 0, {"op<=15": 0.9, "23": 0.6})
    assert [r["finetune"] for r in aggregate(grid)["rows"]] == ["qv4e8", "qv16e32", "full"]  # not alphabetical
    aggregate_main([str(grid), str(base), str(grid / "ft_full")])  # a run named twice counts once
    table = json.loads((grid / "summary.json").read_text())
    assert [r["finetune"] for r in table["rows"]] == [None, "qv4e8", "qv16e32", "full"]
    assert table["rows"][-1]["runs"] == {"op<=15": 1, "23": 1}
    clean, qv4, *_ = table["rows"]
    assert clean["paper"]["23"] == 76.8 and qv4["paper"]["23"] == 63.3  # P21 Fig. 3 (greedy) / P22 Fig. 7, never mixed
    assert (grid / "summary.png").stat().st_size > 0 and not (base / "summary.md").exists()
