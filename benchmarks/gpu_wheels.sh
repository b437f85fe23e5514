#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu_wheels.txt for a Python 3.12 x86-64 Linux machine
# without internet (the GPU machine) into .whl/ (git-ignored). Binary wheels (pyzmq,
# tokenizers, rpds-py, tornado) are the manylinux cp312 ones.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-.whl}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # exactly this list: two versions of one package stop the whole install
grep -v '^\s*#' benchmarks/gpu_wheels.txt | grep -v '^\s*$' > /tmp/gpu_wheels.req
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
  -d "$DEST" -r /tmp/gpu_wheels.req
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
