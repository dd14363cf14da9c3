#!/usr/bin/env bash
# Every GPU figure of the project in one command, sized for one 10-minute device command on one H100/H200 (its
# first run, on an H200 on 2026-12-04, ran out of 590 s: two parts, both decoding through the static-cache step, ran
# past their 150 s, and a follow-up measured that step 19x slower than the DynamicCache step on the GPU, so decoding
# takes it on CPUs only since; the sizes below are estimated from that run's part times, not yet run on a GPU):
#
#   bash benchmarks/gpu_check.sh          # -> benchmarks/results/gpu-<date>.md and gpu-<date>-mini-loss.png
#   bash benchmarks/gpu_check.sh --cpu    # the same parts at tiny sizes, fp32, on a CPU (tests/benchmarks/test_gpu_check.py)
#
# Parts, each a section of the report (a failing part is reported there and the others still run; the exit status
# counts the failures): environment and GPU name; a smoke model trained; bf16 batched greedy == one-by-one greedy on
# it; compiled == eager first training losses; benchmarks/train_throughput.py for gpt2-12-12 at context 768 and for
# mini; benchmarks/eval_throughput.py (ours against `generate`); a 2-minute `mini` training run with its loss curve.
# GPU_CHECK_OUT=<file.md> writes the report elsewhere, GPU_CHECK_DATA=<dir> reuses a data root with its tokenizers,
# PYTHON=<interpreter> picks the Python.
#
# On this project's lent GPU machine (no network; its image lacks hydra-core, omegaconf, antlr4 and datasets), fetch
# their wheels here once, into .whl/ (ignored by git), and carry them; in GPU mode the script installs whatever
# .whl/ holds (the set the 2026-12-04 run carried; antlr4 4.9.3 exists only as a source archive: build its wheel):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     hydra-core==1.3.8 omegaconf==2.3.1 datasets==4.4.1 dill==0.4.0 multiprocess==0.70.18
#   then: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600) and commit the report.
set -uo pipefail
cd "$(dirname "$0")/.."

CPU=""
[[ "${1:-}" == "--cpu" ]] && CPU="--cpu"
PY=${PYTHON:-python3}
DATE=$(date -u +%Y-%m-%d)
OUT=${GPU_CHECK_OUT:-benchmarks/results/gpu-$DATE.md}
PNG="${OUT%.md}-mini-loss.png"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DATA=${GPU_CHECK_DATA:-$WORK/data}  # datasets and tokenizers (a folder that already has the tokenizers saves time)

if [[ -z $CPU ]] && compgen -G ".whl/*.whl" > /dev/null; then  # wheels for the GPU machine's Python, not this one
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if [[ -n $CPU ]]; then  # tiny sizes: the whole script in a minute or two on a laptop
    SMOKE_ARGS="train.device=cpu train.steps=6 train.log_every=2"
    GREEDY_ARGS="--n 3 --max-length 200"
    COMPILE_ARGS="--model smoke --context 64 --micro-batch 2 --steps 3"
    MINI_THROUGHPUT="--model smoke --context 64 --micro-batch 2 --steps 2 --warmup 1 --no-compile"
    TOKENIZER=smoke
    EVAL_ARGS="--model smoke --n 4 --batch 2 --new-tokens 8 --repeats 1"
    # a step limit, not the clock: on a loaded 2-core machine the start alone can take 10 s (no step logged)
    MINI_RUN="+experiment=smoke train.device=cpu train.steps=10 train.log_every=2 train.ckpt_every=100000"
    MINI_SECONDS=120
    PART_LIMIT=300
else
    SMOKE_ARGS=""
    GREEDY_ARGS="--n 16 --max-length 512"
    COMPILE_ARGS="--model mini --context 512 --micro-batch 16 --steps 5"
    BIG_THROUGHPUT="--model gpt2-12-12 --context 768 --micro-batch 32 --steps 10 --warmup 3"
    MINI_THROUGHPUT="--model mini --context 512 --micro-batch 64 --steps 10 --warmup 3"
    TOKENIZER=igsm
    EVAL_ARGS="--model gpt2-12-12 --n 256 --batch 256 --new-tokens 400 --repeats 2"
    MINI_RUN="+experiment=mini train.num_workers=12 train.log_every=20 train.ckpt_every=100000"
    MINI_SECONDS=120  # all parts in one 10-minute device command (2026-12-04: the first run took 590 s and more)
    PART_LIMIT=150
