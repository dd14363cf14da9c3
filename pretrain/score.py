"""The pieces of two-attempt self-correction (SCoRe, Kumar et al. 2024, arXiv 2409.12917), each a function:

    rollout             k sampled (y1, y2) pairs per prompt with the batched decoder: y1 after the problem, y2 after
                        `second_prompt` (the problem, y1, <retry>)
    attempt_reward      1 when the verifier accepts an attempt (whole solution and answer), 0 otherwise (no answer,
                        truncated, wrong)
    rloo_advantages     REINFORCE leave-one-out: r_i minus the mean reward of the other k - 1 samples of the prompt
    stage_terms         per-attempt advantages and KL weights of Stage I and Stage II (credit per attempt, gamma = 0)
    token_kl            exact full-vocabulary KL(pi || pi_ref) at every position
    policy_loss         REINFORCE on each attempt's tokens with its own advantage, plus the weighted KL
    star_pairs, pair_sft_pairs, sft_loss    the SFT baselines' data and loss
    two_attempt_metrics Acc@t1, Acc@t2, Delta, Delta i->c, Delta c->i, unchanged share, edit distance

`pretrain.selfcorrect` puts them in a loop. Sequences are right-padded with positions 0, 1, ... as in decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pretrain.decode import DecodeConfig, decode_batch, split_generation
from pretrain.tokenizer import Roles, second_prompt

STAGES = ("I", "II")


@dataclass
class Rollout:
    """n prompts x k samples, sample j of prompt i at row i * k + j; `second` is empty when not asked for."""

    k: int
    prompts: list[list[int]]  # per row: the first attempt's prompt
    first: list[list[int]]  # y1 ids (<end> included when reached)
    second: list[list[int]]  # y2 ids


def _decode(model, prompts: list[list[int]], end: int, cfg: DecodeConfig, generator) -> list[list[int]]:
    out: list[list[int]] = []
    for start in range(0, len(prompts), cfg.batch_size):
        out += decode_batch(model, prompts[start : start + cfg.batch_size], end, cfg, generator)
    return out


def rollout(
    model,
    prompts: list[list[int]],
    roles: Roles,
    k: int,
    cfg: DecodeConfig,
    generator: torch.Generator | None = None,
    second: bool = True,
) -> Rollout:
    """k samples of two attempts per prompt (cfg: sampling, its temperature, max_new_tokens per attempt)."""
    if k < 1:
        raise ValueError(f"rollout: k must be >= 1, got {k}")
    rows = [p for p in prompts for _ in range(k)]
    y1 = _decode(model, rows, roles.end, cfg, generator)
    y2 = []
    if second:
        y2 = _decode(
            model, [second_prompt(roles, p + y) for p, y in zip(rows, y1, strict=True)], roles.end, cfg, generator
        )
    return Rollout(k, rows, y1, y2)


def attempt_reward(tokenizer, roles: Roles, example: dict, ids: list[int]) -> float:
    """1.0 when the verifier accepts the attempt `ids` (solution and answer) for `example`; 0.0 when it is wrong,
    has no answer or was cut off before <end>."""
    from pretrain.evaluate import judge

    if not ids or ids[-1] != roles.end:
        return 0.0
    solution, answer = split_generation(tokenizer, ids, roles)
    if answer is None:
        return 0.0
    return float(judge(example, solution, answer)["correct"])


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024) for rewards of shape (n prompts, k samples):
    A_ij = r_ij - mean of the prompt's other k - 1 rewards."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rloo_advantages needs rewards of shape (prompts, k >= 2), got {tuple(rewards.shape)}")
    k = rewards.shape[1]
    return rewards - (rewards.sum(1, keepdim=True) - rewards) / (k - 1)


def shaped_second_reward(r1: torch.Tensor, r2: torch.Tensor, alpha: float) -> torch.Tensor:
    """Stage II's reward of y2: r2 + alpha (r2 - r1), a bonus for i->c and a penalty for c->i (SCoRe Eq. 5)."""
    return r2 + alpha * (r2 - r1)


