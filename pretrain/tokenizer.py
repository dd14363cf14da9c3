"""The tokenizer: byte-level BPE trained locally on iGSM text, saved as a `transformers` fast tokenizer.

Special tokens, their roles and the sequence layout (`layout`) live here and nowhere else: a training example is
<|problem|> prompt <|solution|> " " solution <|answer|> " " answer <|endoftext|>, as in the reference code (which uses
GPT-2's ids 222 / 223 / 224 / 50256 in these roles); a two-attempt example (SCoRe's format) continues after that
<|endoftext|> with <|retry|> (the instruction to try again, as one token), a second solution, its answer and <|endoftext|>. Any other `transformers` tokenizer can be used instead by name or
path, with the roles given as token strings or ids in the config.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from igsm import templates as T
from igsm.dataset import DataConfig, MistakeConfig, make_example
from igsm.io import atomic_dir

SPECIAL_TOKENS: dict[str, str] = {
    "begin_problem": "<|problem|>",
    "begin_solution": "<|solution|>",
    "begin_answer": "<|answer|>",
    "end": "<|endoftext|>",
    "retry": "<|retry|>",  # SCoRe's self-correction instruction; optional in a run's roles (older runs lack it)
}
ROLES = tuple(SPECIAL_TOKENS)
OPTIONAL_ROLES = ("retry",)  # a tokenizer without it serves everything but two attempts (`second_prompt`)
REQUIRED_ROLES = tuple(r for r in ROLES if r not in OPTIONAL_ROLES)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS) + 32  # the byte alphabet, the special tokens, and room for a few merges
SINGLE_TOKEN_WORDS = tuple(f" {w}" for w in (*T.NUMBERS, *T.SYMBOLS, T.BACK))  # each must be one token


@dataclass
class TokenizerConfig:
    """path: a transformers tokenizer name or directory to use as is; None trains igsm-lab's own (cached under
    the data root). roles: the token (string or id) playing each role. whole_names: every item name of the world
    (with its leading space) is one token, added after the BPE and the optional roles, so that a parameter's name
    is always three tokens (" Seville", "'s", " Otter Creek Park"); for small worlds (a few dozen names)."""

    path: str | None = None
    vocab_size: int = 4096
    train_problems: int = 20_000
    seed: int = 0
    whole_names: bool = False
    roles: dict[str, Any] = field(default_factory=lambda: dict(SPECIAL_TOKENS))

    def __post_init__(self) -> None:
        missing = [r for r in REQUIRED_ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"tokenizer.roles lacks {missing}; it needs {list(REQUIRED_ROLES)}")
        if self.path is None and self.vocab_size < MIN_VOCAB:
            raise ValueError(
                f"tokenizer.vocab_size must be >= {MIN_VOCAB} (bytes + special tokens), got {self.vocab_size}"
            )


@dataclass(frozen=True)
class Roles:
    """Token ids of the special roles."""

    begin_problem: int
    begin_solution: int
    begin_answer: int
    end: int
    retry: int | None = None  # None: the tokenizer (or the run's roles) has no two-attempt format


def _corpus_mixes(data: DataConfig, seed: int) -> list[DataConfig]:
    """The tokenizer's training text is drawn from the world it serves (the data's names and problem sizes), with
    each kind of mistake and both formats, so that " BACK" and every name of the world are frequent."""
    world = {k: getattr(data, k) for k in ("max_op", "max_edge", "hierarchies", "groups", "items")}
    common = {**world, "name": "corpus", "seed": seed, "test_ops": [], "test_id": False, "reask_ops": []}
    return [
        DataConfig(**common, mistakes=MistakeConfig("retry", 0.3)),
        DataConfig(**common, mistakes=MistakeConfig("retry_miss", 0.3)),
        DataConfig(**common, mistakes=MistakeConfig("retry_weak", 0.3), p_format="qp"),
    ]


def training_corpus(data: DataConfig, n: int, seed: int) -> Iterator[str]:
    """n training texts of the tokenizer (`_corpus_mixes` in turn), after one text per SINGLE_TOKEN_WORDS word
    repeating it n times, so that even a small vocabulary spends its first merges on them."""
    for word in SINGLE_TOKEN_WORDS:
        yield word * n
    mixes = _corpus_mixes(data, seed)
    for i in range(n):
        ex = make_example(mixes[i % len(mixes)], "train", i)
        yield ex["prompt"] + " " + ex["solution"] + f" {ex['answer']}"


def cache_name(cfg: TokenizerConfig, data: DataConfig) -> str:
    """The cache folder of the tokenizer `cfg` trained for `data`'s world: its settings, and a hash of its
    corpus settings and of the world's vocabulary, so that another world never reuses it."""
    mixes = [asdict(m) for m in _corpus_mixes(data, cfg.seed)]
    vocab = data.gen_config("train").vocabulary().digest
    key = hashlib.sha256(json.dumps([mixes, vocab, SPECIAL_TOKENS], sort_keys=True).encode()).hexdigest()[:8]
    names = "-names" if cfg.whole_names else ""
    return f"igsm-bpe{cfg.vocab_size}{names}-n{cfg.train_problems}-s{cfg.seed}-{key}"


