"""Regret: the perfect detector's judgement, retry-upon-regret decoding (on a scripted model), the probe report."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from igsm.parse import parse_problem
from pretrain.decode import DecodeConfig, Triggers, decode_with_regret
from pretrain.model import ModelConfig, build_model
from pretrain.tokenizer import SPECIAL_TOKENS, prompt_ids, resolve_roles
from probes.regret import PerfectDetector, ProbeDetector, regret_report, written_step
from probes.states import Markers

STATEMENT = (
    "The number of each Lisbon's Riverside Park equals 5. "
    "The number of each Lisbon's Lakeview Park equals 13 more than each Lisbon's Riverside Park."
)
QUESTION = "How many Park does Lisbon have?"
GOOD = (
    "Define Lisbon's Riverside Park as a; so a = 5. Define Lisbon's Lakeview Park as b; so b = 13 + a = 13 + 5 = 18. "
    "Define Lisbon's Park as c; so c = a + b = 5 + 18 = 0."
)


def test_written_step():
    (p,) = parse_problem(STATEMENT, QUESTION)
    assert written_step(p, [], "Define Lisbon's Park as") == ("Lisbon's Park", True)  # children not known yet
    assert written_step(p, [], "Define Lisbon's Riverside Park as a") == ("Lisbon's Riverside Park", False)
    done = ["Define Lisbon's Riverside Park as a; so a = 5"]
    assert written_step(p, done, "Define Lisbon's Lakeview Park as") == ("Lisbon's Lakeview Park", False)
    assert written_step(p, done, "Define Lisbon's Riverside Park as")[1]  # computed twice
    assert written_step(p, done, "Define Lisbon's Garden as")[1]  # no such parameter
    assert written_step(p, ["Define Lisbon's Riverside Park as BACK"], "Define Lisbon's Lakeview Park as")[1]
    assert written_step(p, [], "so a = 5") is None


def test_perfect_detector_reads_the_example_whatever_the_role_ids(smoke_tokenizer):
    """Roles given as ids of ordinary tokens (as GPT-2's 222/223 are) make the prompt ids decode to text that does not
    parse; the detector takes the problem from the example, so it still judges, and it fails loudly on what it
    cannot read."""
    tok = smoke_tokenizer
    roles = resolve_roles(tok, {"begin_problem": 222, "begin_solution": 223, "begin_answer": 224, "end": 0})
    assert not tok.convert_ids_to_tokens(222).startswith("<|")  # an ordinary token, as in GPT-2
    prompt_text = f" {STATEMENT} {QUESTION}"
    example = {"index": 0, "prompt": prompt_text, "problem": STATEMENT, "question": QUESTION}
    prompt = prompt_ids(tok, roles, prompt_text)
    det = PerfectDetector(tok)

    def ask(text, ex=example):
        return det(ex, prompt, tok(" " + text, add_special_tokens=False).input_ids)

    assert ask("Define Lisbon's Park as") and not ask("Define Lisbon's Riverside Park as")
    assert not ask("Define Lisbon's Riverside Park as a; so a = 5. Define Lisbon's Lakeview Park as")
    assert det.calls == 3 and det.flags == 1
    # a name glued to "Define" (L5 wrote "Defineffodil as" under retry upon regret): no parameter of the problem
    assert ask("Define Lisbon's Riverside Park as a; so a = 5. DefineRiverside Park as")
    assert det.calls == 4 and det.flags == 2
    with pytest.raises(ValueError, match="does not start 'Define A as'"):
        ask("Define Lisbon's Riverside Park as a; so a = 5. so a")
    with pytest.raises(ValueError, match="cannot read the problem of example 7"):
        ask("Define Lisbon's Park as", {"index": 7, "prompt": " x", "problem": "Nonsense.", "question": QUESTION})


class ScriptedLM(torch.nn.Module):
    """A stand-in language model over a toy vocabulary: 0 end, 1 " Define", 2 " as", 3 ".", 10 / 11 names, 20 a
    body token. Each sentence is Define <name> as <body> . ; after two sentences, end. Greedy picks name 10; its
    rival 11 is almost as likely, so sampling picks either."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.seq: list[int] = []

    def forward(self, input_ids, past_key_values, use_cache=True, logits_to_keep=1):
        cached = past_key_values.get_seq_length()
        self.seq = self.seq[:cached] + input_ids[0].tolist()
        kv = torch.zeros(1, 1, input_ids.shape[1], 1)
        past_key_values.update(kv, kv, 0)
        gen = self.seq[self.seq.index(99) + 1 :]  # 99 closes the prompt
        sentence = gen[len(gen) - gen[::-1].index(3) :] if 3 in gen else gen
        logits = torch.full((1, 1, 32), -50.0)
        if gen.count(3) == 2:
            logits[0, 0, 0] = 10
        elif not sentence:
            logits[0, 0, 1] = 10
        elif len(sentence) == 1:
            logits[0, 0, 10], logits[0, 0, 11] = 1.0, 0.9
        else:
            logits[0, 0, {2: 2, 3: 20, 4: 3}[len(sentence)]] = 10
        return SimpleNamespace(logits=logits)


def test_retry_upon_regret_goes_back_and_resamples():
    model, triggers = ScriptedLM(), Triggers(define=1, as_=2, period=3)
    calls = []

    def regret(prompt, out):  # the step naming 10 is a mistake
        calls.append(list(out))
        return out[-2] == 10

    cfg = DecodeConfig(max_length=200)
    gen = torch.Generator().manual_seed(0)
    out, retries = decode_with_regret(model, [5, 99], 0, cfg, regret, triggers, gen)
    assert out == [1, 11, 2, 20, 3, 1, 11, 2, 20, 3, 0]  # both sentences end up with the right name
    assert retries >= 2 and all(c[-1] == 2 for c in calls)  # asked right after each " as"
    plain, n = decode_with_regret(model, [5, 99], 0, cfg, lambda p, o: False, triggers, gen)
    assert plain == [1, 10, 2, 20, 3, 1, 10, 2, 20, 3, 0] and n == 0  # greedy, never sent back
    capped, n = decode_with_regret(
        model, [5, 99], 0, DecodeConfig(max_length=200, max_retries=3), lambda p, o: True, triggers, gen
    )
    assert n == 3 and capped[-1] == 0  # at most max_retries, then it goes on


class Always:
    classes_ = np.array([0, 1])

    def __init__(self, p):
        self.p = p

    def predict_proba(self, x):
        return np.array([[1 - self.p, self.p]] * len(x))


def test_regret_report_counts_against_the_truth(smoke_tokenizer):
    tok = smoke_tokenizer
    roles = resolve_roles(tok, SPECIAL_TOKENS)
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, n_head=1, head_dim=16), len(tok)).eval()
    markers = Markers.for_model(model, len(tok))
    wrong = "Define Lisbon's Park as c; so c = 0. " + GOOD  # first step is a mistake
    prompt = f" {STATEMENT} {QUESTION}"
    records = [
        {"prompt": prompt, "problem": STATEMENT, "question": QUESTION, "generated_solution": GOOD, "correct": True},
        {"prompt": prompt, "problem": STATEMENT, "question": QUESTION, "generated_solution": wrong, "correct": False},
    ]
    yes = regret_report(ProbeDetector(model, tok, markers, Always(0.9), 1), records, tok, roles)
    assert yes["steps"] == 7 and yes["mistaken_steps"] == 2  # the early Lisbon's Park, and its repetition
    assert yes["step_accuracy"] == pytest.approx(2 / 7) and yes["first_wrong_step_flagged"] == 1.0
    no = regret_report(ProbeDetector(model, tok, markers, Always(0.1), 1), records, tok, roles)
    assert no["step_accuracy"] == pytest.approx(5 / 7) and no["first_wrong_step_flagged"] == 0.0
    with pytest.raises(ValueError, match="no 'prompt' field"):
        regret_report(ProbeDetector(model, tok, markers, Always(0.1), 1), [{"split": "x", "index": 0}], tok, roles)


