"""Study files (`mirai ablate --study FILE`): named variants validated by the schema when read, run by the same
runner as an axis (baselines added, seeds shared, a finished run continued to a longer one), the same paired
report per baseline, and one committed row per finished run."""

import json
from pathlib import Path

import pytest
from clirun import assert_one_line_error, mirai
from mirai_testdata import tiny_overrides

from mirai_cli.ablate.rows import read_rows
from mirai_cli.ablate.runner import plan_study_file, run_study, write_reports
from mirai_cli.ablate.study_file import chosen_variants, read_study_file
from mirai_cli.errors import MiraiError
from mirai_cli.tokenizer.from_config import encode_from_config

VARIANTS = """
[variants.base]
foresight.source = "none"

[variants.ema]
foresight.source = "ema"

[variants.base-long]
baseline = "base-long"
continues = "base"
foresight.source = "none"
train.duration = 6

[variants.ema-long]
baseline = "base-long"
continues = "ema"
foresight.source = "ema"
train.duration = 6
"""


def write_study(path: Path, settings: list[str], variants: str = VARIANTS, head: str = "") -> Path:
    lines = ['presets = ["tiny"]', 'baseline = "base"', head, "[settings]"]
    lines += [" = ".join(item.split("=", 1)) for item in settings]
    path.write_text("\n".join(lines) + "\n" + variants)
    return path


def tiny_settings(tiny_store, tmp_path, **extra) -> list[str]:
    return tiny_overrides(tiny_store, tmp_path / "unused", **{
        "train.duration": 4, "train.eval_every": 2, "train.ckpt_every": 2, "ablate.eval_samples_per_class": 0,
        "ablate.seeds": [0], "ablate.baseline_seeds": 1, "data.source": str(tiny_store["npz"]),
        "data.val_images": 16, "data.val_store": str(tmp_path / "val"),
        "tokenizer.checkpoint": str(tiny_store["tokenizer"]), "ablate.out_dir": str(tmp_path / "studies" / "{axis}"), **extra,
    })


def test_every_variant_is_validated_when_the_file_is_read(tmp_path):
    path = write_study(tmp_path / "s.toml", [], VARIANTS + '\n[variants.typo]\nforesight.sourc = "ema"\n')
    with pytest.raises(MiraiError) as err:
        read_study_file(path)
    assert str(err.value).startswith(f"{path} [variants.typo]: foresight.sourc: unknown key in section [foresight]")
    path = write_study(tmp_path / "s.toml", ["foresight.lambda=-1"], VARIANTS)
    with pytest.raises(MiraiError, match=r"s.toml \[settings\]: foresight.lambda = -1"):
        read_study_file(path)
    bad = {
        'continues = "nothing"': "continues = 'nothing' is not a variant of this file",
        'baseline = "ema"': "its baseline 'ema' is compared with another variant",
    }
    for line, message in bad.items():
        path = write_study(tmp_path / "s.toml", [], VARIANTS + f"\n[variants.x]\n{line}\n")
        with pytest.raises(MiraiError, match=message):
            read_study_file(path)
    # a continued run must be the same training: only its length (and the like) may change
    path = write_study(tmp_path / "s.toml", [], VARIANTS + '\n[variants.x]\ncontinues = "base"\ntrain.lr = 0.5\n')
    with pytest.raises(MiraiError, match=r"\[variants.x\]: cannot continue base, .*train.lr = 0.001 there, 0.5 now"):
        read_study_file(path)
    path = write_study(tmp_path / "s.toml", ["ablate.axis=\"k\""], VARIANTS)
    with pytest.raises(MiraiError, match="ablate.axis belongs to `mirai ablate --axis`"):
        read_study_file(path)


def test_chosen_variants_bring_their_baselines_first(tmp_path):
    study = read_study_file(write_study(tmp_path / "s.toml", []))
    assert chosen_variants(study, ["ema-long", "ema"]) == ["base-long", "ema-long", "base", "ema"]
    assert chosen_variants(study, None) == ["base", "ema", "base-long", "ema-long"]
    with pytest.raises(MiraiError, match="no variant named 'emma'; variants: base, ema, base-long, ema-long"):
        chosen_variants(study, ["emma"])


def test_cli_errors_are_one_line(tmp_path):
    path = write_study(tmp_path / "s.toml", [], VARIANTS + '\n[variants.typo]\nfooresight.source = "ema"\n')
    assert_one_line_error(mirai("ablate", "--study", path, "--dry-run"), f"{path} [variants.typo]", "fooresight")
    path = write_study(tmp_path / "s.toml", [])
    assert_one_line_error(mirai("ablate", "--study", path, "--axis", "k"), "--study names its presets")
    assert_one_line_error(mirai("ablate", "--study", path, "--seeds", "1,x", "--dry-run"), "--seeds: 'x'")
    assert_one_line_error(mirai("ablate", "--variants", "ema", "--dry-run"), "--variants needs --study")


