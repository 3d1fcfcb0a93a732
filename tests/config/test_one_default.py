"""One source per setting: the preset schema holds every setting's default. The plain job configs that mirror a
setting take its default from the schema (never a literal of their own, which drifts: cfg_scale was 2.0 in the
schema and 1.0 in SampleOptions), and CLI options that set a setting for one call default to None (the preset
decides) and show the schema's description."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap

import pytest

from mirai_cli.config.schema import SECTIONS, section_defaults

# job config -> {its field: "section.field" of the schema}. Fields of the same name in the listed sections map
# by themselves; `renames` adds the ones the job names differently.
JOB_CONFIGS = {
    "mirai_cli.gpt.config.GPTConfig": (("model",), {}),
    "mirai_cli.gpt.generate.SampleOptions": (("sample",), {}),
    "mirai_cli.tokenizer.config.VQConfig": (("tokenizer",), {}),
    "mirai_cli.tokenizer.fit.FitConfig": (("data",), {
        "steps": "tokenizer.fit_steps", "batch_size": "tokenizer.fit_batch_size", "lr": "tokenizer.fit_lr",
        "perceptual_weight": "tokenizer.perceptual_weight", "lpips_vgg_weights": "tokenizer.perceptual_weights",
        "disc_start": "tokenizer.disc_start", "disc_weight": "tokenizer.disc_weight",
        "time_limit_s": "tokenizer.fit_time_limit", "precision": "train.precision", "seed": "train.seed",
        "log_every": "train.log_every",
    }),
    "mirai_cli.foresight.teachers.targets.TargetOptions": ((), {
        "precision": "foresight.teacher_precision", "resize": "foresight.encoder_resize",
        "layer": "foresight.encoder_layer", "norm": "foresight.target_norm", "norm_alpha": "foresight.target_norm_alpha",
    }),
    "mirai_cli.evaluation.settings.EvalSettings": (("eval",), {}),
}
# Same name, another meaning; each says why.
NOT_THE_SETTING = {
    ("EvalSettings", "metrics"): "evaluate() and `mirai eval` with no metric named and no preset compute FID only",
    ("VQConfig", "ch"): "the default size's shape (VQ_SIZES), which the schema's size default names",
    ("VQConfig", "ch_mult"): "the default size's shape (VQ_SIZES)",
    ("VQConfig", "z_channels"): "the default size's shape (VQ_SIZES)",
    ("VQConfig", "codebook_size"): "the default size's shape (VQ_SIZES)",
    ("VQConfig", "codebook_dim"): "the default size's shape (VQ_SIZES)",
}


def _load(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def mirrored_fields(path: str) -> dict[str, str]:
    cls = _load(path)
    sections, renames = JOB_CONFIGS[path]
    out = dict(renames)
    for f in dataclasses.fields(cls):
        for section in sections:
            if f.name in SECTIONS[section].model_fields and f.name not in out:
                out[f.name] = f"{section}.{f.name}"
    return {k: v for k, v in out.items() if (cls.__name__, k) not in NOT_THE_SETTING}


def literal_defaults(cls: type) -> dict[str, str]:
    """Fields whose default is written as a literal in the class body (a number, string, tuple of them)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    out = {}
    for node in tree.body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            try:
                ast.literal_eval(node.value)
            except ValueError:
                continue
            out[node.target.id] = ast.unparse(node.value)
    return out


def duplicated_defaults(path: str) -> list[str]:
    cls = _load(path)
    literal = literal_defaults(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    problems = []
    for name, key in mirrored_fields(path).items():
        section, field = key.split(".")
        schema = section_defaults(section)[field]
        if name in literal and literal[name] != "None":
            problems.append(f"{cls.__name__}.{name} = {literal[name]} writes the default of {key} again")
        elif defaults[name] is not dataclasses.MISSING and defaults[name] != schema and not (
                isinstance(schema, list) and tuple(schema) == defaults[name]):
            problems.append(f"{cls.__name__}.{name} = {defaults[name]!r} but {key} = {schema!r}")
    return problems


@pytest.mark.parametrize("path", list(JOB_CONFIGS))
def test_job_configs_take_their_defaults_from_the_schema(path):
    problems = duplicated_defaults(path)
    assert not problems, "\n".join(problems)


@dataclasses.dataclass
class DriftingOptions:  # what the check exists to catch
    cfg_scale: float = 1.0
    top_k: int = section_defaults("sample")["top_k"]
    top_p: float = 0.5


def test_the_check_sees_literal_defaults(monkeypatch):
    monkeypatch.setitem(JOB_CONFIGS, f"{__name__}.DriftingOptions", (("sample",), {}))
    assert duplicated_defaults(f"{__name__}.DriftingOptions") == [
        "DriftingOptions.cfg_scale = 1.0 writes the default of sample.cfg_scale again",
        "DriftingOptions.top_p = 0.5 writes the default of sample.top_p again",
    ]


# CLI command -> {option parameter: "section.field"}
CLI_OPTIONS = {
    ("mirai_cli.cli.sample", "sample_command"): {
        "weights": "sample.weights", "per_class": "sample.per_class", "random": "sample.random_classes",
        "cfg_scale": "sample.cfg_scale", "seed": "sample.seed"},
    ("mirai_cli.cli.eval_cmd", "run"): {
        name: f"eval.{name}" for name in ("extractor", "inception_weights", "resize", "ref_limit", "kid_subset_size",
                                          "kid_subsets", "isc_splits", "prc_neighborhood", "batch_size")},
    ("mirai_cli.cli.eval_cmd", "stats"): {
        name: f"eval.{name}" for name in ("extractor", "inception_weights", "resize", "ref_limit", "batch_size")},
}


@pytest.mark.parametrize("command", list(CLI_OPTIONS), ids=lambda c: c[1])
def test_cli_options_that_set_a_setting_take_default_and_help_from_the_schema(command):
    function = getattr(importlib.import_module(command[0]), command[1])
    params = inspect.signature(function).parameters
    for name, key in CLI_OPTIONS[command].items():
        option = params[name].default
        section, field = key.split(".")
        assert option.default is None, f"--{name} has its own default {option.default!r}; {key} decides"
        assert SECTIONS[section].model_fields[field].description in option.help, f"--{name}: help is not {key}'s"