def train_tokenizer(cfg: TokenizerConfig, data: DataConfig, out_dir: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `data`'s world (`training_corpus`) and save it (atomically) with
    save_pretrained. Its vocabulary is at most `cfg.vocab_size` (a small world yields fewer merges) plus the optional
    roles' tokens, appended last so that every other id is the one a tokenizer trained before them has, and with
    `cfg.whole_names` the world's item names after them."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL_TOKENS[r] for r in REQUIRED_ROLES],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(
        training_corpus(data, cfg.train_problems, cfg.seed),
        trainer,
        length=cfg.train_problems + len(SINGLE_TOKEN_WORDS),
    )
    tok.add_special_tokens([SPECIAL_TOKENS[r] for r in OPTIONAL_ROLES])
    if cfg.whole_names:
        names = sorted(data.gen_config("train").vocabulary().item_category)
        tok.add_tokens([AddedToken(f" {name}", normalized=False) for name in names])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=SPECIAL_TOKENS["end"],
        pad_token=SPECIAL_TOKENS["end"],
        additional_special_tokens=[SPECIAL_TOKENS[r] for r in ROLES if r != "end"],
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )
    split = [w for w in SINGLE_TOKEN_WORDS if len(fast(w, add_special_tokens=False).input_ids) != 1]
    if split:
        raise ValueError(f"tokenizer.vocab_size={cfg.vocab_size} leaves {split[:5]} as several tokens; raise it")
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(tmp)
    return fast


