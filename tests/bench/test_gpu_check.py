"""bench/gpu_check.sh in its CPU mode (GPU_CHECK_CPU=1, tiny shapes): the prepared GPU check runs end to end on
the real engine, prints one PASS line per check and writes its JSON, so the script cannot rot before a GPU
machine runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {f"train/{v}/eager" for v in ("baseline", "mirai-e", "mirai-i-cached", "mirai-i-online")} | {
    "defaults", "resume", "fsdp", "sample/tokens", "sample/b4", "evaluate"}


@pytest.mark.slow
def test_gpu_check_cpu_mode_passes_every_check(tmp_path):
    results = tmp_path / "gpu_check.json"
    env = {**os.environ, "GPU_CHECK_CPU": "1", "GPU_CHECK_JSON": str(results), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT), "OUT": ""}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert {line.split()[1].rstrip(":") for line in lines} == CHECKS, proc.stdout + proc.stderr
    assert all(line.startswith("PASS ") for line in lines), "\n".join(lines) + proc.stderr[-3000:]
    assert proc.returncode == 0
    data = json.loads(results.read_text())
    assert data["mode"] == "cpu" and {c["check"] for c in data["checks"]} == CHECKS
    assert all(c["pass"] for c in data["checks"])
    train = [c for c in data["checks"] if c["check"].startswith("train/")]
    assert all(c["finite"] and c["step_s"] > 0 and c["tokens_per_s"] > 0 for c in train)
