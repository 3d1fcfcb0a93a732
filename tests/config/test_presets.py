"""Shipped presets, layering, --set precedence, and the resolved round trip."""

from pathlib import Path

import pytest

from mirai_cli.config import load_config, resolved_toml, shipped_preset_names
from mirai_cli.config.loader import parse_override
from mirai_cli.errors import ConfigError

SHIPPED = shipped_preset_names()


def test_the_paper_presets_ship():
    for name in ["llamagen-b", "llamagen-l", "llamagen-xl", "mirai-e", "mirai-i", "tiny"]:
        assert name in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_validates(name):
    config = load_config([name])
    assert config.name == name
    assert config.foresight.depth <= config.model.layers


@pytest.mark.parametrize("method", ["llamagen-b", "mirai-e", "mirai-i"])
def test_every_method_layers_over_tiny(method):
    config = load_config([method, "tiny"])
    assert config.model.layers == 4 and config.grid == 8


def test_paper_values():
    e = load_config(["mirai-e"])
    assert (e.model.layers, e.model.dim, e.model.heads) == (12, 768, 12)
    assert e.foresight.source == "ema" and e.foresight.depth == 8 and e.foresight.k == 3
    assert e.foresight.layout == "2d" and e.foresight.lambda_ == 2.0 and e.foresight.lambda_factor == 0.5
    assert e.foresight.warmup == "15ep" and e.foresight.lambda_at == "80ep" and e.foresight.ema_decay == 0.9999
    i = load_config(["mirai-i"])
    assert i.foresight.source == "encoder" and i.foresight.encoder == "dinov2-vit-b" and i.foresight.k == 1
    assert i.foresight.warmup == 0
    assert load_config(["llamagen-l"]).foresight.depth == 16
    assert load_config(["llamagen-xl"]).foresight.depth == 24
    assert load_config(["mirai-i-l"]).model.layers == 24


def test_layering_later_preset_wins_and_set_wins_over_all(tmp_path: Path):
    a = tmp_path / "a.toml"
    a.write_text('[train]\nlr = 0.5\nseed = 1\n[model]\nsize = "custom"\nlayers = 2\ndim = 64\nheads = 2\n')
    b = tmp_path / "b.toml"
    b.write_text("[train]\nlr = 0.25\n")
    config = load_config([str(a), str(b)])
    assert config.train.lr == 0.25 and config.train.seed == 1 and config.model.layers == 2
    config = load_config([str(b), str(a)])
    assert config.train.lr == 0.5
    config = load_config([str(a), str(b)], ["train.lr=0.125", "train.seed=7"])
    assert config.train.lr == 0.125 and config.train.seed == 7
    # The last --set of the same key wins.
    assert load_config([str(a)], ["train.seed=3", "train.seed=4"]).train.seed == 4


def test_extends_chain_and_relative_path(tmp_path: Path):
    base = tmp_path / "base.toml"
    base.write_text('extends = "mirai-e"\n[train]\nseed = 11\n')
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[foresight]\nk = 2\n')
    config = load_config([str(child)])
    assert config.foresight.source == "ema" and config.train.seed == 11 and config.foresight.k == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train.lr=3e-4", 3e-4),
        ("train.compile=true", True),
        ("foresight.offsets=[[0,0],[0,1]]", [[0, 0], [0, 1]]),
        ("data.source=/data/x", "/data/x"),
        ('data.source="quoted"', "quoted"),
        ("train.duration=15ep", "15ep"),
        ("model.layers=4", 4),
    ],
)
def test_set_coerces_types(text, expected):
    assert parse_override(text)[1] == expected


def test_set_values_reach_the_typed_config():
    config = load_config(["tiny"], ["train.compile=true", "foresight.offsets=[[0,0],[1,1]]", "sample.classes=[1,2]"])
    assert config.train.compile is True and config.foresight.k == 2 and config.sample.classes == [1, 2]


@pytest.mark.parametrize("stack", [["llamagen-b"], ["mirai-e", "tiny"], ["mirai-i", "tiny"], ["mirai-i-xl"]])
def test_resolved_preset_round_trips(tmp_path: Path, stack):
    config = load_config(stack, ["foresight.lambda=[2.0, 1.0, 0.5]", "foresight.k=3"])
    path = tmp_path / "resolved.toml"
    path.write_text(resolved_toml(config))
    again = load_config([str(path)])
    assert again.model_dump(exclude={"name"}) == config.model_dump(exclude={"name"})
    assert again.name == config.name  # the name is written into the file
    assert resolved_toml(again) == resolved_toml(config)


def test_cycle_in_extends_is_reported(tmp_path: Path):
    (tmp_path / "x.toml").write_text('extends = "y.toml"\n')
    (tmp_path / "y.toml").write_text('extends = "x.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config([str(tmp_path / "x.toml")])