def load_tokenizer(name_or_path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Any transformers tokenizer by name or path (a fast one: offsets are needed to mask mistakes)."""
    tok = AutoTokenizer.from_pretrained(str(name_or_path), clean_up_tokenization_spaces=False)
    if not tok.is_fast:
        raise ValueError(f"tokenizer {name_or_path!r} is not a fast tokenizer; character offsets are needed")
    return tok


def resolve_roles(tok: PreTrainedTokenizerFast, roles: dict[str, Any]) -> Roles:
    """Token ids for the configured role tokens, failing loudly on a token the tokenizer does not have."""
    missing = [r for r in REQUIRED_ROLES if r not in roles]
    if missing:
        raise ValueError(f"tokenizer.roles lacks {missing}; it needs {list(REQUIRED_ROLES)}")
    ids = {}
    for role in (r for r in ROLES if r in roles):
        value = roles[role]
        if isinstance(value, int):
            if not 0 <= value < len(tok):
                raise ValueError(f"tokenizer.roles.{role} = {value} is outside the vocabulary (size {len(tok)})")
            ids[role] = value
        else:
            tid = tok.convert_tokens_to_ids(value)
            if tid is None or tid == tok.unk_token_id or tok.convert_ids_to_tokens(tid) != value:
                raise ValueError(f"tokenizer.roles.{role} = {value!r} is not a token of this tokenizer")
            ids[role] = tid
    return Roles(**ids)


def layout(
    roles: Roles,
    prompt: list[int],
    solution: list[int] | None = None,
    answer: list[int] | None = None,
    second: tuple[list[int], list[int]] | None = None,
) -> list[int]:
    """The sequence layout (spec §9), the one place it is written, from the token ids of its parts:

        a training example   <begin_problem> prompt <begin_solution> solution <begin_answer> answer <end>
        a model's prompt     <end> <begin_problem> prompt <begin_solution>          (solution None)
        two attempts         a training example, then <retry> solution2 <begin_answer> answer2 <end>   (second)

    A model's prompt starts with <end> because every example in a packed training window follows the previous
    one's <end>; decoding, probing and regret detection all read the model on this prompt and what follows it.
    The first attempt of two is an ordinary example (it ends at <end>, so a single-attempt model writes it
    unchanged); the second attempt's prompt is `second_prompt`."""
    head = [roles.begin_problem, *prompt, roles.begin_solution]
    if solution is None:
        if answer is not None or second is not None:
            raise ValueError("layout: an answer or a second attempt needs a solution before it")
        return [roles.end, *head]
    if answer is None:
        raise ValueError("layout: a training example needs its answer")
    ids = [*head, *solution, roles.begin_answer, *answer, roles.end]
    if second is None:
        return ids
    return second_prompt(roles, ids) + [*second[0], roles.begin_answer, *second[1], roles.end]


def second_prompt(roles: Roles, first: list[int]) -> list[int]:
    """What the model reads before its second attempt: the first attempt's prompt and generation `first` (closed
    with <end> if it stopped short), then <retry>."""
    if roles.retry is None:
        raise ValueError(
            f"this tokenizer / run has no 'retry' role ({SPECIAL_TOKENS['retry']}): it cannot write two attempts; "
            "use a checkpoint trained with a tokenizer that has it"
        )
    return [*first, *([] if first and first[-1] == roles.end else [roles.end]), roles.retry]


def prompt_ids(tok: PreTrainedTokenizerFast, roles: Roles, prompt: str) -> list[int]:
    """A model's prompt (see `layout`) for the problem text `prompt` (a `prompt` field: leading space, p_format
    order)."""
    return layout(roles, tok(prompt, add_special_tokens=False).input_ids)


def encode_batch(
    tok: PreTrainedTokenizerFast, roles: Roles, examples: list[dict], mask: str = "none"
) -> dict[str, list]:
    """Token ids, loss mask (0 on masked mistake tokens), prompt length (through <begin_solution>) and the token
    span [start, end) of each taken-back step per example. An example with `two_attempts` set continues with a
    second attempt restating its clean solution (`layout`), all of it trained on.

    mask: "none", "name" (the wrong parameter's name) or "step" (" Define <name> as"), from the character spans.
    """
    prompts = tok([e["prompt"] for e in examples], add_special_tokens=False).input_ids
    sols = tok([" " + e["solution"] for e in examples], add_special_tokens=False, return_offsets_mapping=True)
    answers = tok([f" {e['answer']}" for e in examples], add_special_tokens=False).input_ids
    twice = [i for i, e in enumerate(examples) if e.get("two_attempts")]
    seconds = dict(
        zip(
            twice,
            tok([" " + examples[i]["clean_solution"] for i in twice], add_special_tokens=False).input_ids
            if twice
            else [],
            strict=True,
        )
    )
    out: dict[str, list] = {"input_ids": [], "loss_mask": [], "prompt_length": [], "mistake_token_spans": []}
    for k, (e, p_ids, s_ids, offsets, a_ids) in enumerate(
        zip(examples, prompts, sols.input_ids, sols.offset_mapping, answers, strict=True)
    ):
        spans = []
        if mask == "name":
            spans = [(a + 1, b + 1) for a, b in e["mistake_name_spans"]]  # +1: the leading space
        elif mask == "step":
            spans = [
                (s[0] + 1, n[1] + 1 + len(T.AS.rstrip()))
                for s, n in zip(e["mistake_spans"], e["mistake_name_spans"], strict=True)
            ]
        sol_mask = [0 if any(s < b and t > a for a, b in spans) else 1 for s, t in offsets]
        head = len(layout(roles, p_ids)) - 1  # through <begin_solution>: a model's prompt less its leading <end>
        ids = layout(roles, p_ids, s_ids, a_ids, (seconds[k], a_ids) if k in seconds else None)
        out["input_ids"].append(ids)
        out["loss_mask"].append([1] * head + sol_mask + [1] * (len(ids) - head - len(sol_mask)))
        out["prompt_length"].append(head)
        token_spans = []
        for a, b in e["mistake_spans"]:  # " Define <name> as BACK." in " " + solution: characters a .. b + 1
            inside = [i for i, (s, t) in enumerate(offsets) if s < b + 1 and t > a + 1]
            token_spans.append([head + inside[0], head + inside[-1] + 1])
        out["mistake_token_spans"].append(token_spans)
    return out
