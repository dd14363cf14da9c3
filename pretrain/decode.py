"""Decoding solutions: a batched KV-cache loop for greedy and sampling (the default, fast path), and `transformers`'
`generate` for beam search (the papers' "beam 4 with sampling" included).

A prompt is <end> <begin_problem> problem <begin_solution> (spec §9); a model writes the solution, <begin_answer>,
the answer and <end>. Generation stops at <end> or when prompt + generation reach `max_length` (2048, as in the
papers). Finished sequences leave the batch, so a long solution does not keep short ones computing. On a CPU,
GPT-NeoX models (ours) decode through `pretrain.static_cache`, a lean step over a static KV cache, twice as fast for
small models as the model's own forward with a `DynamicCache`, which other models use, and every model on a GPU: there
the lean step's many small launches (attention in blocks of rows, compaction row by row) made it 19x slower than the
`DynamicCache` step (`benchmarks/results/gpu-2026-12-04.md`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from pretrain.static_cache import StaticNeoX, supports, with_cache
from pretrain.tokenizer import Roles

MODES = ("greedy", "sample", "beam")


@dataclass
class DecodeConfig:
    mode: str = "greedy"  # greedy | sample | beam
    num_beams: int = 1  # beam mode: 1, 4, 16, 32 ...
    do_sample: bool = False  # beam mode: the papers' "beam 4 with sampling" (beam-search multinomial sampling)
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 128  # prompts decoded together (beam search: prompts, each with its beams)
    max_length: int = 2048  # prompt + generated tokens (the papers' evaluation context)
    max_new_tokens: int | None = None  # also cap the generated tokens (benchmarks)
    max_retries: int = 10  # retry upon regret: regenerations per solution
    seed: int = 0
    workers: int = 1  # CPU: batches decoded by this many forked processes, the threads shared among them (greedy, beam)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"decode.mode must be one of {MODES}, got {self.mode!r}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"decode.temperature must be > 0 and decode.top_p in (0, 1], got {self.temperature}, {self.top_p}"
            )
        if self.batch_size < 1 or self.num_beams < 1 or self.max_length < 2:
            raise ValueError("decode.batch_size, decode.num_beams must be >= 1 and decode.max_length >= 2")
        if self.workers < 1:
            raise ValueError(f"decode.workers must be >= 1, got {self.workers}")
        if self.workers > 1 and (self.mode == "sample" or self.do_sample):
            # one generator draws through the batches in order: spread over processes, the samples would change
            raise ValueError(
                f"decode.workers > 1 needs a deterministic mode (greedy, beam), got mode={self.mode!r}"
                f"{' with do_sample' if self.do_sample else ''}"
            )


def _pick(logits: torch.Tensor, cfg: DecodeConfig, generator: torch.Generator | None) -> torch.Tensor:
    if cfg.mode == "greedy":
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > cfg.top_p  # keep the smallest set reaching top_p
        sorted_p[drop] = 0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(prompts: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of prompts aligned to the right, so that all continue at the same column."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


class DynamicStep:
    """The decoding state of a batch of left-padded prompts on any causal LM, through its own forward and a
    `DynamicCache` (the reference for `StaticNeoX`, which has the same interface: prefill, step, select, rows)."""

    def __init__(self, model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor):
        self.model, self.ids, self.mask = model, ids, mask
        self.pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = DynamicCache()

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Next-token logits after x (only the last position's are computed)."""
        res = self.model(
            input_ids=x,
            attention_mask=self.mask,
            position_ids=self.pos,
            **with_cache(self.model, self.cache),
            use_cache=True,
            logits_to_keep=1,
        )
        return res.logits[:, -1]

    def prefill(self) -> torch.Tensor:
        logits = self._forward(self.ids)
        self.pos = self.pos[:, -1:]
        return logits

    def select(self, keep: torch.Tensor) -> None:
        self.cache.batch_select_indices(keep)
        self.mask, self.pos = self.mask[keep], self.pos[keep]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.pos = self.pos + 1
        return self._forward(tokens[:, None])


COMPACT = 0.1  # StaticNeoX: drop finished rows once they are this share of the rows (measured: 0.1 > 0.25 > 0.5)


