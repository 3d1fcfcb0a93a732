"""bench/gpu_study.sh in its CPU mode (GPU_STUDY_CPU=1: the same code at tiny shapes and steps): `prepare` makes
the carried archive from Fashion-MNIST-format files the test writes, then the script trains both students, both
arms, through the library's ablate runner and engine, and writes one JSON of validation-NLL curves."""

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# A seconds-long tokenizer and 16 px images (8x8 tokens, as the real study's 32 px with the tiny tokenizer).
SMALL = ["data.image_size=16", "tokenizer.ch_mult=[1, 2]", "tokenizer.codebook_size=64", "tokenizer.codebook_dim=4",
         "tokenizer.ch=16", "tokenizer.z_channels=8", "tokenizer.fit_steps=2", "tokenizer.fit_batch_size=8",
         "tokenizer.encode_batch_size=16", "tokenizer.shard_size=16", "foresight.projector_dim=32",
         "foresight.warmup=0", "train.lr_warmup=0"]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(root: Path) -> Path:
    """Fashion-MNIST's four idx files, 28x28 grey images whose bright band follows the label."""
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 12)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label: 2 * label + 8] = 220
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_prepare_then_the_cpu_mode_writes_both_students_curves(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "MIRAI_DATA": str(fake_fashion_mnist(tmp_path / "data")), "MIRAI_CACHE": str(tmp_path / "cache")}
    sets = [arg for item in SMALL for arg in ("--set", item)]
    data = tmp_path / "carry" / "gpu_study_data"
    prepared = run([sys.executable, str(REPO / "bench" / "gpu_study.py"), "prepare", "--out", str(data),
                    "--images", "40", "--val-images", "12", *sets], env, tmp_path)
    archive = data.parent / "gpu_study_data.tar.gz"
    assert str(archive) in prepared.stdout
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    for part in ("tokens/manifest.json", "tokens-val/manifest.json", "fashion-mnist/train-images-idx3-ubyte.gz",
                 "teacher/efficientnet-lite1-stride8.pth"):
        assert f"gpu_study_data/{part}" in names, names
    assert not any("t10k" in name for name in names)  # the validation images travel as tokens only

    out = tmp_path / "out"
    env |= {"GPU_STUDY_CPU": "1", "OUT": str(out), "GPU_STUDY_DATA": str(archive),
            "GPU_STUDY_WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    env.pop("MIRAI_DATA")  # the script finds the training images in the archive
    run(["bash", str(REPO / "bench" / "gpu_study.sh"), *sets], env, tmp_path)
    result = json.loads((out / "gpu_study.json").read_text())
    assert result["cpu_mode"] is True and result["images"] == 40 and set(result["students"]) == {"tiny", "gpt-b"}
    big, small = result["students"]["gpt-b"], result["students"]["tiny"]
    assert big["parameters"]["non_embedding"] > small["parameters"]["non_embedding"]  # 12 layers vs 4
    for student in (big, small):
        assert set(student["curves"]) == {"baseline", "source-encoder"}
        for curve in student["curves"].values():
            assert list(curve) == ["2", "4"] and all(v > 0 for v in curve.values())
        assert student["paired_val_nll"]["final_step"] == 4 and student["paired_val_nll"]["final_gain"]["n"] == 1
        assert student["report"]["paired"] is True
    assert "model.layers=12" in big["overrides"] and "foresight.depth=8" in big["overrides"]
