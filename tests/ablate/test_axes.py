"""Axis expansion: every axis gives variants that differ only in the axis fields (plus the method switch
for the baseline), and the baseline is always there."""

import pytest

from mirai_cli.ablate.axes import differing_fields, expand
from mirai_cli.config.registries import ABLATE_AXES
from mirai_cli.errors import MiraiError

ALLOWED = {
    "level": {"foresight.level", "foresight.source"},
    "layout": {"foresight.layout", "foresight.source"},
    "k": {"foresight.k", "foresight.source"},
    "source": {"foresight.source"},
    "depth": {"foresight.depth", "foresight.source"},
    "lambda": {"foresight.lambda", "foresight.source"},
    "encoder": {"foresight.encoder", "foresight.encoder_layer", "foresight.source"},
    "warmup": {"foresight.warmup", "foresight.source"},
    "encoder_layer": {"foresight.encoder_layer", "foresight.encoder_resolution", "foresight.source"},
    "target_norm": {"foresight.target_norm", "foresight.source"},
}


@pytest.mark.parametrize("axis", list(ABLATE_AXES))
def test_every_axis_expands_to_variants_differing_only_on_it(axis):
    values = ["tokenizer", "efficientnet-lite0"] if axis == "encoder" else None
    variants = expand(["tiny"], ["ablate.seeds=[0]"], axis, values)
    assert variants[0].is_baseline and variants[0].config.foresight.source == "none"
    assert len(variants) >= 3
    assert set(differing_fields(variants)) <= ALLOWED[axis]
    assert ABLATE_AXES[axis] in differing_fields(variants) or axis == "source"
    names = [v.name for v in variants]
    assert len(set(names)) == len(names)
    seeds = {v.config.train.seed for v in variants}
    assert seeds == {0}  # identical seeds across variants


def test_defaults_follow_the_paper():
    assert [v.axis_value for v in expand(["llamagen-b"], [], "k")][1:] == [1, 3, 9]
    assert [v.axis_value for v in expand(["llamagen-b"], [], "depth")][1:] == [4, 8, 12]
    assert [v.config.foresight.source for v in expand(["mirai-i"], [], "k")][1:] == ["encoder"] * 3
    levels = expand(["mirai-e"], [], "level")
    assert [(v.config.foresight.source, v.config.foresight.level) for v in levels] == [
        ("none", "internal"), ("ema", "output"), ("ema", "internal")]


def test_values_override_and_are_typed():
    variants = expand(["tiny"], ["ablate.seeds=[0]"], "k", ["2", "4"])
    assert [v.config.foresight.k for v in variants[1:]] == [2, 4]
    variants = expand(["tiny"], ["ablate.seeds=[0]"], "lambda", ["0.5"])
    assert variants[1].config.foresight.lambda_ == 0.5


def test_baseline_seeds_add_noise_runs():
    variants = expand(["tiny"], ["ablate.seeds=[0]"], "source", baseline_seeds=2)
    baselines = [v for v in variants if v.is_baseline]
    assert [v.seed for v in baselines] == [0, 1] and len({v.name for v in baselines}) == 2


def test_seeds_repeat_every_variant():
    variants = expand(["tiny"], [], "source", ["encoder"])  # tiny: ablate.seeds = [0, 1, 2]
    assert [(v.name, v.seed) for v in variants] == [
        ("baseline-s0", 0), ("baseline-s1", 1), ("baseline-s2", 2),
        ("source-encoder-s0", 0), ("source-encoder-s1", 1), ("source-encoder-s2", 2)]


def test_a_bad_value_names_the_variant():
    with pytest.raises(MiraiError, match="variant depth = 9"):
        expand(["tiny"], [], "depth", ["9"])
    with pytest.raises(MiraiError, match="unknown ablation axis"):
        expand(["tiny"], [], "colour")


def test_no_study_counts_one_run_twice_or_trains_for_nothing(tmp_path):
    """Variant names are run folders: a repeated seed or value is refused, extra baseline seeds never meet the
    study's own (unsorted seeds included), and a study with nothing to evaluate is refused when planned."""
    from mirai_cli.ablate.runner import plan_study
    from mirai_cli.ablate.study_file import read_study_file, study_variants

    with pytest.raises(MiraiError, match="seed 1 is given twice"):
        expand(["tiny"], ["ablate.seeds=[1, 0, 1]"], "source")
    with pytest.raises(MiraiError, match="give each value once"):
        expand(["tiny"], [], "k", ["3", "1", "3"])
    variants = expand(["tiny"], ["ablate.seeds=[2, 0]"], "source", ["ema"], baseline_seeds=3)
    assert [v.seed for v in variants if v.is_baseline] == [2, 0, 3, 4]  # the extra ones after the largest
    assert len({v.name for v in variants}) == len(variants)
    path = tmp_path / "s.toml"
    path.write_text('presets = ["tiny"]\nbaseline = "base"\n[settings]\nablate.seeds = [5, 1]\n'
                    'ablate.baseline_seeds = 2\n[variants.base]\nforesight.source = "none"\n')
    assert [v.name for v in study_variants(read_study_file(path), None)] == ["base-s5", "base-s1", "base-s6"]
    with pytest.raises(MiraiError, match="nothing to evaluate"):
        plan_study(["tiny"], ["ablate.eval_samples_per_class=0", "data.val_images=0"], "source", ["ema"],
                   tmp_path / "study")
    assert not (tmp_path / "study").exists()
