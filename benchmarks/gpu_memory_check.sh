#!/usr/bin/env bash
# Prepared GPU check for issue 6 (memory): run on the device machine from the repo root.
#   WHEELS=<folder with transformers 4.57.6, tokenizers, huggingface_hub<1, adapters 1.3.0,
#           peft 0.21.x, safetensors wheels> bash benchmarks/gpu_memory_check.sh
# Installs the wheels into a private folder (the machine's own torch is kept, no internet),
# runs benchmarks/memory.py on CUDA and copies the JSON to $OUT (when set) and
# benchmarks/results/. Budget: about 3 minutes on one H100; LIMIT_S caps it.
set -euo pipefail
LIMIT_S=${LIMIT_S:-420}
DEPS=${DEPS:-/tmp/memdeps}
if [ -n "${WHEELS:-}" ]; then
  python -m pip install --quiet --no-index --no-deps --target "$DEPS" "$WHEELS"/*.whl
fi
export PYTHONPATH="src:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -c "import torch, transformers, adapters, peft; print(torch.__version__, \
transformers.__version__, adapters.__version__, peft.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
status=0
timeout "$LIMIT_S" python benchmarks/memory.py --device cuda --out benchmarks/results/ "$@" \
  || status=$?
if [ -n "${OUT:-}" ]; then cp benchmarks/results/memory_cuda.json "$OUT"/ 2>/dev/null || true; fi
exit $status