@torch.inference_mode()
def decode_batch(
    model: torch.nn.Module,
    prompts: list[list[int]],
    end_id: int,
    cfg: DecodeConfig,
    generator: torch.Generator | None = None,
    lean: bool | None = None,
) -> list[list[int]]:
    """Generated ids (after the prompt, <end> included when reached) for prompts decoded together, left-padded.
    A GPT-NeoX model on a CPU runs through the lean static-cache step (`pretrain.static_cache`; `lean=True` forces
    it), any other model or device (or `lean=False`, the reference) through its own forward and a `DynamicCache`;
    both give the same tokens. Finished rows stop computing: at once with the dynamic cache, in bulk with the static
    one."""
    device = next(model.parameters()).device
    lengths = [len(p) for p in prompts]
    budget = [min(cfg.max_length - n, cfg.max_new_tokens or cfg.max_length) for n in lengths]
    if max(budget) < 1:  # nothing to generate: prompts at max_length already
        return [[] for _ in prompts]
    ids, mask = left_pad(prompts, end_id, device)
    lean = lean_by_default(model, device) if lean is None else lean
    state = StaticNeoX(model, ids, mask, ids.shape[1] + max(budget)) if lean else DynamicStep(model, ids, mask)
    threshold = COMPACT if lean else 0.0
    logits = state.prefill()
    out: list[list[int]] = [[] for _ in prompts]
    rows = list(range(len(prompts)))  # the prompt of each state row; None once finished
    for step in range(max(budget)):
        live = [r for r, i in enumerate(rows) if i is not None]
        # only the live rows' logits, in order, so that sampling draws exactly as if finished rows were gone
        nxt = _pick(logits if len(live) == len(rows) else logits[live], cfg, generator)
        tokens = nxt.tolist()
        for r, tok in zip(live, tokens, strict=True):
            out[rows[r]].append(tok)
            if tok == end_id or step + 1 >= budget[rows[r]]:
                rows[r] = None
        alive = [r for r, i in enumerate(rows) if i is not None]
        if not alive:
            break
        if len(rows) - len(alive) > threshold * len(rows):
            keep = torch.tensor(alive, dtype=torch.long, device=device)
            state.select(keep)
            rows = [rows[r] for r in alive]
            where = {r: j for j, r in enumerate(live)}
            feed = nxt[torch.tensor([where[r] for r in alive], dtype=torch.long, device=device)]
        elif len(live) == len(rows):
            feed = nxt
        else:  # finished rows still in the batch are fed anything (here <end>); their logits are never read
            feed = torch.full((len(rows),), end_id, dtype=torch.long, device=device)
            feed[torch.tensor(live, dtype=torch.long, device=device)] = nxt
        logits = state.step(feed)
    return out


