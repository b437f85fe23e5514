#!/usr/bin/env bash
# The report's 75-run grid on one GPU through the user's own command (issue 14), on a GPU
# machine without internet, in one call of at most ~9 minutes:
#   1. installs the carried wheels (benchmarks/gpu_wheels.txt) into a private folder (no venv);
#   2. registers the Jupyter kernel `nlpdl-report` for that python + folder (papermill's kernel);
#   3. writes a Hugging Face cache of random-init roberta-base / bert-base-uncased / SciBERT
#      (`python -m helpers rehearse-hub`), used through HF_HOME + HF_HUB_OFFLINE=1;
#   4. runs `make report GRID=params/full.yaml DEVICES=0 [RUNS_PER_DEVICE=N]` (the grid, then
#      the analysis notebook), sampling nvidia-smi meanwhile;
#   5. writes $OUT/grid_cuda.json (benchmarks/grid_timing.py) + the make log and GPU samples;
#   6. with MEMORY=1, benchmarks/memory.py --device cuda (raw GPU memory figures, issue 13).
# Prepare on a machine with PyPI (each of these paths is git-ignored; carry them):
#   bash benchmarks/gpu_wheels.sh                                   # .whl/ (~41 MiB)
#   rm -rf .gpudata && cp -r ../shared/data .gpudata                # the data (~4 MiB)
#   PYTHONPATH=src python benchmarks/throughput.py --save-tokenizer # build/bench-tokenizer
# Then on the GPU machine (carry .whl .gpudata build/bench-tokenizer):
#   OUT=$OUT bash benchmarks/gpu_grid.sh
# Settings (environment): RUNS_PER_DEVICE (default: the grid runner's choice from GPU memory
# and CPU cores), DEVICES (0), GRID (params/full.yaml), BUDGET_S (540: the whole script;
# the grid gets all of it but the setup and RESERVE_S (30) and is interrupted (resumable) at
# its limit; the analysis notebook runs in what is left; what completed is reported),
# GRID_ARGS (extra `grid run` flags), MEMORY=1, WORK (/tmp/nlpdl-grid: runs, build, cache),
# MPS (auto: the grid runner's private CUDA MPS daemon; off / on; helpers/grid/mps.py).
# Calling it again on the same (still warm) machine resumes: wheels and cache are kept, the
# grid skips complete runs, and grid_cuda.json sums the grid's wall time over the calls.
# TINY=1 rehearses this script on a CPU: tiny models, DEVICES empty (2 CPU workers), and
# GRID_ARGS limiting the grid to 5 short runs.
set -uo pipefail
START=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
WORK=${WORK:-/tmp/nlpdl-grid}
# "site-packages" in the path: datasets pickles objects of modules elsewhere by value
DEPS=${DEPS:-$WORK/lib/site-packages}
WHEELS=${WHEELS:-.whl}
DATA=${DATA:-.gpudata}
TOKENIZER=${TOKENIZER:-build/bench-tokenizer}
GRID=${GRID:-params/full.yaml}
BUDGET_S=${BUDGET_S:-540}
# seconds kept at the end for writing the results; the grid may use all the rest (the
# analysis notebook runs in what the grid leaves, and is cut at the budget's end)
RESERVE_S=${RESERVE_S:-30}
MEMORY_LIMIT_S=${MEMORY_LIMIT_S:-120}
PY=${PYTHON:-python3}
if [ -n "${TINY:-}" ]; then
  DEVICES=${DEVICES-}
  GRID_ARGS=${GRID_ARGS:---filter seed=1 --filter dataset=acl_sup --set max_train_samples=16 --set max_eval_samples=16 --set num_train_epochs=1}
else
  DEVICES=${DEVICES-0}
  GRID_ARGS=${GRID_ARGS:-}
fi
mkdir -p "$OUT" "$WORK"
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_grid $(elapsed)s] $*"; }

