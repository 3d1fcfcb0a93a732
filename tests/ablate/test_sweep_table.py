"""The sweep table from rows and study files: each row against its baseline's seed mean and same-seed row, the
reproduce command from the study file, the paired section, and run folders started but not recorded."""

from mirai_cli.ablate.rows import append_row, read_rows
from mirai_cli.ablate.study_file import read_study_file
from mirai_cli.ablate.sweep_table import Catalog, started_runs, sweep_table

STUDY = """presets = ["tiny"]
baseline = "b"
[settings]
ablate.out_dir = "{out}/{{axis}}"
[variants.b]
foresight.source = "none"
[variants.v]
foresight.source = "ema"
foresight.lambda = 0.5
"""


def row(name, seed, curve, fit="fitA"):
    return {"name": name, "seed": seed, "tokenizer": fit, "source": "run", "curve": {str(k): v for k, v in curve.items()},
            "steps": max(curve), "seconds": 12.0}


def test_rows_become_the_sweep_table(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(out=tmp_path / "runs"))
    rows_path = tmp_path / "rows.jsonl"
    for seed, d in ((1, 0.0), (2, 0.02)):
        append_row(rows_path, row("b", seed, {100: 3.0 + d, 200: 2.5 + d}))
        append_row(rows_path, row("v", seed, {100: 2.9 + d, 200: 2.4 + d}))
    assert not append_row(rows_path, row("v", 1, {100: 0.0, 200: 0.0}))  # recorded already: kept as it was
    rows = read_rows(rows_path)
    catalog = Catalog([read_study_file(path)])
    (tmp_path / "runs" / "s" / "runs" / "v-s3").mkdir(parents=True)  # started, no row yet
    table = sweep_table(rows, catalog, started_runs(catalog, rows))
    # seed 1: final 2.4 vs the baseline mean 2.51 (sd 0.0141: +7.8 sd), vs its own seed +0.1; the baseline's final
    # 2.5 is reached at step 180 of its 200: 1.11x
    expected = (f'| v | foresight.source="ema" foresight.lambda=0.5 | 1 | 200 | 12 | 2.900 2.400 | 2.4000 | +0.1100 '
                f'(+7.8 sd) | +0.1000 | 2.4000 (200) | +0.1000 | 180 | 1.11x | `mirai ablate --study {path} '
                f'--variants v --seeds 1` |')
    assert expected in table, table
    assert "Baseline `b` final val NLL over seeds [1, 2]: mean 2.5100" in table
    assert "| b | v | fitA | 1, 2 | 200 | +0.1 / +0.1 | +0.1 [+0.1, +0.1] | 1.11x [1.11, 1.11] | final |" in table
    assert table.rstrip().endswith(f"| v | foresight.source=\"ema\" foresight.lambda=0.5 | 3 | `mirai ablate --study "
                                   f"{path} --variants v --seeds 3` |")
