"""The student-size question on one GPU: does Mirai-I's paired gain grow from the tiny student (4 x 128) to a
GPT-B-shaped one (12 x 768, aligned at block 8)? Both students, baseline and Mirai-I (EfficientNet-Lite1's
stride-8 stage at 64 px, lambda 0.5: the study's best teacher), on all 60000 Fashion-MNIST training images as 8x8
tokens of the tiny tokenizer, bf16, 3000 steps, validation NLL (2000 test images) every 250 steps. Each student
is a `mirai ablate --axis source --values encoder` study run by the library (ablate runner -> engine `train`),
so its report holds the paired statistics and every curve.

    python bench/gpu_study.py prepare                 # here, on a CPU: bench/gpu_study_data.tar.gz (31 MiB)
    bash bench/gpu_study.sh                           # on the GPU machine: $OUT/gpu_study.json

`prepare` makes what a bare GPU machine lacks and cannot download: the tokenizer (the tiny preset's, fitted if
absent), the 60000-image token store and the 2000-image validation store, the Fashion-MNIST training idx files
(the teacher reads pixels), and Lite1's weights with every stage after stride 8 zeroed (never used by a stride-8
teacher; checked: identical features; zeros compress away). The teacher-feature cache itself would be 300 MB
(60000 x 64 x 40 fp16), so the GPU builds it with the library (seconds there). `run` extracts nothing: it takes
the unpacked folder. GPU_STUDY_CPU=1: the same code at tiny shapes and steps on the CPU (the tests run it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

DATA_NAME = "gpu_study_data"
WEIGHTS = "teacher/efficientnet-lite1-stride8.pth"
TEACHER = ['foresight.encoder="efficientnet-lite1"', "foresight.encoder_layer=8", "foresight.encoder_resolution=64",
           "foresight.lambda=0.5", "foresight.cache_teacher=true"]
# student name -> model shape, foresight depth (the block whose output is aligned), learning rate
STUDENTS = {
    "tiny": {"layers": 4, "dim": 128, "heads": 4, "depth": 3, "lr": 1e-3},
    "gpt-b": {"layers": 12, "dim": 768, "heads": 12, "depth": 8, "lr": 3e-4},
}
GPU_RUN = {"steps": 3000, "every": 250, "batch": 128, "val_images": 2000, "images": 60000}
CPU_RUN = {"steps": 4, "every": 2, "batch": 8, "dim": 32, "heads": 2}  # GPU_STUDY_CPU=1: seconds, same code


def cpu_mode() -> bool:
    return os.environ.get("GPU_STUDY_CPU", "0") == "1"


def data_overrides(folder: Path, images: int, val_images: int) -> list[str]:
    return [f'data.store="{folder / "tokens"}"', f'data.val_store="{folder / "tokens-val"}"',
            f"data.max_images={images}", f"data.val_images={val_images}",
            f'tokenizer.checkpoint="{folder / "tokenizer"}"']


def prepare(folder: Path, extra: list[str], images: int, val_images: int) -> Path:
    """Token stores, tokenizer, training idx files and the pruned teacher weights in `folder`; then a tar.gz."""
    from mirai_cli.config import load_config
    from mirai_cli.data.builtin import fashion_mnist_dirs
    from mirai_cli.tokenizer.from_config import ensure_tokenizer_and_store

    folder.mkdir(parents=True, exist_ok=True)
    overrides = data_overrides(folder, images, val_images) + extra
    config = load_config(["tiny"], overrides)
    ensure_tokenizer_and_store(config, show_progress=False, log=print)  # the validation store too
    source = next(d for d in fashion_mnist_dirs() if (d / "train-images-idx3-ubyte.gz").is_file())
    (folder / "fashion-mnist").mkdir(exist_ok=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copyfile(source / name, folder / "fashion-mnist" / name)
    prune_teacher_weights(overrides, folder / WEIGHTS)
    archive = folder.parent / f"{folder.name}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=9) as tar:
        for part in ("tokens", "tokens-val", "tokenizer", "fashion-mnist", "teacher"):
            if (folder / part).exists():  # no tokenizer folder when --set tokenizer.checkpoint points elsewhere
                tar.add(folder / part, arcname=f"{DATA_NAME}/{part}")
    return archive


def prune_teacher_weights(overrides: list[str], path: Path) -> None:
    """Lite1's weights (timm names) with everything after the stride-8 stage zeroed, checked to give the same
    stride-8 features as the full weights."""
    import timm
    import torch

    from mirai_cli.config import load_config
    from mirai_cli.data.store import TokenStore
    from mirai_cli.foresight.teachers.build import build_frozen_encoder
    from mirai_cli.foresight.teachers.encoders import ENCODER_SPECS
    from mirai_cli.foresight.teachers.weights import (
        lukemelas_to_timm_efficientnet,
        packaged_effnet_weights,
        read_state_dict,
    )

    spec = ENCODER_SPECS["efficientnet-lite1"]
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
    state = lukemelas_to_timm_efficientnet(read_state_dict(packaged_effnet_weights(spec.name), spec.name), model)
    last = int({int(i["reduction"]): i for i in model.feature_info}[8]["module"].split(".")[1])
    keep = ("conv_stem.", "bn1.") + tuple(f"blocks.{s}." for s in range(last + 1))
    pruned = {k: v if k.startswith(keep) else torch.zeros_like(v) for k, v in state.items()
              if not k.startswith("classifier.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pruned, path)
    teacher = overrides + ['foresight.source="encoder"', *TEACHER]
    pixels = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = []
    for weights in ([], [f'foresight.encoder_weights="{path}"']):
        config = load_config(["tiny"], teacher + weights)
        features.append(build_frozen_encoder(config, TokenStore.open(config.data.store), torch.device("cpu"))(pixels))
    if not torch.equal(*features):
        path.unlink()
        raise SystemExit("the pruned Lite1 weights give other stride-8 features than the full ones: not kept")


def student_overrides(name: str, folder: Path, seeds: list[int]) -> list[str]:
    shape, plan = STUDENTS[name], (CPU_RUN if cpu_mode() else GPU_RUN)
    dim, heads = (CPU_RUN["dim"], CPU_RUN["heads"]) if cpu_mode() else (shape["dim"], shape["heads"])
    return [
        f"model.layers={shape['layers']}", f"model.dim={dim}", f"model.heads={heads}",
        f"foresight.depth={shape['depth']}", f'foresight.encoder_weights="{folder / WEIGHTS}"', *TEACHER,
        f"train.duration={plan['steps']}", f"train.eval_every={plan['every']}", f"train.ckpt_every={plan['every']}",
        "train.keep_last=2", f"train.global_batch_size={plan['batch']}", f"train.lr={shape['lr']}",
        f'train.precision="{"fp32" if cpu_mode() else "bf16"}"', "ablate.eval_samples_per_class=0",
        f"ablate.seeds={json.dumps(seeds)}", "ablate.baseline_seeds=1",
    ]


def run(folder: Path, out: Path, work: Path, extra: list[str], seeds: list[int], students: list[str]) -> dict:
    """Each student's baseline-vs-Mirai-I study, sequentially; one JSON of curves, paired statistics, times."""
    import torch

    from mirai_cli.ablate.report import build_rows
    from mirai_cli.ablate.runner import plan_study, run_study
    from mirai_cli.engine.run import gpt_config_from
    from mirai_cli.gpt.model import parameter_counts

    os.environ["MIRAI_DATA"] = str(folder)  # the teacher reads the training images' pixels from here
    count = (lambda store: json.loads((folder / store / "manifest.json").read_text())["count"])  # noqa: E731
    result = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "cpu_mode": cpu_mode(), "images": count("tokens"), "students": {}}
    start = time.perf_counter()
    for name in students:
        overrides = (data_overrides(folder, count("tokens"), count("tokens-val")) + student_overrides(name, folder, seeds)
                     + extra)
        study = plan_study(["tiny"], overrides, "source", ["encoder"], work / name)
        t0 = time.perf_counter()
        results = run_study(study, prepare_data=lambda config: None, progress=False,
                            log=lambda message, name=name: print(f"[{name}] {message}", flush=True))
        report = build_rows(study.variants, results, "source")
        mirai = report["rows"][-1]
        result["students"][name] = {
            "overrides": overrides, "seconds": time.perf_counter() - t0,
            "parameters": parameter_counts(gpt_config_from(study.variants[0].config)),
            "curves": {run["variant"]: {e["step"]: e["values"]["val_nll"] for e in run["evals"]}
                       for run in report["runs"]},
            "paired_val_nll": mirai["val_nll_paired"], "report": report,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**result, "seconds": time.perf_counter() - start}, indent=1))  # after each student
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="here: token stores, tokenizer, images, pruned teacher weights -> tar.gz")
    p.add_argument("--out", type=Path, default=Path("bench") / DATA_NAME)
    p.add_argument("--images", type=int, default=GPU_RUN["images"])
    p.add_argument("--val-images", type=int, default=GPU_RUN["val_images"])
    r = sub.add_parser("run", help="on the GPU: train and score both students, both arms")
    r.add_argument("--data", type=Path, required=True, help="the unpacked gpu_study_data folder")
    r.add_argument("--out", type=Path, required=True, help="the JSON of curves to write")
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu_study_runs"))
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    for q in (p, r):
        q.add_argument("--set", dest="extra", action="append", default=[], help="extra preset override")
    args = parser.parse_args()
    if args.cmd == "prepare":
        archive = prepare(args.out.resolve(), args.extra, args.images, args.val_images)
        print(f"{archive} ({archive.stat().st_size / 2**20:.1f} MiB): carry it to the GPU machine with the repository")
        return
    result = run(args.data.resolve(), args.out, args.work.resolve(), args.extra, args.seeds, args.students)
    for name, student in result["students"].items():
        gain = student["paired_val_nll"]["final_gain"]
        print(f"{name}: {student['parameters']['non_embedding'] / 1e6:.2f}M non-embedding parameters, paired val NLL "
              f"gain {gain['mean']:+.4f} (n={gain['n']}), {student['seconds']:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