# 1. wheels -> a private folder first on PYTHONPATH (the machine's CUDA torch is kept)
WHEEL_LIST=$(ls "$WHEELS"/*.whl 2>/dev/null | xargs -r -n1 basename | sort | md5sum | cut -c1-16)
if [ -f "$DEPS/.wheels-$WHEEL_LIST" ]; then  # a second call on the same machine: resume
  INSTALL_S=0
  say "wheels already installed in $DEPS"
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
  t=$(date +%s)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$DEPS" "$WHEELS"/*.whl || { say "wheel install failed"; exit 1; }
  touch "$DEPS/.wheels-$WHEEL_LIST"
  INSTALL_S=$(( $(date +%s) - t ))
else
  INSTALL_S=0
  say "no wheels in $WHEELS: using the installed packages"
fi
export PYTHONPATH="$PWD/src${DEPS:+:$DEPS}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
"$PY" -c "import torch, transformers, adapters, peft, datasets, papermill, ipykernel
print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets',
      datasets.__version__, 'papermill', papermill.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" || exit 1

# 2. the kernel papermill starts: this python, with the same PYTHONPATH
KERNELS="$WORK/jupyter"
"$PY" -m ipykernel install --prefix "$KERNELS" --name nlpdl-report \
  --display-name "Python (nlpdl-report)" >/dev/null || exit 1
# (+ the carried packages' data files: nbconvert's HTML templates)
export JUPYTER_PATH="$KERNELS/share/jupyter:$DEPS/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
"$PY" - "$KERNELS/share/jupyter/kernels/nlpdl-report/kernel.json" "$PY" <<'EOF' || exit 1
import json, os, shutil, sys
spec = json.load(open(sys.argv[1]))
spec["argv"][0] = shutil.which(sys.argv[2]) or spec["argv"][0]  # the interpreter used here
spec["env"] = {"PYTHONPATH": os.environ["PYTHONPATH"]}
json.dump(spec, open(sys.argv[1], "w"), indent=1)
EOF

# 3. the model cache (random weights, real layout), used offline
export HF_HOME="$WORK/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
t=$(date +%s)
TOK_ARG=()
[ -d "$TOKENIZER" ] && TOK_ARG=(--tokenizer "$TOKENIZER")
if [ -f "$HF_HOME/rehearsal.json" ]; then
  say "model cache already in $HF_HOME"
else
  "$PY" -m helpers rehearse-hub "$HF_HOME" "${TOK_ARG[@]}" ${TINY:+--tiny} || exit 1
fi
HUB_S=$(( $(date +%s) - t ))

# CUDA MPS: the grid runner starts a private daemon itself when several runs share the GPU
# (`grid run --mps auto`, helpers/grid/mps.py); MPS=off measures without it, MPS=on insists.
case "${MPS:-}" in 1) MPS=on;; 0) MPS=off;; esac

# 4. the user's command: make report (grid, then the analysis notebook)
export NLPDL_DATA_DIR
NLPDL_DATA_DIR=$(cd "$DATA" && pwd) || { say "no data folder $DATA"; exit 1; }
touch "$WORK/.installed"  # make's venv step is done: this machine's python is the env
MEMORY_S=0; [ -n "${MEMORY:-}" ] && MEMORY_S=$MEMORY_LIMIT_S
GRID_LIMIT_S=$(( BUDGET_S - $(elapsed) - RESERVE_S - MEMORY_S ))
say "setup: wheels ${INSTALL_S}s, model cache ${HUB_S}s; grid gets at most ${GRID_LIMIT_S}s"
UTIL="$OUT/grid_gpu_util.csv"
SMI_PID=
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 2000 > "$UTIL" 2>/dev/null &
  SMI_PID=$!
fi
LOG="$OUT/grid_make.log"
MAKE_ARGS=(report GRID="$GRID" DEVICES="$DEVICES" PY="$PY" STAMP="$WORK/.installed"
           RUNS="$WORK/runs" BUILD="$WORK/build" GRID_ARGS="$GRID_ARGS")
[ -n "${RUNS_PER_DEVICE:-}" ] && MAKE_ARGS+=(RUNS_PER_DEVICE="$RUNS_PER_DEVICE")
[ -n "${MPS:-}" ] && MAKE_ARGS+=(MPS="$MPS")
report() {  # `make report ...`, or where make is missing the two commands it runs
  if command -v "${MAKE:-make}" >/dev/null; then
    "${MAKE:-make}" "${MAKE_ARGS[@]}"
  else
    echo "make is not installed: running the two commands of make report"
    local dev=(--workers 2)
    [ -n "$DEVICES" ] && dev=(--devices "$DEVICES" ${RUNS_PER_DEVICE:+--runs-per-device "$RUNS_PER_DEVICE"} ${MPS:+--mps "$MPS"})
    # shellcheck disable=SC2086
    "$PY" -m helpers grid run "$GRID" $GRID_ARGS "${dev[@]}" --runs-dir "$WORK/runs" &&
      "$PY" -m helpers report --grid "$GRID" --runs-dir "$WORK/runs" \
        --output-dir "$WORK/build" --kernel nlpdl-report
  fi
}
echo "make ${MAKE_ARGS[*]}" > "$LOG"
GRID_START=$(date +%s)
# own process group, so that the time limit interrupts the grid like a Ctrl-C would
export -f report; export PY GRID GRID_ARGS DEVICES RUNS_PER_DEVICE MPS WORK MAKE
MAKE_ARGS_STR=$(printf '%q ' "${MAKE_ARGS[@]}")
setsid bash -c "MAKE_ARGS=($MAKE_ARGS_STR); report" >> "$LOG" 2>&1 &
MAKE_PID=$!
(
  sleep "$GRID_LIMIT_S"
  if ! grep -q "^summary:" "$LOG"; then  # still in the grid: interrupt it (resumable)
    echo "[gpu_grid] grid time limit ${GRID_LIMIT_S}s reached: interrupting" >> "$LOG"
    kill -INT -- -"$MAKE_PID" 2>/dev/null; sleep 15; kill -KILL -- -"$MAKE_PID" 2>/dev/null
  fi
) &
WATCH_PID=$!
# the analysis step may run until the budget's end
( sleep $(( BUDGET_S - $(elapsed) - 10 - MEMORY_S )); kill -KILL -- -"$MAKE_PID" 2>/dev/null ) &
HARD_PID=$!
GRID_END=
while kill -0 "$MAKE_PID" 2>/dev/null; do
  if [ -z "$GRID_END" ] && grep -q "^summary:" "$LOG"; then GRID_END=$(date +%s); fi
  sleep 1
done
wait "$MAKE_PID"; MAKE_RC=$?
MAKE_END=$(date +%s)
kill "$WATCH_PID" "$HARD_PID" 2>/dev/null
[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null
GRID_END=${GRID_END:-$MAKE_END}
GRID_S=$(( GRID_END - GRID_START )); ANALYSIS_S=$(( MAKE_END - GRID_END ))
say "make exit $MAKE_RC: grid ${GRID_S}s, analysis ${ANALYSIS_S}s"
# a grid finished over several calls (resumed on the same machine): its wall time is the sum
CALLS="$WORK/grid_seconds.$(echo "$GRID $GRID_ARGS" | md5sum | cut -c1-8)"  # per grid
echo "$GRID_S" >> "$CALLS"
GRID_TOTAL_S=$("$PY" -c "import sys; print(sum(float(x) for x in open(sys.argv[1])))" "$CALLS")
tail -n 40 "$LOG"

# 5. the figures
SET_ARGS=()
read -r -a EXTRA <<< "$GRID_ARGS"
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
  case "${EXTRA[i]}" in --set|--filter) SET_ARGS+=("${EXTRA[i]}" "${EXTRA[i+1]}"); i=$((i+1));; esac
done
"$PY" benchmarks/grid_timing.py --grid "$GRID" --runs-dir "$WORK/runs" \
  --grid-seconds "$GRID_TOTAL_S" --grid-calls "$(paste -sd, "$CALLS")" \
  --analysis-seconds "$ANALYSIS_S" --total-seconds "$(elapsed)" \
  --setup "{\"wheels_s\": $INSTALL_S, \"model_cache_s\": $HUB_S, \"make_exit\": $MAKE_RC}" \
  --util "$UTIL" --runs-per-device "${RUNS_PER_DEVICE:-auto}" \
  --device "$([ -n "$DEVICES" ] && echo cuda || echo cpu)" \
  --note "make report through papermill, random-init models from rehearse-hub${TINY:+ (TINY)}; $(grep -m1 '^MPS: ' "$LOG" || echo 'MPS: not reported')" \
  "${SET_ARGS[@]}" --out "$OUT" || MAKE_RC=${MAKE_RC:-1}
[ -f "$WORK/build/analysis.ipynb" ] && say "analysis notebook executed: $WORK/build/analysis.ipynb"

# 6. raw GPU memory figures (issue 13), if asked and time is left
if [ -n "${MEMORY:-}" ]; then
  timeout "$MEMORY_LIMIT_S" "$PY" benchmarks/memory.py --device cuda --out "$OUT" \
    ${MEMORY_ARGS:-} || say "memory benchmark exit $?"
fi
say "done"
ls -la "$OUT"
exit "$MAKE_RC"
