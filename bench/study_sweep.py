"""The study's sweep: named configurations of the tiny preset, each trained on given seeds, scored by the
validation NLL (and, where asked, FD) at every checkpoint, and a table of every row ever run.

    python bench/study_sweep.py run base ema-l2 enc-s16 --seeds 100 101 --jobs 2   # train + score
    python bench/study_sweep.py table > docs/study_sweep.md                       # the lab-notebook table

A row = (configuration, seed). Each run is one `mirai train` process (checkpoint every --eval-every steps,
all kept), then the validation NLL of every checkpoint's EMA weights on the held-out store. Results go to
runs/sweep/<config>/s<seed>/ (evals.jsonl, wall.json); finished rows are never redone, and each is also appended
to docs/study_rows.jsonl (committed: runs/ does not outlive the machine), which the table and the analyses read
for rows whose run folder is gone. The baseline of the
comparison is the `base` configuration on the same seeds and tokenizer fit. Selection seeds (100+) are kept apart from the
reporting seeds of the README's study (0, 1, 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("runs/sweep")
ROWS = Path("docs/study_rows.jsonl")  # one finished row per line: name, seed, tokenizer, steps, seconds, command, curve
EARLIER = "earlier"  # the tokenizer of the rows recorded from the table of the sessions before 2026-12-02
PRESETS = ["tiny"]
G16 = ["data.image_size=64", 'data.store="runs/sweep-g16/tokens"', 'tokenizer.checkpoint="runs/sweep-g16/tokenizer"']
D60K = ["data.max_images=60000", 'data.store="runs/sweep-d60k/tokens"', 'data.val_store="runs/tiny/tokens-val"']
D20K = ["data.max_images=20000", 'data.store="runs/sweep-d20k/tokens"', 'data.val_store="runs/tiny/tokens-val"']
# Every row of the sweep: name -> overrides on top of the tiny preset (and the common ones below).
CONFIGS: dict[str, list[str]] = {
    "base": ['foresight.source="none"'],
    # Mirai-E (EMA teacher): tiny defaults are k 3, lambda 2, warm-up 120, EMA 0.99, depth 3 of 4, projector 256
    "ema": ['foresight.source="ema"'],
    "ema-l05": ['foresight.source="ema"', "foresight.lambda=0.5"],
    "ema-l01": ['foresight.source="ema"', "foresight.lambda=0.1"],
    "ema-w0": ['foresight.source="ema"', "foresight.warmup=0"],
    "ema-d999": ['foresight.source="ema"', "foresight.ema_decay=0.999"],
    "ema-d9": ['foresight.source="ema"', "foresight.ema_decay=0.9"],
    "ema-k1": ['foresight.source="ema"', "foresight.k=1"],
    "ema-depth2": ['foresight.source="ema"', "foresight.depth=2"],
    # Mirai-I (frozen EfficientNet-Lite1 teacher, cached): today's 4x4 map at 128 px, upsampled to 8x8
    "enc": ['foresight.source="encoder"'],
    "enc-k1-w0": ['foresight.source="encoder"', "foresight.k=1", "foresight.warmup=0"],
    "enc-l05": ['foresight.source="encoder"', "foresight.lambda=0.5"],
    "enc-l01": ['foresight.source="encoder"', "foresight.lambda=0.1"],
    "enc-w0": ['foresight.source="encoder"', "foresight.warmup=0"],
    # Mirai-I with spatial targets (iREPA): a Lite1 stage whose map is exactly the 8x8 grid, optional
    # spatial normalisation of the targets
    "enc-s8": ['foresight.source="encoder"', "foresight.encoder_layer=8", "foresight.encoder_resolution=64"],
    "enc-s16": ['foresight.source="encoder"', "foresight.encoder_layer=16"],
    "enc-s32": ['foresight.source="encoder"', "foresight.encoder_layer=32", "foresight.encoder_resolution=256"],
    "enc-sp": ['foresight.source="encoder"', 'foresight.target_norm="spatial"'],
    "enc-s16-sp": ['foresight.source="encoder"', "foresight.encoder_layer=16", 'foresight.target_norm="spatial"'],
    "enc-s16-l05": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5"],
    "enc-s16-k1": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.k=1"],
    "enc-s16-w0": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.warmup=0"],
    # Global-norm clipping at 1.0 is active at every step at this scale (baseline grad norm 1.2-1.3): an
    # auxiliary gradient then shrinks the NTP step. Both arms without clipping:
    "base-noclip": ['foresight.source="none"', "train.grad_clip=0"],
    "enc-s16-noclip": ['foresight.source="encoder"', "foresight.encoder_layer=16", "train.grad_clip=0"],
    # Alignment helped early and hurt late (enc-s16, -noclip): decay lambda to 0 by the end (cosine).
    "enc-s16-cos": ['foresight.source="encoder"', "foresight.encoder_layer=16", 'foresight.lambda_schedule="cosine"',
                    "foresight.lambda_factor=0"],
    "enc-s8-sp": ['foresight.source="encoder"', "foresight.encoder_layer=8", "foresight.encoder_resolution=64", 'foresight.target_norm="spatial"'],
    # Session 3: the axes not yet searched, each against its own baseline where the run differs from `base`.
    "enc-s16-l02": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.2"],
    "enc-s16-l05-ln": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5",
                       'foresight.target_norm="layer"'],
    "enc-s16-l05-depth2": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5",
                           "foresight.depth=2"],
    "enc-s16-l05-p1024": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5",
                          "foresight.projector_dim=1024"],
    # An oracle of foresight: the tokenizer's own encoder latents (they hold exactly the future tokens). If this
    # teacher does not speed up the NTP loss, no teacher of the same layout can at this scale.
    "enc-tok-l05": ['foresight.source="encoder"', 'foresight.encoder="tokenizer"', "foresight.encoder_layer=0",
                    "foresight.encoder_resolution=32",
                    "foresight.lambda=0.5"],
    # the other stages of Lite1 at the input size that gives exactly the 8x8 grid (stride 8 at 64 px, 32 at 256 px)
    "enc-s8-l05": ['foresight.source="encoder"', "foresight.encoder_layer=8", "foresight.encoder_resolution=64",
                   "foresight.lambda=0.5"],
    "enc-s32-l05": ['foresight.source="encoder"', "foresight.encoder_layer=32", "foresight.encoder_resolution=256",
                    "foresight.lambda=0.5"],
    "ema-l05-d9": ['foresight.source="ema"', "foresight.lambda=0.5", "foresight.ema_decay=0.9"],
    "ema-l05-d999": ['foresight.source="ema"', "foresight.lambda=0.5", "foresight.ema_decay=0.999"],
    "ema-l05-w0": ['foresight.source="ema"', "foresight.lambda=0.5", "foresight.warmup=0"],
    # run length: lr is constant after warm-up, so a longer run is the 600-step run continued
    "base-3k": ['foresight.source="none"'],
    "enc-s16-l05-3k": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5"],
    "ema-l05-3k": ['foresight.source="ema"', "foresight.lambda=0.5"],
    # the oracle teacher passed the 600-step screening (+3.7 sd): its selection at 3000 steps
    "enc-tok-l05-3k": ['foresight.source="encoder"', 'foresight.encoder="tokenizer"', "foresight.encoder_layer=0",
                       "foresight.encoder_resolution=32", "foresight.lambda=0.5"],
    # Lite1's stride-8 stage passed its 600-step screen (+0.045 same seed vs stride 16's +0.020): selection
    "enc-s8-l05-3k": ['foresight.source="encoder"', "foresight.encoder_layer=8", "foresight.encoder_resolution=64",
                      "foresight.lambda=0.5"],
    # 6000 steps: the 3000-step rows continued (their last checkpoint, resumed; same data order and schedule)
    "base-6k": ['foresight.source="none"'],
    "enc-s16-l05-6k": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5"],
    # model width 256 (4 layers, 4 heads of 64)
    "base-w256": ['foresight.source="none"', "model.dim=256"],
    "enc-s16-l05-w256": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5",
                         "model.dim=256"],
    # the student-size question (docs/study.md, 2026-12-03): the best teacher (stride 8) against the baseline at
    # widths 256 and 384 (width 128: base-3k, enc-s8-l05-3k), 4 layers, 3000 steps; bf16 autocast (2.0x / 2.4x
    # faster than fp32 at these widths on this CPU; the width-128 rows are fp32, where bf16 is slower)
    **{f"{arm}-w{w}-3k": [*over, f"model.dim={w}", 'train.precision="bf16"'] for w in (256, 384)
       for arm, over in (("base", ['foresight.source="none"']),
                         ("enc-s8-l05", ['foresight.source="encoder"', "foresight.encoder_layer=8",
                                         "foresight.encoder_resolution=64", "foresight.lambda=0.5"]))},
    # 16x16 token grid at 64 px (same tokenizer shape, its own fit and store); the teacher's stride-16 stage
    # at 256 px is exactly the grid
    "base-g16": ['foresight.source="none"', *G16],
    "enc-s16-l05-g16": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5",
                        "foresight.encoder_resolution=256", *G16],
    # the strongest teacher at 8x8 (the tokenizer's encoder latents), on the 16x16 grid: its 64 px input
    "enc-tok-l05-g16": ['foresight.source="encoder"', 'foresight.encoder="tokenizer"', "foresight.encoder_layer=0",
                        "foresight.encoder_resolution=64", "foresight.lambda=0.5", *G16],
    # the grid at length (seed 100): the 600-step screen says 8x8 and 16x16 alike (1.02-1.03x), but at 8x8 that
    # screen also under-predicted the 3000-step speed-up of the tokenizer teacher (1.03x -> 1.31-1.37x)
    "base-g16-3k": ['foresight.source="none"', *G16],
    "enc-tok-l05-g16-3k": ['foresight.source="encoder"', 'foresight.encoder="tokenizer"', "foresight.encoder_layer=0",
                           "foresight.encoder_resolution=64", "foresight.lambda=0.5", *G16],
    # data size: 20000 training images instead of 6000 (same tokenizer, same 2000 validation images), 6000 steps
    # (9.6 epochs): the 6000-image runs overfit after ~3000 steps (16 epochs), before the speed-up, which grows
    # with the horizon on the selection seeds, could reach 1.5x
    "base-d20k": ['foresight.source="none"', *D20K],
    "enc-s16-l05-d20k": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5", *D20K],
    # the extrapolation's test: all 60000 training images (no overfitting expected), 12000 steps (6.4 epochs)
    "base-d60k": ['foresight.source="none"', *D60K],
    "enc-s16-l05-d60k": ['foresight.source="encoder"', "foresight.encoder_layer=16", "foresight.lambda=0.5", *D60K],
}
# Rows compared with another baseline than `base` (another length, width or grid) and their (steps, every).
BASELINE_OF = {n: "base-" + n.rsplit("-", 1)[1] for n in CONFIGS if n.rsplit("-", 1)[-1] in ("3k", "w256", "g16", "d20k", "d60k")}
SCHEDULE = ({n: (3000, 250) for n in CONFIGS if n.endswith("-3k")} | {n: (6000, 250) for n in CONFIGS if n.endswith("-6k")}
            | {n: (6000, 250) for n in CONFIGS if n.endswith("-d20k")} | {n: (12000, 500) for n in CONFIGS if n.endswith("-d60k")})
BASELINE_OF |= {f"{arm}-w{w}-3k": f"base-w{w}-3k" for w in (256, 384) for arm in ("base", "enc-s8-l05")}
BASELINE_OF |= {n: "base-6k" for n in CONFIGS if n.endswith("-6k")} | {"enc-tok-l05-g16-3k": "base-g16-3k", "base-g16-3k": "base-g16-3k"}
# A row that starts from another row's finished run (lr is constant after warm-up: a longer run is the shorter
# one continued): its last checkpoint, evaluations and metrics are copied, then the run resumes.
CONTINUES = {n: n[: -len("6k")] + "3k" for n in CONFIGS if n.endswith("-6k")}
COMMON = ["ablate.eval_samples_per_class=0", "data.val_images=2000"]


def run_dir(name: str, seed: int) -> Path:
    return ROOT / name / f"s{seed}"


def train_command(name: str, seed: int, steps: int, every: int) -> list[str]:
    sets = CONFIGS[name] + COMMON + [
        f"train.seed={seed}", f"train.duration={steps}", f"train.ckpt_every={every}", "train.keep_last=1000",
        f'train.run_dir="{run_dir(name, seed)}"',
    ]
    cmd = ["mirai", "train", "--quiet"]
    for p in PRESETS:
        cmd += ["--preset", p]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def score(name: str, seed: int, steps: int, every: int) -> None:
    """Validation NLL of every checkpoint (EMA weights, as sampled), appended to evals.jsonl once each."""
    from mirai_cli.config import load_config
    from mirai_cli.data.store import TokenStore
    from mirai_cli.evaluation.nll import validation_nll
    from mirai_cli.gpt.checkpoint import list_checkpoints, load_gpt_checkpoint
    from mirai_cli.tokenizer.from_config import validation_store_path

    config = load_config(PRESETS, CONFIGS[name] + COMMON)
    store = TokenStore.open(validation_store_path(config))
    path = run_dir(name, seed) / "evals.jsonl"
    done = {json.loads(line)["step"] for line in path.read_text().splitlines()} if path.is_file() else set()
    for step, folder in list_checkpoints(run_dir(name, seed)):
        if step in done or step % every:
            continue
        model, _, _ = load_gpt_checkpoint(folder, weights=config.sample.weights)
        record = {"step": step, "values": {"val_nll": validation_nll(model, store)}}
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def continue_from(source: Path, folder: Path) -> float:
    """Copy a finished row's last checkpoint, evaluations and metrics into `folder`; its wall seconds."""
    import shutil

    from mirai_cli.gpt.checkpoint import list_checkpoints

    if not (source / "wall.json").is_file():
        raise SystemExit(f"{folder} continues {source}, which has not finished: run that row first")
    step, last = list_checkpoints(source)[-1]
    shutil.copytree(last, folder / "checkpoints" / last.name)
    for name in ("evals.jsonl", "metrics.jsonl", "preset.toml", "manifest.json"):
        shutil.copy2(source / name, folder / name)
    return float(json.loads((source / "wall.json").read_text())["seconds"])


