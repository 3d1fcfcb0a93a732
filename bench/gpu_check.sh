#!/usr/bin/env bash
# The GPU check: the real engine (build_run / train_step / the trainer / sampling / evaluation) on one CUDA
# device, one PASS/FAIL line per check with its figure, results as JSON (docs/gpu.md says what each check means).
#
#     bash bench/gpu_wheels.sh        # once, on a machine with network: the missing packages as wheels in .whl/
#     bash bench/gpu_check.sh         # on the GPU machine, from a copy of the repository holding .whl/
#
# A bare GPU image (torch, timm, typer, rich, numpy; no pydantic, no torch-fidelity, no network) gets the wheels
# of .whl/ installed into /tmp/site first. Results: $OUT/gpu_check.json when OUT is set (else GPU_CHECK_JSON,
# else none). GPU_CHECK_CPU=1 runs the same checks on the CPU at tiny shapes (seconds of compute; the test suite
# runs it so that the script cannot rot); it measures nothing. Settings: PYTHON (default python3),
# GPU_CHECK_PEAK_TFLOPS (bf16 dense peak of the GPU, for MFU; known GPUs are looked up).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [[ "${GPU_CHECK_CPU:-0}" != "1" ]]; then
  if ! ls /dev/nvidia[0-9]* >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU on this machine (no /dev/nvidia*, no nvidia-smi): run it on a machine with one, or GPU_CHECK_CPU=1 for the CPU mode" >&2
    exit 2
  fi
fi

# The packages the bare image lacks, from the wheels gpu_wheels.sh downloaded.
if ! "$PY" -c 'import pydantic, torch_fidelity' >/dev/null 2>&1; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: pydantic / torch-fidelity are missing and there is no .whl/ folder: run 'bash bench/gpu_wheels.sh' on a machine with network and bring .whl/ along" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

if [[ "${GPU_CHECK_CPU:-0}" != "1" ]] && [[ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" != "1" ]]; then
  echo "gpu_check: torch sees no CUDA device here (torch.cuda.is_available() is False): check the driver / CUDA_VISIBLE_DEVICES" >&2
  exit 2
fi

exec "$PY" -m bench.gpu_check ${GPU_CHECK_JSON:+--json "$GPU_CHECK_JSON"}
