#!/usr/bin/env bash
# The prepared GPU check (issues 6 and 7) for a machine with a CUDA GPU and no internet:
# memory accounting vs measured peaks, the per-step host overhead of the real architectures
# (step_overhead.py), throughput (a) vs (b) with a cold and a warm pass over the batches, and
# 1/2/4 training processes sharing the GPU (concurrency.py).
#   WHEELS=.whl DATA=<data folder> OUT=<results folder> bash benchmarks/gpu_check.sh
# WHEELS holds wheels of the pinned packages the machine lacks (transformers 4.57.6,
# tokenizers, huggingface_hub<1, adapters 1.3.0, peft 0.21, datasets and its deps); they are
# installed into a private folder, the machine's own CUDA torch is kept. Models are built
# with random weights from the bundled configs: memory and speed do not depend on weights.
# Prepare on a machine with PyPI (the three paths are git-ignored; carry them to the GPU;
# `bash benchmarks/gpu_wheels.sh` fetches a superset, with the Jupyter stack of gpu_grid.sh):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2 adapters==1.3.0 \
#     peft==0.21.2 datasets==5.0.1 dill==0.4.1 multiprocess==0.70.19
#   cp -r ../shared/data .gpudata        # the data, for a machine that cannot see ../shared
#   PYTHONPATH=src python benchmarks/throughput.py --save-tokenizer   # build/bench-tokenizer
# Then, within one call of at most 10 minutes (the memory figures exist: skip them for speed):
#   SKIP_MEMORY=1 WHEELS=.whl DATA=.gpudata OUT=$OUT bash benchmarks/gpu_check.sh
set -uo pipefail
DEPS=${DEPS:-/tmp/benchdeps}
OUT=${OUT:-benchmarks/results}
MEMORY_LIMIT_S=${MEMORY_LIMIT_S:-200}
THROUGHPUT_LIMIT_S=${THROUGHPUT_LIMIT_S:-240}
OVERHEAD_LIMIT_S=${OVERHEAD_LIMIT_S:-90}
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$DEPS" "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH="src:$DEPS${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -c "import torch, transformers, adapters, peft, datasets; print('torch', torch.__version__,
'transformers', transformers.__version__, 'adapters', adapters.__version__, 'peft',
peft.__version__, 'datasets', datasets.__version__, torch.cuda.get_device_name())" || exit 1
mkdir -p "$OUT"
status=0
[ -n "${SKIP_MEMORY:-}" ] || timeout "$MEMORY_LIMIT_S" python3 benchmarks/memory.py --device cuda --out "$OUT" \
  ${MEMORY_ARGS:-} || status=$?
echo "memory benchmark exit $status"
[ -n "${SKIP_OVERHEAD:-}" ] || timeout "$OVERHEAD_LIMIT_S" python3 benchmarks/step_overhead.py \
  --device cuda --out "$OUT" || status=$?
echo "step overhead benchmark exit $status"
timeout "$THROUGHPUT_LIMIT_S" python3 benchmarks/throughput.py --device cuda --random-init \
  --model roberta-base --model bert-base-uncased --data-dir "${DATA:-data}" --out "$OUT" \
  ${THROUGHPUT_ARGS:-} || status=$?
echo "throughput benchmark exit $status"
[ -n "${SKIP_CONCURRENCY:-}" ] || timeout "${CONCURRENCY_LIMIT_S:-150}" python3 benchmarks/concurrency.py \
  --device cuda --random-init --model bert-base-uncased --workers 1,2,4 \
  --data-dir "${DATA:-data}" --out "$OUT" ${CONCURRENCY_ARGS:-} || status=$?
echo "concurrency benchmark exit $status"
ls -la "$OUT"
exit $status