def test_a_study_file_runs_reports_per_baseline_continues_finished_runs_and_records_rows(tiny_store, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # the rows file is relative to the working directory, like a preset's paths
    settings = tiny_settings(tiny_store, tmp_path)
    path = write_study(tmp_path / "s.toml", settings, head='rows = "rows.jsonl"')
    study = plan_study_file(path, ["ema"], [])
    assert [v.name for v in study.variants] == ["base-s0", "ema-s0"]  # the baseline comes with its variant
    assert study.root == tmp_path / "studies" / "s"
    encode_from_config(study.variants[0].config, show_progress=False, validation=True)
    results = run_study(study, progress=False, log=lambda m: None)
    assert [r["step"] for r in results["ema-s0"]] == [2, 4]
    [(folder, report)] = write_reports(study, results)
    assert folder == study.root / "reports" / "base" and (folder / "report.md").is_file()
    assert report["paired"] and [row["variant"] for row in report["rows"]] == ["base", "ema"]
    rows = read_rows(tmp_path / "rows.jsonl")
    fit = next(iter(rows))[0]
    assert set(rows) == {(fit, "base", 0), (fit, "ema", 0)}
    ema = rows[(fit, "ema", 0)]
    assert ema["baseline"] == "base" and ema["steps"] == 4 and ema["seconds"] > 0
    assert ema["curve"] == {r["step"]: r["values"]["val_nll"] for r in results["ema-s0"]}
    assert ema["command"] == f"mirai ablate --study {path} --variants ema --seeds 0"

    # The longer variants continue the finished 4-step runs: copied, then 2 more steps each, nothing redone.
    stamps = {p: p.stat().st_mtime_ns for p in (study.root / "runs").rglob("*.safetensors")}
    longer = plan_study_file(path, ["ema-long"], [])
    assert [v.name for v in longer.variants] == ["base-long-s0", "ema-long-s0"]
    logs: list[str] = []
    again = run_study(longer, progress=False, log=logs.append)
    assert "[ema-long-s0] continues ema-s0 from its step 4" in logs
    assert [r["step"] for r in again["ema-long-s0"]] == [2, 4, 6]
    assert again["ema-long-s0"][:2] == results["ema-s0"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    metrics = [json.loads(line)["step"] for line in (longer.run_dir(longer.variants[1]) / "metrics.jsonl").open()]
    assert metrics[:4] == [1, 2, 3, 4] and metrics[-1] == 6
    [(folder, report)] = write_reports(longer, again)
    assert folder.name == "base-long" and report["paired"]
    assert (fit, "ema-long", 0) in read_rows(tmp_path / "rows.jsonl")

    # lr is constant: the continued run is the 6-step run (the sweep's premise), to float precision
    fresh_path = write_study(tmp_path / "fresh.toml", settings, VARIANTS.replace('continues = "base"\n', ""))
    fresh = run_study(plan_study_file(fresh_path, ["base-long"], []), progress=False, log=lambda m: None)
    continued = [r["values"]["val_nll"] for r in again["base-long-s0"]]
    assert [r["values"]["val_nll"] for r in fresh["base-long-s0"]] == pytest.approx(continued, rel=1e-5)

    # A variant run with other settings in the same folder stops before anything trains.
    changed = plan_study_file(path, ["ema"], ["train.lr=0.5"])
    with pytest.raises(MiraiError, match="was run with other settings"):
        run_study(changed, progress=False, log=lambda m: None)


@pytest.mark.slow
def test_the_cli_runs_a_study_file_in_parallel_processes(tiny_store, tmp_path):
    """`--jobs 2`: the continued runs first (two processes), then the variants (two more), each a `mirai ablate
    --study FILE --only RUN` process; the data is prepared once by the parent."""
    settings = tiny_settings(tiny_store, tmp_path, **{"data.store": str(tmp_path / "store")})  # encoded here
    path = write_study(tmp_path / "s.toml", settings, head='rows = "rows.jsonl"')
    result = mirai("ablate", "--study", path, "--variants", "ema-long", "--jobs", "2", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "studies" / "s" / "reports" / "base-long" / "report.json").read_text())
    assert report["paired"] and [row["variant"] for row in report["rows"]] == ["base-long", "ema-long"]
    assert "base-long/report.md" in result.stdout.replace("\n", "")
    rows = {name: row for (_, name, _), row in read_rows(tmp_path / "rows.jsonl").items()}
    assert set(rows) == {"base", "ema", "base-long", "ema-long"}
    assert list(rows["ema-long"]["curve"]) == [2, 4, 6]
    assert [rows["ema-long"]["curve"][s] for s in (2, 4)] == [rows["ema"]["curve"][s] for s in (2, 4)]
    assert (tmp_path / "studies" / "s" / "runs" / "ema-long-s0.log").is_file()


REPO = Path(__file__).resolve().parents[2]


def test_every_committed_row_is_a_variant_of_one_study_file():
    """docs/studies/*.toml load through the schema; every row of docs/study_rows.jsonl names a variant of exactly
    one of them, so `mirai ablate --study FILE --variants NAME --seeds S` reproduces it."""
    owner: dict[str, Path] = {}
    for path in sorted((REPO / "docs" / "studies").glob("*.toml")):
        study = read_study_file(path)
        assert study.rows == "docs/study_rows.jsonl", path
        for name in study.variants:
            assert name not in owner, f"{name} in {owner.get(name)} and {path}"
            owner[name] = path
    rows = read_rows(REPO / "docs" / "study_rows.jsonl")
    assert rows and {name for _, name, _ in rows} <= set(owner)
