#!/usr/bin/env bash
# The GPU figures in one run (device sessions): image screening speed, the text
# featurizer's architecture, and the image / stored-format detection cases on CUDA.
# Needs a python3 with torch (CUDA), scikit-learn, pyarrow, pandas, Pillow, transformers;
# cleanlab may come as wheels in .whl/. Output goes to ${OUT:-/tmp/dataward-gpu}.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/dataward-gpu}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/device.txt"
timeout 240 python3 benchmarks/bench_image_speed.py --sizes 1000,3500,10000,30000 --device cuda 2>&1 | tee "$out/image_speed.txt"
timeout 60 python3 benchmarks/bench_featurize.py --architecture-only --device cuda 2>&1 | tee "$out/minilm_arch.txt"
timeout 200 python3 benchmarks/bench_detection.py --quick --only digits_image,image_files,mixed_table --threads 1 2>&1 | tee "$out/detection_gpu.txt"
