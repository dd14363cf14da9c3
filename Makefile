# igsm-lab: each target is one command; together they document the workflow.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install data test lint bench clean cpu-pipeline cpu-train cpu-eval cpu-probe cpu-rur cpu-aggregate cpu-finetune-grid \
	cpu-selfcorrect cpu-score cpu-star cpu-pair-sft cpu-selfcorrect-summary cpu-three-ways

# A local virtual environment with torch pinned to 2.13.0 (a CPU wheel here) before anything else can pull CUDA.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(PY) -m pretrain.make_data

# Two pytest workers (one torch thread each: tests/conftest.py); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/generator.py
	$(PY) benchmarks/verifier.py
	$(PY) benchmarks/data.py

# The whole pipeline on a CPU, in order (benchmarks/results/cpu-tiny-run.md; about 1.5 hours on 2 cores):
#   make cpu-train cpu-eval cpu-probe cpu-rur cpu-aggregate      (or: make cpu-pipeline)
# EXP names a conf/experiment/ file; the run lands in runs/cpu/$(EXP), its reports beside its checkpoints, and
# cpu-aggregate tables every run under runs/cpu/. The *_ARGS hold the sizes; e.g. minutes instead of hours:
#   make cpu-pipeline EXP=smoke EVAL_ARGS=eval=smoke PROBE_ARGS=probe=smoke RUR_ARGS="eval=smoke eval.n=2"
EXP        ?= cpu_tiny
EVAL_ARGS  ?= eval.decode.max_length=1024
PROBE_ARGS ?= probe.n_problems=300 probe.vprobe_steps=300 probe.vprobe_batch=32
RUR_ARGS   ?= eval.n=128 eval.decode.max_length=1024
RUN        := runs/cpu/$(EXP)
CKPT        = $(RUN)/checkpoints/$$(cat $(RUN)/checkpoints/latest)
GENERATIONS = $(RUN)/eval/$$(cat $(RUN)/checkpoints/latest)/greedy/generations.jsonl

cpu-pipeline: cpu-train cpu-eval cpu-probe cpu-rur cpu-aggregate

cpu-train: $(STAMP)
	$(PY) -m pretrain.train +experiment=$(EXP) hydra.run.dir=$(RUN)

cpu-eval: $(STAMP)
	$(PY) -m pretrain.evaluate checkpoint=$(CKPT) $(EVAL_ARGS)

cpu-probe: $(STAMP)
	$(PY) -m probes.probe checkpoint=$(CKPT) probe.generations=$(GENERATIONS) $(PROBE_ARGS)

cpu-rur: $(STAMP)
	$(PY) -m probes.rur checkpoint=$(CKPT) detector=perfect $(RUR_ARGS)

cpu-aggregate: $(STAMP)
	$(PY) -m pretrain.aggregate runs/cpu

# Part 2.2 Fig. 7 on a CPU, end to end: the $(EXP) run's newest checkpoint finetuned on retry data 0.2 (with and
# without mask) by LoRA qv4e8 ... qv256e512 and by full finetuning (16 runs of the laptop recipe), each run's last
# checkpoint evaluated, then one table and Fig. 7-style figure with the base beside (evaluate it first: cpu-eval,
# with the same FT_EVAL_ARGS). E.g. a tiny budget (7 minutes on 2 busy cores):
#   make cpu-train cpu-eval cpu-finetune-grid EXP=smoke EVAL_ARGS="eval=smoke eval.n=2" \
#        FT_ARGS="finetune=smoke finetune.train.steps=2" FT_EVAL_ARGS="eval=smoke eval.n=2"
FT_ARGS      ?=
FT_EVAL_ARGS ?= $(EVAL_ARGS)
FT_GRID      := runs/cpu/finetune_grid_$(EXP)
cpu-finetune-grid: $(STAMP)
	$(PY) -m pretrain.finetune -m +experiment=finetune_grid_laptop checkpoint=$(CKPT) hydra.sweep.dir=$(FT_GRID) $(FT_ARGS)
	for d in $(FT_GRID)/ft_*/; do \
	  $(PY) -m pretrain.evaluate checkpoint=$${d}checkpoints/$$(cat $${d}checkpoints/latest) $(FT_EVAL_ARGS) || exit 1; \
	done
	$(PY) -m pretrain.aggregate $(FT_GRID) $(RUN)

# Self-correction from the run's newest checkpoint (README "Self-correction by RL"): SCoRe's Stage I -> II, then the
# STaR and Pair-SFT baselines, each in <run>/selfcorrect/<method>, then one table and figure of them all.
# The base model should know the two-attempt format:
#   make cpu-train cpu-selfcorrect EXP=laptop_two_attempts
#   make cpu-train cpu-selfcorrect EXP=smoke RL_ARGS=rl=smoke                 (seconds: the machinery only)
RL_ARGS    ?= rl=laptop