def lean_by_default(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether `decode_batch` takes the lean static-cache step unless told: for the models it runs exactly, on a
    CPU only (on a GPU its small launches cost more than the `DynamicCache` step's overhead they save)."""
    return device.type == "cpu" and supports(model)


@torch.inference_mode()
def generate_beam(model, prompts: list[list[int]], end_id: int, cfg: DecodeConfig) -> list[list[int]]:
    """Beam search (optionally with sampling) through `transformers`' generate, left-padded."""
    ids, mask = left_pad(prompts, end_id, next(model.parameters()).device)
    width = ids.shape[1]
    gen = model.generate(
        input_ids=ids,
        attention_mask=mask,
        num_beams=cfg.num_beams,
        do_sample=cfg.do_sample,
        temperature=cfg.temperature if cfg.do_sample else None,
        top_p=cfg.top_p if cfg.do_sample else None,
        max_new_tokens=min(cfg.max_length - width, cfg.max_new_tokens or cfg.max_length),
        eos_token_id=end_id,
        pad_token_id=end_id,
    )
    out = []
    for row in gen[:, width:].tolist():
        out.append(row[: row.index(end_id) + 1] if end_id in row else row)
    return out


@dataclass(frozen=True)
class Triggers:
    """Token ids that delimit the steps a regret detector judges: " Define", " as" and the closing "."."""

    define: int
    as_: int
    period: int

    @classmethod
    def of(cls, tokenizer) -> Triggers:
        ids = [tokenizer(w, add_special_tokens=False).input_ids for w in (" Define", " as", ".")]
        if any(len(x) != 1 for x in ids):
            raise ValueError("retry upon regret needs ' Define', ' as' and '.' to be single tokens")
        return cls(*(x[0] for x in ids))


@torch.inference_mode()
def decode_with_regret(
    model,
    prompt: list[int],
    end_id: int,
    cfg: DecodeConfig,
    regret: Callable,
    triggers: Triggers,
    generator: torch.Generator | None = None,
) -> tuple[list[int], int]:
    """Retry upon regret (Part 2.2 §3): decode greedily; each time the model has written "Define A as", ask
    `regret(prompt, generated)`; on a detected mistake, go back to the end of the previous sentence and sample that
    sentence again (at most cfg.max_retries times per solution). Returns (generated ids, retries)."""
    device = next(model.parameters()).device
    kv = DynamicCache()

    def step(ids: list[int]) -> torch.Tensor:
        x = torch.tensor([ids], device=device)
        return model(input_ids=x, **with_cache(model, kv), use_cache=True, logits_to_keep=1).logits[:, -1]

    logits = step(prompt)
    out: list[int] = []
    start = 0  # where the current sentence begins in `out`
    retries, sampling = 0, False
    sample_cfg = DecodeConfig(mode="sample", temperature=cfg.temperature, top_p=cfg.top_p)
    while len(prompt) + len(out) < cfg.max_length:
        tok = int(_pick(logits, sample_cfg if sampling else cfg, generator)[0])
        out.append(tok)
        if tok == end_id:
            break
        if tok == triggers.period:
            start, sampling = len(out), False
        elif (
            tok == triggers.as_
            and out[start : start + 1] == [triggers.define]
            and retries < cfg.max_retries
            and regret(prompt, out)
        ):
            retries += 1
            del out[start:]
            drop = kv.get_seq_length() - (len(prompt) + len(out) - 1)  # keep all but the last kept token
            if drop > 0:
                kv.crop(-drop)
            logits = step([(prompt + out)[-1]])
            sampling = True
            continue
        logits = step([tok])
    return out, retries


def generate(
    model,
    prompts: list[list[int]],
    roles: Roles,
    cfg: DecodeConfig,
    progress=None,
    regret: Callable | None = None,
    triggers: Triggers | None = None,
    lean: bool | None = None,
) -> list[list[int]]:
    """Generations for all prompts, in their order; batches of similar prompt lengths (longest first).
    With a `regret` detector (and the tokenizer's `triggers`), each prompt is decoded with retry upon regret, in
    this process (`cfg.workers` applies to batches). `lean`: `decode_batch`'s choice of step (None: the static
    cache where the model allows it, on a CPU)."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[list[int]] = [[] for _ in prompts]
    generator = None
    if cfg.mode == "sample":
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(cfg.seed)
    elif cfg.mode == "beam" and cfg.do_sample:
        torch.manual_seed(cfg.seed)
    if regret is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(cfg.seed)
        for i in order:
            results[i] = decode_with_regret(model, prompts[i], roles.end, cfg, regret, triggers, generator)[0]
            if progress is not None:
                progress.update(1)
        return results
    size = cfg.batch_size
    if cfg.workers > 1:  # fewer batches than processes: smaller batches, one per process
        size = min(size, -(-len(order) // cfg.workers))
    chunks = [order[start : start + size] for start in range(0, len(order), size)]
    jobs = [([prompts[i] for i in chunk], roles.end, cfg, lean) for chunk in chunks]
    if cfg.workers > 1 and len(chunks) > 1:
        gens = _forked(model, jobs, cfg.workers)
    else:
        gens = (_decode_chunk(model, *job, generator) for job in jobs)
    for chunk, gen in zip(chunks, gens, strict=True):
        for i, g in zip(chunk, gen, strict=True):
            results[i] = g
        if progress is not None:
            progress.update(len(chunk))
    return results


def _decode_chunk(model, batch, end_id, cfg: DecodeConfig, lean, generator=None) -> list[list[int]]:
    if cfg.mode == "beam":
        return generate_beam(model, batch, end_id, cfg)
    return decode_batch(model, batch, end_id, cfg, generator, lean=lean)


_FORKED_MODEL = None  # the model forked decoding processes run: inherited at the fork, never pickled


def _forked_job(job) -> list[list[int]]:
    return _decode_chunk(_FORKED_MODEL, *job)


def _forked(model, jobs: list, workers: int):
    """Each job's generations, in order, from `workers` forked processes sharing this process's threads (one each
    at least). On a CPU, small models use two threads poorly (a decoding step is a few small matrix products), so
    processes of one thread each decode faster than one process with all threads (benchmarks/eval_throughput.py)."""
    import multiprocessing

    global _FORKED_MODEL
    if next(model.parameters()).device.type != "cpu":
        raise ValueError(f"decode.workers > 1 decodes on CPU only, the model is on {next(model.parameters()).device}")
    threads = torch.get_num_threads()
    _FORKED_MODEL = model
    try:
        with multiprocessing.get_context("fork").Pool(workers, _set_threads, (max(1, threads // workers),)) as pool:
            yield from pool.imap(_forked_job, jobs)
    finally:
        _FORKED_MODEL = None


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def split_generation(tokenizer, ids: list[int], roles: Roles) -> tuple[str, str | None]:
    """(solution text, answer text or None) of a generation: the solution runs to <begin_answer>, the answer to
    <end>. The solution loses its leading space (the `solution` field format)."""
    if roles.begin_answer in ids:
        k = ids.index(roles.begin_answer)
        sol, rest = ids[:k], ids[k + 1 :]
        ans = tokenizer.decode(rest[: rest.index(roles.end)] if roles.end in rest else rest)
    else:
        sol, ans = [t for t in ids if t != roles.end], None
    text = tokenizer.decode(sol)
    return (text[1:] if text.startswith(" ") else text), ans
