#!/usr/bin/env bash
# One device-machine run of the scoring benchmark + GPU tests (docs/benchmarks.md, "Scoring").
# Needs, carried from the repo root: .benchdata (bench_scoring.py prep) and .whl (open_clip_torch,
# ftfy, wcwidth wheels for Python 3.12: the device image has torch/torchvision/tokenizers but
# not open_clip). Results go to $OUT (bench.json is rewritten after every step).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
timeout "${BENCH_TIMEOUT:-90}" python3 benchmarks/bench_scoring.py run --sets crop256,raw,keep256 \
    --json "$OUT/bench.json" ${BENCH_ARGS:-} 2>&1 | grep -v "No pretrained weights" | tee "$OUT/bench.log"
mkdir -p /tmp/d/imagenet-sample-images-subset
for f in .benchdata/raw/*.jpg; do cp "$f" "/tmp/d/imagenet-sample-images-subset/$(basename "$f" .jpg).JPEG"; done
CLIPCURATE_DATA=/tmp/d timeout "${TEST_TIMEOUT:-40}" python3 -m pytest tests/test_scoring_gpu.py -q -x \
    -p no:cacheprovider 2>&1 | tee "$OUT/gputests.log"