def stage_terms(
    stage: str, r1: torch.Tensor, r2: torch.Tensor, alpha: float, beta1: float, beta2: float
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(advantage of y1, advantage of y2, KL weight on y1, KL weight on y2), rewards of shape (n, k), flattened
    to rows. Stage I: no gradient from y1's reward, r2 on y2, beta2 (strong) KL on y1, beta1 on y2. Stage II:
    r1 on y1, the shaped r2 on y2, beta1 on both."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    for name, value in (("alpha", alpha), ("beta1", beta1), ("beta2", beta2)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if stage == "I":
        return torch.zeros_like(r1).flatten(), rloo_advantages(r2).flatten(), beta2, beta1
    a1 = rloo_advantages(r1).flatten()
    return a1, rloo_advantages(shaped_second_reward(r1, r2, alpha)).flatten(), beta1, beta1


def token_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(pi || pi_ref) = sum_v pi(v) (log pi(v) - log pi_ref(v)) at each position: (..., V) -> (...).
    The vocabulary is small, so no sampled estimator is needed; the gradient flows through pi."""
    logp = F.log_softmax(logits.float(), dim=-1)
    ref = F.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - ref)).sum(-1)


@dataclass
class Batch:
    """Right-padded sequences prompt + y1 [+ <end>] + <retry> + y2, with the attempt (0: neither, 1, 2) each
    target token belongs to."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    attempt: torch.Tensor  # (B, T - 1): the attempt of target input_ids[:, 1:]


def two_attempt_batch(roles: Roles, r: Rollout, device=None) -> Batch:
    """The training sequences of a rollout with both attempts."""
    seqs, marks = [], []
    for p, y1, y2 in zip(r.prompts, r.first, r.second, strict=True):
        p2 = second_prompt(roles, p + y1)
        seqs.append(p2 + y2)
        marks.append([0] * len(p) + [1] * len(y1) + [0] * (len(p2) - len(p) - len(y1)) + [2] * len(y2))
    return _pad(seqs, marks, roles.end, device)


def _pad(seqs: list[list[int]], marks: list[list[int]], pad: int, device) -> Batch:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    attempt = torch.zeros_like(ids)
    for i, (s, m) in enumerate(zip(seqs, marks, strict=True)):
        ids[i, : len(s)], mask[i, : len(s)], attempt[i, : len(m)] = torch.tensor(s), 1, torch.tensor(m)
    return Batch(ids.to(device), mask.to(device), attempt[:, 1:].to(device))


def _logits(model, b: Batch) -> torch.Tensor:
    return model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits[:, :-1]


def policy_loss(
    policy, ref, b: Batch, adv1: torch.Tensor, adv2: torch.Tensor, kl1: float, kl2: float, n: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE with per-attempt credit (gamma = 0: each attempt's tokens get that attempt's advantage) plus the
    exact KL to `ref` weighted per attempt; summed over tokens, divided by `n` (the rows of the whole step, so
    micro-batches add up). Returns (loss, sums of the KL per token of each attempt and their token counts)."""
    logits = _logits(policy, b)
    with torch.no_grad():
        ref_logits = _logits(ref, b)
    targets = b.input_ids[:, 1:]
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    kl = token_kl(logits, ref_logits)
    one, two = (b.attempt == 1).float(), (b.attempt == 2).float()
    adv = one * adv1[:, None] + two * adv2[:, None]
    weight = one * kl1 + two * kl2
    loss = (-(adv * logp) + weight * kl).sum() / n
    stats = {
        "kl1_sum": float((kl.detach() * one).sum()),
        "kl2_sum": float((kl.detach() * two).sum()),
        "tokens1": float(one.sum()),
        "tokens2": float(two.sum()),
    }
    return loss, stats


# ---- the SFT baselines ---------------------------------------------------------------------------------------------
def star_pairs(r: Rollout, r1: list[float], r2: list[float]) -> list[tuple[list[int], list[int]]]:
    """STaR on corrections: the (first attempt, second attempt) samples where a wrong y1 was followed by a right
    y2, as (context through <retry> without its roles, y2) -- see `sft_batch`."""
    return [(p + y1, y2) for p, y1, y2, a, b in zip(r.prompts, r.first, r.second, r1, r2, strict=True) if not a and b]


def pair_sft_pairs(r: Rollout, r1: list[float]) -> list[tuple[list[int], list[int]]]:
    """Pair-SFT: each wrong first attempt paired with a right first attempt of the same prompt (from the k
    samples) as its second attempt; the right one is chosen by position, so the pairs are deterministic."""
    pairs = []
    for i in range(0, len(r.prompts), r.k):
        rows = range(i, i + r.k)
        right = [j for j in rows if r1[j]]
        wrong = [j for j in rows if not r1[j]]
        for n, j in enumerate(wrong):
            if right:
                pairs.append((r.prompts[j] + r.first[j], r.first[right[n % len(right)]]))
    return pairs


def sft_batch(roles: Roles, pairs: list[tuple[list[int], list[int]]], device=None) -> Batch:
    """Sequences second_prompt(first) + second, with the loss on the second attempt (attempt 2) only."""
    seqs, marks = [], []
    for first, second in pairs:
        p2 = second_prompt(roles, first)
        seqs.append(p2 + second)
        marks.append([0] * len(p2) + [2] * len(second))
    return _pad(seqs, marks, roles.end, device)


def sft_loss(model, b: Batch, n_tokens: int) -> torch.Tensor:
    """Cross-entropy summed over the second attempts' tokens, divided by `n_tokens` (those of the whole step)."""
    logp = F.log_softmax(_logits(model, b).float(), dim=-1).gather(-1, b.input_ids[:, 1:, None]).squeeze(-1)
    return -(logp * (b.attempt == 2)).sum() / max(n_tokens, 1)


# ---- metrics -------------------------------------------------------------------------------------------------------
def edit_distance(a: list, b: list) -> int:
    """Levenshtein distance between two sequences (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def two_attempt_metrics(rows: list[dict]) -> dict[str, float | int | None]:
    """SCoRe's figures over rows with `correct1`, `correct2` (the verifier's) and `first`, `second` (the attempts'
    text): Acc@t1, Acc@t2, Delta = Acc@t2 - Acc@t1, Delta i->c and Delta c->i (shares of all problems), the share of
    second attempts identical to the first, and the mean edit distance between them in words, divided by the
    longer one's length (0: identical, 1: nothing in common; SCoRe Fig. 3)."""
    n = len(rows)
    if n == 0:
        return {"n": 0}

    def share(test: Callable[[dict], bool]) -> float:
        return sum(bool(test(r)) for r in rows) / n

    def ratio(r: dict) -> float:
        a, b = r["first"].split(), r["second"].split()
        return edit_distance(a, b) / max(len(a), len(b), 1)

    acc1, acc2 = share(lambda r: r["correct1"]), share(lambda r: r["correct2"])
    return {
        "n": n,
        "acc_t1": acc1,
        "acc_t2": acc2,
        "delta": acc2 - acc1,
        "delta_i_to_c": share(lambda r: not r["correct1"] and r["correct2"]),
        "delta_c_to_i": share(lambda r: r["correct1"] and not r["correct2"]),
        "unchanged": share(lambda r: r["first"] == r["second"]),
        "edit_distance": sum(ratio(r) for r in rows) / n,
    }