fi

failures=0
report() { echo "$@" >> "$OUT"; }
# part <title> <command...>: runs the command (at most PART_LIMIT seconds) and puts its Markdown output in the report.
part() {
    local title=$1 t0=$SECONDS
    shift
    report "## $title"
    report ""
    timeout "$PART_LIMIT" bash -o pipefail -c '"$@"' part "$@" > "$WORK/part.out" 2> "$WORK/part.err"  # functions too
    local rc=$?
    cat "$WORK/part.out" >> "$OUT"
    if [[ $rc != 0 ]]; then
        failures=$((failures + 1))
        report ""
        report "**FAILED** (exit $rc$([[ $rc == 124 ]] && echo ": over its $PART_LIMIT s")); the end of its error output:"
        report '```'
        tail -n 15 "$WORK/part.err" >> "$OUT"
        report '```'
    fi
    report ""
    report "_$((SECONDS - t0)) s_"
    report ""
    echo "gpu_check: $title: $((SECONDS - t0)) s" >&2
}
fenced() {  # the output of a command that prints plain text, as a code block
    echo '```'
    "$@"
    local rc=$?
    echo '```'
    return $rc
}
smoke_model() {
    $PY -m pretrain.train +experiment=smoke out_root="$DATA" hydra.run.dir="$WORK/smoke" $SMOKE_ARGS | tail -n 3
}
mini_run() {  # stopped after MINI_SECONDS, as a time-limited job; metrics.jsonl has every logged step
    timeout --signal=INT "$MINI_SECONDS" $PY -m pretrain.train $MINI_RUN out_root="$DATA" hydra.run.dir="$WORK/mini" \
        > "$WORK/mini.log" 2>&1
    local rc=$?
    [[ $rc == 0 || $rc == 124 || $rc == 130 ]] || { tail -n 15 "$WORK/mini.log" >&2; return $rc; }
    echo "\`python -m pretrain.train $MINI_RUN\`, stopped after at most $MINI_SECONDS s:"
    echo
    $PY benchmarks/gpu_check.py curve --run "$WORK/mini" --png "$PNG"
}

export -f fenced smoke_model mini_run
export PY WORK DATA PNG SMOKE_ARGS MINI_RUN MINI_SECONDS
mkdir -p "$(dirname "$OUT")"
echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M') UTC${CPU:+ (CPU mode: tiny sizes, fp32)}" > "$OUT"
report ""
report "\`bash benchmarks/gpu_check.sh $CPU\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
report ""

part "Environment" $PY benchmarks/gpu_check.py env
if command -v nvidia-smi > /dev/null; then part "nvidia-smi" fenced nvidia-smi -L; fi
part "A smoke model (python -m pretrain.train +experiment=smoke)" fenced smoke_model
CKPT="$WORK/smoke/checkpoints/$(cat "$WORK/smoke/checkpoints/latest" 2> /dev/null)"
part "Batched greedy = one-by-one greedy (bf16 on GPU)" $PY benchmarks/gpu_check.py greedy $CPU --checkpoint "$CKPT" $GREEDY_ARGS
part "Compiled = eager: the first training losses" $PY benchmarks/gpu_check.py compile $CPU $COMPILE_ARGS
if [[ -z $CPU ]]; then  # on a CPU both throughput parts would time the same tiny model: the mini part runs alone
    part "Training throughput: gpt2-12-12, context 768" fenced $PY benchmarks/train_throughput.py $BIG_THROUGHPUT
fi
part "Training throughput: mini" fenced $PY benchmarks/train_throughput.py $MINI_THROUGHPUT
TOK=$(timeout "$PART_LIMIT" $PY benchmarks/gpu_check.py tokenizer --preset $TOKENIZER --out-root "$DATA" 2> "$WORK/tok.err" | tail -n 1)
part "Decoding throughput: ours against transformers' generate (random weights)" \
    fenced $PY benchmarks/eval_throughput.py --tokenizer "$TOK" $EVAL_ARGS
part "A time-limited mini training run ($MINI_SECONDS s)" mini_run

echo "gpu_check: wrote $OUT ($failures failed parts)" >&2
exit $failures