def run_one(name: str, seed: int, steps: int, every: int) -> None:
    folder = run_dir(name, seed)
    wall = folder / "wall.json"
    if wall.is_file():
        return
    earlier = 0.0
    if name in CONTINUES and not folder.is_dir():
        earlier = continue_from(run_dir(CONTINUES[name], seed), folder)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = train_command(name, seed, steps, every)
    resume = ["--resume"] if (folder / "checkpoints").is_dir() else []
    t0 = time.time()
    with open(folder.parent / f"s{seed}.log", "a") as log:
        subprocess.run(cmd + resume, check=True, stdout=log, stderr=subprocess.STDOUT)
    score(name, seed, steps, every)
    wall.write_text(json.dumps({"seconds": earlier + time.time() - t0, "command": shlex.join(cmd), "steps": steps,
                                "finished": time.strftime("%Y-%m-%d %H:%M")}))
    record_row(name, seed)


def run_many(names: list[str], seeds: list[int], steps: int, every: int, jobs: int) -> None:
    """Rows in parallel processes (one thread each, passive OpenMP waiting: jobs share the cores)."""
    from mirai_cli.ablate.axes import Variant
    from mirai_cli.ablate.runner import prepare_teacher_caches
    from mirai_cli.config import load_config
    from mirai_cli.tokenizer.from_config import ensure_tokenizer_and_store

    configs = {n: load_config(PRESETS, CONFIGS[n] + COMMON) for n in names}
    for store in {c.data.store: c for c in configs.values()}.values():  # e.g. the 16x16 grid's own tokenizer
        ensure_tokenizer_and_store(store, show_progress=False, log=print)
    prepare_teacher_caches([Variant(n, n, n, (), 0, c) for n, c in configs.items()], False)
    todo = [(n, s) for n in names for s in seeds if not (run_dir(n, s) / "wall.json").is_file()]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // jobs)))
    running: list[tuple[str, int, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < jobs:
            n, s = todo.pop(0)
            n_steps, n_every = SCHEDULE.get(n, (steps, every))
            cmd = [sys.executable, __file__, "one", n, str(s), "--steps", str(n_steps), "--eval-every", str(n_every)]
            running.append((n, s, subprocess.Popen(cmd, env=env)))
            print(f"started {n} seed {s}", flush=True)
        time.sleep(2)
        for item in list(running):
            if item[2].poll() is not None:
                running.remove(item)
                print(f"finished {item[0]} seed {item[1]} (exit {item[2].returncode})", flush=True)


def folder_row(name: str, seed: int) -> dict | None:
    """A finished run folder's row (None if unfinished), with the tokenizer its codes came from."""
    from mirai_cli.engine.checkpoints import read_meta
    from mirai_cli.gpt.checkpoint import list_checkpoints

    folder = run_dir(name, seed)
    if not (folder / "wall.json").is_file():
        return None
    curve = {}
    for line in (folder / "evals.jsonl").read_text().splitlines():
        r = json.loads(line)
        curve[r["step"]] = r["values"]["val_nll"]
    tokenizer = read_meta(list_checkpoints(folder)[-1][1])["tokenizer"]["sha256"][:12]
    return {"name": name, "seed": seed, "tokenizer": tokenizer, "source": "run", "curve": curve,
            **json.loads((folder / "wall.json").read_text())}


def recorded_rows(path: Path = ROWS) -> dict[tuple[str, str, int], dict]:
    """The committed records (of `path`) by (tokenizer, config, seed)."""
    rows = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        r = json.loads(line)
        rows[(r["tokenizer"], r["name"], r["seed"])] = {**r, "curve": {int(k): v for k, v in r["curve"].items()}}
    return rows


def all_rows() -> dict[tuple[str, str, int], dict | None]:
    """Every row by (tokenizer, config, seed): the records, then the run folders here (a started, unfinished one
    under tokenizer "unfinished", as None). Rows on different tokenizer fits are never compared: a refit on
    another machine gives other codes (base-3k seed 100 at step 250: 3.944 on the earlier fit, 3.914 on the
    2026-12-02 one)."""
    rows: dict[tuple[str, str, int], dict | None] = dict(recorded_rows())
    for folder in sorted(ROOT.glob("*/s*")) if ROOT.is_dir() else []:
        if folder.is_dir() and folder.parent.name in CONFIGS:
            name, seed = folder.parent.name, int(folder.name[1:])
            row = folder_row(name, seed)
            rows[(row["tokenizer"], name, seed) if row else ("unfinished", name, seed)] = row
    return rows


def record_row(name: str, seed: int) -> None:
    """Append a finished run folder's row to the committed records, unless recorded already."""
    row = folder_row(name, seed)
    if row and (row["tokenizer"], name, seed) not in recorded_rows():
        with open(ROWS, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def generations() -> dict[str, dict[tuple[str, int], dict | None]]:
    """The rows of each tokenizer fit, by (config, seed), in the order the fits first appear."""
    groups: dict[str, dict[tuple[str, int], dict | None]] = {}
    for (tokenizer, name, seed), row in all_rows().items():
        groups.setdefault(tokenizer, {})[(name, seed)] = row
    return groups


def baseline(rows: dict[tuple[str, int], dict | None], name: str) -> dict:
    """The finished rows of a baseline configuration: per seed, the seed-mean curve, its final value and sd."""
    from mirai_cli.ablate.stats import mean_curve

    by_seed = {seed: r for (n, seed), r in rows.items() if n == name and r}
    curves = [r["curve"] for r in by_seed.values()]
    mean = mean_curve(curves) if curves else {}
    finals = [c[max(c)] for c in curves]
    return {"rows": by_seed, "mean": mean, "final": mean[max(mean)] if mean else None, "finals": finals,
            "sd": statistics.stdev(finals) if len(finals) > 1 else None}


def table() -> str:
    """Every row, by tokenizer fit, compared with its baseline (`base`, or the one of its length/width/grid) of
    the same fit, on the mean of the baseline's seeds and on the same seed; then every comparison paired by seed."""
    sections = []
    for tokenizer, rows in generations().items():
        title = ("Started here, not finished" if tokenizer == "unfinished" else
                 f"Tokenizer fit `{tokenizer}`" + (" (the fit of the sessions before 2026-12-02: curves to 3 decimals, "
                                                   "final values to 4)" if tokenizer == EARLIER else ""))
        sections.append(f"## {title}\n\n" + table_of(rows))
    import study_paired

    sections.append("## Paired by seed (every row against its baseline on the same seeds and fit)\n\n"
                    "Per-seed gain = baseline - row at the last step both have; paired gain: mean and 95% t interval "
                    "over the seed pairs; speed-up per pair: the baseline's own first crossing of its target (final "
                    "value, or best if its curve overfits or wanders) over the row's; `python bench/study_paired.py "
                    "pairs`.\n\n" + study_paired.pairs(study_paired.rows_by_fit(None), "val_nll"))
    return "\n".join(sections)


def table_of(rows: dict[tuple[str, int], dict | None]) -> str:
    from mirai_cli.ablate.stats import pair_reach, summarize

    bases = {b: baseline(rows, b) for b in {BASELINE_OF.get(n, "base") for n, _ in rows}}
    lines = ["| config | overrides | seed | steps | wall s | val NLL @ steps | final val NLL | gain vs base mean (base sd) "
             "| gain vs base, same seed | best val NLL (step) | best gain vs base, same seed | steps to base target "
             "| speed-up | reproduce |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, seed in sorted(rows):
        base, row = bases[BASELINE_OF.get(name, "base")], rows[(name, seed)]
        if row is None:
            lines.append(f"| {name} | {' '.join(CONFIGS.get(name, []))} | {seed} | - | - | unfinished | - | - | - | - | - | - | - "
                         f"| `python bench/study_sweep.py run {name} --seeds {seed}` |")
            continue
        curve = row["curve"]
        final = curve[max(curve)]
        same = base["rows"].get(seed)
        # the same-seed baseline's target (its final value, or its best if it overfits or wanders) and its own
        # first crossing of it; without a same-seed baseline, the seed-mean curve's
        reach = pair_reach(same["curve"] if same else base["mean"], curve) if base["mean"] else None
        delta = f"{(base['final'] - final):+.4f} ({(base['final'] - final) / base['sd']:+.1f} sd)" if base["sd"] else "-"
        points = " ".join(f"{curve[s]:.3f}" for s in sorted(curve))
        paired = f"{same['curve'][max(same['curve'])] - final:+.4f}" if same else "-"
        best_step = min(curve, key=curve.get)
        best_paired = f"{min(same['curve'].values()) - curve[best_step]:+.4f}" if same else "-"
        lines.append(f"| {name} | {' '.join(CONFIGS.get(name, []))} | {seed} | {row['steps']} | {row['seconds']:.0f} "
                     f"| {points} | {final:.4f} | {delta} | {paired} | {curve[best_step]:.4f} ({best_step}) | {best_paired} "
                     f"| {f'{reach.steps:.0f}' if reach and reach.steps else 'never'} | "
                     f"{f'{reach.speedup:.2f}x' if reach and reach.speedup else '-'}{'' if same else ' (vs mean)'} "
                     f"| `python bench/study_sweep.py run {name} --seeds {seed}` |")
    for name, base in sorted(bases.items()):
        if base["finals"]:
            s = summarize(base["finals"])
            lines.append(f"\nBaseline `{name}` final val NLL over seeds {sorted(base['rows'])}: mean {s.mean:.4f}, sd "
                         f"{s.sd if s.sd is None else round(s.sd, 4)}, 95% CI {s.low and round(s.low, 4)}..{s.high and round(s.high, 4)}")
    return "\n".join(lines) + "\n"


def paired_curves(base_name: str, name: str) -> tuple[list[int], list[dict], list[dict]]:
    """The seeds both rows finished on the latest tokenizer fit that has both, and each row's validation-NLL
    curves on them (in seed order)."""
    for rows in reversed(generations().values()):
        base_rows, var_rows = baseline(rows, base_name)["rows"], baseline(rows, name)["rows"]
        seeds = sorted(set(base_rows) & set(var_rows))
        if seeds:
            return seeds, [base_rows[s]["curve"] for s in seeds], [var_rows[s]["curve"] for s in seeds]
    raise SystemExit(f"no seed on which both {base_name} and {name} finished on one tokenizer fit: run them first "
                     f"(python bench/study_sweep.py run {base_name} {name} --seeds 100)")


def horizon(base_name: str, name: str) -> str:
    """Speed-up as a function of the run's length: both rows' curves cut at each evaluation step H, then per seed
    pair the gain at H and the steps the variant needs to reach the pair's baseline target (its value at H, or
    its best before H if it wandered) over the baseline's own first crossing of it; t intervals over the pairs
    (mirai_cli.ablate.stats, as the ablate report)."""
    from mirai_cli.ablate.report import format_gain, format_paired_speedup
    from mirai_cli.ablate.stats import mean_curve, paired_gains, paired_speedups

    seeds, base, var = paired_curves(base_name, name)
    lines = [f"{name} vs {base_name}, seed pairs {seeds}", "", "| horizon H | baseline mean at H | paired gain at H "
             "[95% CI] | speed-up per pair [95% CI] |", "|---|---|---|---|"]
    for h, b in sorted(mean_curve(base).items()):
        cut = [[{k: v for k, v in c.items() if k <= h} for c in arm] for arm in (base, var)]
        gain = paired_gains(*cut).get(h)
        lines.append(f"| {h} | {b:.4f} | {format_gain(gain.to_dict() if gain else None)} "
                     f"| {format_paired_speedup(paired_speedups(*cut).to_dict())} |")
    return "\n".join(lines) + "\n"


def extrapolate(base_name: str, name: str, start: int = 1500, gap_from: int = 2000) -> str:
    """Where the speed-up would reach 1.5x if the runs went on: fit L(H) = c + b H^-alpha to the baseline's
    seed-mean curve (steps >= start; alpha by grid, c and b by least squares), take the variant as the baseline
    curve lowered by its mean gap since `gap_from`, and solve for the steps at which the variant reaches the
    baseline's value at H. An extrapolation, stated as one: it assumes the gap stays constant and nothing
    overfits."""
    import numpy as np

    from mirai_cli.ablate.stats import mean_curve

    seeds, base_curves, curves = paired_curves(base_name, name)
    base, var = mean_curve(base_curves), mean_curve(curves)
    h = np.array([k for k in base if k >= start], float)
    loss = np.array([base[int(k)] for k in h])
    fits = []
    for alpha in np.linspace(0.05, 3, 296):
        x = np.stack([np.ones_like(h), h ** -alpha], 1)
        coef = np.linalg.lstsq(x, loss, rcond=None)[0]
        fits.append((float(((x @ coef - loss) ** 2).mean()), alpha, *coef))
    mse, alpha, c, b = min(fits)
    gap = float(np.mean([base[k] - var[k] for k in base if k >= gap_from and k in var]))
    lines = [f"{name} vs {base_name}, seeds {seeds}: baseline L(H) = {c:.4f} + {b:.4g} H^-{alpha:.2f} (rms "
             f"{mse ** 0.5:.4f}), gap {gap:+.4f} nats (mean since step {gap_from})", "", "| horizon H | speed-up |",
             "|---|---|"]
    for horizon_steps in (max(base), 10000, 15000, 20000, 30000):
        reach = ((b * horizon_steps ** -alpha + gap) / b) ** (-1 / alpha)
        lines.append(f"| {horizon_steps} | {horizon_steps / reach:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("run", "one"):
        p = sub.add_parser(cmd)
        p.add_argument("names", nargs="+")
        p.add_argument("--seeds", type=int, nargs="+", default=[100])
        p.add_argument("--steps", type=int, default=600)
        p.add_argument("--eval-every", type=int, default=100)
        p.add_argument("--jobs", type=int, default=2)
    sub.add_parser("table")
    sub.add_parser("record", help="append every finished run folder not yet recorded to " + str(ROWS))
    analyses = {"horizon": (horizon, "speed-up against run length"),
                "extrapolate": (extrapolate, "speed-up at longer horizons: power-law fit of the baseline, constant gap")}
    for cmd, (_, help_text) in analyses.items():
        p = sub.add_parser(cmd, help=help_text + ": a baseline row and a variant row")
        p.add_argument("baseline")
        p.add_argument("variant")
    args = parser.parse_args()
    if args.cmd == "table":
        print(table(), end="")
        return
    if args.cmd == "record":
        for folder in sorted(ROOT.glob("*/s*")) if ROOT.is_dir() else []:
            if folder.is_dir() and folder.parent.name in CONFIGS:
                record_row(folder.parent.name, int(folder.name[1:]))
        return
    if args.cmd in analyses:
        print(analyses[args.cmd][0](args.baseline, args.variant), end="")
        return
    unknown = [n for n in (args.names if args.cmd == "run" else args.names[:1]) if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    if args.cmd == "one":
        run_one(args.names[0], int(args.names[1]), args.steps, args.eval_every)
    else:
        run_many(args.names, args.seeds, args.steps, args.eval_every, args.jobs)


if __name__ == "__main__":
    main()
