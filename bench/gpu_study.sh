#!/usr/bin/env bash
# The student-size question on one GPU (docs/gpu_study.md): the tiny student (4 x 128) and a GPT-B-shaped one
# (12 x 768, aligned at block 8), baseline and Mirai-I (Lite1 stride 8), on all 60000 Fashion-MNIST images as 8x8
# tokens, bf16, 3000 steps, validation NLL every 250 steps: one JSON of curves and paired statistics.
#
#     python bench/gpu_study.py prepare   # once, on any machine with the data: bench/gpu_study_data.tar.gz (31 MiB)
#     bash bench/gpu_study.sh             # on the GPU machine, from the repository root: $OUT/gpu_study.json
#
# A bare GPU machine has torch but not pydantic or torch-fidelity: the wheels in .whl/ (bench/gpu_wheels.sh) are
# installed into /tmp/site when present. Settings (environment): OUT (default runs/gpu_study), GPU_STUDY_DATA
# (the .tar.gz, or an unpacked folder; default bench/gpu_study_data.tar.gz), GPU_STUDY_WORK (default
# /tmp/gpu_study), PYTHON (default python3). Extra arguments go to `gpu_study.py run` (e.g. --seeds 0 1,
# --students tiny, --set train.lr=2e-4). GPU_STUDY_CPU=1 runs the same code at tiny shapes and steps on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu_study}
DATA=${GPU_STUDY_DATA:-bench/gpu_study_data.tar.gz}
WORK=${GPU_STUDY_WORK:-/tmp/gpu_study}

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${GPU_STUDY_CPU:-0}" != "1" ]] && \
   [[ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" != "1" ]]; then
  echo "gpu_study: no CUDA device here (torch.cuda.is_available() is False): run it on a GPU machine, or set GPU_STUDY_CPU=1 for the CPU check" >&2
  exit 2
fi
if [[ -d "$DATA" ]]; then
  folder=$DATA
elif [[ -f "$DATA" ]]; then
  mkdir -p "$WORK"
  tar -xzf "$DATA" -C "$WORK"
  folder=$WORK/gpu_study_data
else
  echo "gpu_study: no data at $DATA: make it with 'python bench/gpu_study.py prepare' and carry it with the repository" >&2
  exit 2
fi
mkdir -p "$OUT"
"$PY" bench/gpu_study.py run --data "$folder" --out "$OUT/gpu_study.json" --work "$WORK/runs" "$@"
