#!/usr/bin/env bash
# One prepared GPU check (run from the repository root on a CUDA machine):
#
#     bash bench/gpu_check.sh            # GPT-B shapes, ~2-4 minutes on one modern GPU
#
# 1. training: GPT-B (LlamaGen shapes: 12 x 768, vocab 16384, 1000 classes, 16x16 tokens) on random tokens,
#    bf16 autocast + torch.compile + fused AdamW, on 1 GPU and, when there are 2 or more, on 2 processes (torchrun,
#    DDP/NCCL). Prints step time, tokens/s, MFU = 6 x params x tokens / time / peak, and peak memory.
# 2. sampling: `generate` at batch 8 with CFG, eager and with the compiled decode step (CUDA graphs). Prints the
#    decode step time, tokens/s, images/s, its memory bound (weight bytes / measured bandwidth) and peak memory.
#
# Without CUDA it stops at once with one line. GPU_CHECK_CPU=1 runs the same code on the CPU at tiny shapes
# (gloo, no compile): a quick check of the script itself, not a measurement.
# Settings (environment): GPU_CHECK_STEPS (default 30), GPU_CHECK_BATCH (per process, default 64),
# GPU_CHECK_PEAK_TFLOPS (bf16 dense peak per GPU; known GPUs are looked up), PYTHON (default python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${GPU_CHECK_CPU:-0}" != "1" ]]; then
  if ! ls /dev/nvidia[0-9]* >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU on this machine (no /dev/nvidia*, no nvidia-smi): run bench/gpu_check.sh on a machine with one" >&2
    exit 2
  fi
  gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
  if [[ "$gpus" == "0" ]]; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): run bench/gpu_check.sh on a machine with an NVIDIA GPU" >&2
    exit 2
  fi
else
  gpus=2
fi

SCRIPT=$(mktemp --suffix=.py)
trap 'rm -f "$SCRIPT"' EXIT
cat > "$SCRIPT" <<'PYEOF'
import json, os, sys, time
import torch
import torch.distributed as dist
from mirai_cli.gpt import GPT, GPTConfig
from mirai_cli.gpt.generate import SampleOptions, generate

CPU = os.environ.get("GPU_CHECK_CPU") == "1"
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "RTX 4090": 165.0, "A6000": 155.0, "V100": 125.0}  # bf16 dense (V100: fp16 tensor cores)


def config() -> GPTConfig:
    if CPU:
        return GPTConfig(vocab_size=512, num_classes=10, layers=2, dim=64, heads=2, grid=(4, 4), multiple_of=64)
    return GPTConfig.named("GPT-B", vocab_size=16384, num_classes=1000, grid=(16, 16))


def peak_flops(device: torch.device) -> float | None:
    if os.environ.get("GPU_CHECK_PEAK_TFLOPS"):
        return float(os.environ["GPU_CHECK_PEAK_TFLOPS"]) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v * 1e12 for k, v in PEAK_TFLOPS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(steps: int, batch: int) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo" if CPU else "nccl")
    device = torch.device("cpu") if CPU else torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(rank)
    cfg = config()
    model = GPT(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=device.type == "cuda")
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    step_fn = net if CPU else torch.compile(net)
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    times = []
    for step in range(steps):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            logits = step_fn(tokens, labels).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), tokens.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - t)
    warm = min(10, steps // 2)  # compile and autotuning happen in the first steps
    dt = sorted(times[warm:])[len(times[warm:]) // 2]
    tokens_s = batch * cfg.seq_len * world / dt
    peak = peak_flops(device)
    if rank == 0:
        out = {"check": "train", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "processes": world, "params": params, "batch_per_process": batch, "precision": str(dtype),
               "compiled": not CPU, "first_step_s": round(times[0], 2), "step_s": round(dt, 4),
               "tokens_per_s": round(tokens_s), "loss": round(float(loss.detach()), 3),
               "mfu": round(6 * params * tokens_s / (peak * world), 3) if peak else None,
               "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None}
        print(json.dumps(out), flush=True)
    if world > 1:
        dist.destroy_process_group()


def weight_bytes(model: GPT) -> int:
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embedding" not in n)


def bandwidth(device: torch.device) -> float:
    buf = torch.ones(2**28, device=device)  # 1 GiB: read it a few times
    buf.sum(); sync(device)
    t = time.perf_counter()
    for _ in range(5):
        buf.sum()
    sync(device)
    return 5 * buf.numel() * 4 / (time.perf_counter() - t)


@torch.no_grad()
def sample(batch: int) -> None:
    device = torch.device("cpu") if CPU else torch.device("cuda")
    torch.manual_seed(0)
    model = GPT(config()).to(device).eval()
    model.output.weight.normal_(0, 0.02)
    labels = torch.arange(batch, device=device) % model.cfg.num_classes
    bound = weight_bytes(model) / bandwidth(device)
    n = model.cfg.seq_len
    for compiled in ([False] if CPU else [False, True]):
        opts = SampleOptions(cfg_scale=2.0, precision="fp32", compile=compiled)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        generate(model, labels, opts, generator=torch.Generator(device).manual_seed(1))  # warm-up / compile
        sync(device)
        t = time.perf_counter()
        generate(model, labels, opts, generator=torch.Generator(device).manual_seed(2))
        sync(device)
        dt = time.perf_counter() - t
        print(json.dumps({"check": "sample", "batch": batch, "cfg": 2.0, "weights": "fp32", "compiled": compiled,
                          "seconds": round(dt, 3), "step_ms": round(dt / n * 1000, 3),
                          "image_tokens_per_s": round(batch * n / dt), "images_per_s": round(batch / dt, 2),
                          "memory_bound_step_ms": round(bound * 1000, 3), "step_over_bound": round(dt / n / bound, 2),
                          "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                          if device.type == "cuda" else None}), flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    steps = int(os.environ.get("GPU_CHECK_STEPS", "30"))
    batch = int(os.environ.get("GPU_CHECK_BATCH", "8" if CPU else "64"))
    train(steps, batch) if what == "train" else sample(8)
PYEOF

echo "gpu_check: $gpus device(s); torch $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
"$PY" "$SCRIPT" train
if [[ "$gpus" -ge 2 ]]; then
  "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 "$SCRIPT" train
fi
"$PY" "$SCRIPT" sample