cpu-selfcorrect: cpu-score cpu-star cpu-pair-sft cpu-selfcorrect-summary

cpu-score: $(STAMP)
	$(PY) -m pretrain.selfcorrect checkpoint=$(CKPT) $(RL_ARGS) hydra.run.dir=$(RUN)/selfcorrect/score

cpu-star: $(STAMP)
	$(PY) -m pretrain.selfcorrect checkpoint=$(CKPT) $(RL_ARGS) rl.method=star hydra.run.dir=$(RUN)/selfcorrect/star

cpu-pair-sft: $(STAMP)
	$(PY) -m pretrain.selfcorrect checkpoint=$(CKPT) $(RL_ARGS) rl.method=pair_sft hydra.run.dir=$(RUN)/selfcorrect/pair_sft

cpu-selfcorrect-summary: $(STAMP)
	$(PY) -m pretrain.selfcorrect_summary $(RUN)/selfcorrect

# Three ways to self-correct at one token budget (issue 12 §3; README "Three ways to self-correct"), all in
# runs/cpu/three_ways_$(TW_EXP)/: the clean two-attempt base (clean/) evaluated greedily and by beam search, probed,
# decoded with retry upon regret (the probe as detector), and trained by SCoRe (score/); then the retry-data twin
# (retry/: +experiment=$(TW_RETRY) $(TW_RETRY_ARGS)) pretrained on the clean run's tokens + SCoRe's RL tokens
# (`pretrain.three_ways --budget`) and evaluated greedily; then one table and figure (summary.md/.json/.png).
# Every evaluation scores the same first TW_N problems of each test split (SCoRe's too: rl.eval_n). Seconds:
# (TW_EVAL_ARGS: eval.* keys only, so that the evaluations keep their names: greedy, $(TW_BEAM), rur_probe)
#   make cpu-three-ways TW_EXP=smoke TW_RETRY=smoke TW_RETRY_ARGS=+mistakes=retry0.5 TW_N=2 PROBE_ARGS=probe=smoke \
#     TW_PROBE=smoke RL_ARGS=rl=smoke TW_EVAL_ARGS="eval.decode.max_length=900 eval.decode.batch_size=4"
TW_EXP       ?= laptop_two_attempts
TW_RETRY     ?= laptop_two_attempts_retry
TW_RETRY_ARGS ?=
TW_N         ?= 128
TW_EVAL_ARGS ?= eval.decode.max_length=1024
TW_BEAM      ?= beam4
TW_PROBE     ?= default
TW            = runs/cpu/three_ways_$(TW_EXP)
tw_ckpt       = $(1)/checkpoints/$$(cat $(1)/checkpoints/latest)

cpu-three-ways: $(STAMP)
	$(PY) -m pretrain.train +experiment=$(TW_EXP) hydra.run.dir=$(TW)/clean
	$(PY) -m pretrain.evaluate checkpoint=$(call tw_ckpt,$(TW)/clean) $(TW_EVAL_ARGS) eval.n=$(TW_N)
	$(PY) -m pretrain.evaluate checkpoint=$(call tw_ckpt,$(TW)/clean) eval=$(TW_BEAM) $(TW_EVAL_ARGS) eval.n=$(TW_N)
	$(PY) -m probes.probe checkpoint=$(call tw_ckpt,$(TW)/clean) probe.generations=$(TW)/clean/eval/$$(cat $(TW)/clean/checkpoints/latest)/greedy/generations.jsonl $(PROBE_ARGS)
	$(PY) -m probes.rur checkpoint=$(call tw_ckpt,$(TW)/clean) detector=probe probe_dir=$(TW)/clean/probes/$$(cat $(TW)/clean/checkpoints/latest)/$(TW_PROBE) $(TW_EVAL_ARGS) eval.n=$(TW_N)
	$(PY) -m pretrain.selfcorrect checkpoint=$(call tw_ckpt,$(TW)/clean) $(RL_ARGS) rl.eval_n=$(TW_N) hydra.run.dir=$(TW)/score
	$(PY) -m pretrain.train +experiment=$(TW_RETRY) $(TW_RETRY_ARGS) hydra.run.dir=$(TW)/retry train.steps=null train.tokens=$$($(PY) -m pretrain.three_ways --budget --clean $(TW)/clean --score $(TW)/score)
	$(PY) -m pretrain.evaluate checkpoint=$(call tw_ckpt,$(TW)/retry) $(TW_EVAL_ARGS) eval.n=$(TW_N)
	$(PY) -m pretrain.three_ways --clean $(TW)/clean --retry $(TW)/retry --score $(TW)/score --beam $(TW_BEAM) --out $(TW)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