@pytest.mark.parametrize("p_format", ["pq", "qp"])
def test_regret_report_reads_the_prompt_the_model_was_given(smoke_tokenizer, p_format):
    """A qp model is probed on its qp prompt: the probe's prefixes start with the model's own prompt."""
    tok = smoke_tokenizer
    roles = resolve_roles(tok, SPECIAL_TOKENS)
    model = build_model(ModelConfig(n_layer=1, n_head=1, head_dim=16), len(tok)).eval()
    prompt = f" {STATEMENT} {QUESTION}" if p_format == "pq" else f" {QUESTION} {STATEMENT}"
    seen = []

    class Recording(ProbeDetector):
        def score(self, prefix, name):
            seen.append(prefix)
            return 0.0

    record = {"prompt": prompt, "problem": STATEMENT, "question": QUESTION, "generated_solution": GOOD, "correct": True}
    report = regret_report(
        Recording(model, tok, Markers.for_model(model, len(tok)), Always(0.1), 1), [record], tok, roles
    )
    expected = prompt_ids(tok, roles, prompt)
    assert report["steps"] == 3 and len(seen) == 3
    assert all(p[: len(expected)] == expected for p in seen)


def test_regret_decoding_without_regret_is_greedy(smoke_checkpoint, smoke_tokenizer):
    """On a real model and cache: a detector that never objects leaves plain greedy decoding."""
    from transformers import AutoModelForCausalLM

    from igsm.dataset import DataConfig, make_example
    from pretrain.decode import decode_batch

    model = AutoModelForCausalLM.from_pretrained(smoke_checkpoint).eval()
    roles = resolve_roles(smoke_tokenizer, SPECIAL_TOKENS)
    e = make_example(DataConfig(max_op=4, max_edge=6, test_ops=[4]), "test_op4", 0)
    prompt = prompt_ids(smoke_tokenizer, roles, e["prompt"])
    cfg = DecodeConfig(max_length=len(prompt) + 40)
    out, n = decode_with_regret(model, prompt, roles.end, cfg, lambda p, o: False, Triggers.of(smoke_tokenizer))
    assert n == 0 and out == decode_batch(model, [prompt], roles.end, cfg)[0]
