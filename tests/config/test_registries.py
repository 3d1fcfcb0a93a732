"""One place for each name: the registries the preset schema validates against agree with the libraries that
implement the names, and they import no torch."""

import subprocess
import sys
import typing

import pytest

from mirai_cli.config import load_config
from mirai_cli.config import registries as reg
from mirai_cli.config.schema import AblateConfig, ModelConfig, TokenizerConfig


def _literal_choices(model, field):
    annotation = model.model_fields[field].annotation
    args = typing.get_args(annotation)
    if type(None) in args:  # Optional[Literal[...]]
        annotation = next(a for a in args if a is not type(None))
    return set(typing.get_args(annotation))


def test_schema_sizes_equal_the_libraries():
    from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
    from mirai_cli.tokenizer.config import VQConfig

    assert _literal_choices(ModelConfig, "size") == set(NAMED_SIZES) | {"custom"}
    for name, (layers, dim, heads) in NAMED_SIZES.items():
        model = load_config(["mirai-e"], [f'model.size="{name}"']).model
        assert (model.layers, model.dim, model.heads) == (layers, dim, heads)
        cfg = GPTConfig.named(name, vocab_size=16384, num_classes=1000)
        assert (cfg.layers, cfg.dim, cfg.heads) == (layers, dim, heads)
    assert _literal_choices(TokenizerConfig, "size") == set(reg.VQ_SIZES) | {"custom"}
    for name, fields in reg.VQ_SIZES.items():
        vq = VQConfig.named(name).to_dict()
        assert {k: vq[k] for k in fields} == fields, name


def test_encoders_extractors_and_axes_equal_the_libraries():
    from mirai_cli.ablate.axes import default_values
    from mirai_cli.evaluation.extractors import REGISTERED_EXTRACTORS
    from mirai_cli.foresight.teachers import ENCODER_SPECS

    assert set(ENCODER_SPECS) == set(reg.ENCODER_NAMES)
    assert set(reg.EXTRACTOR_NAMES) <= set(REGISTERED_EXTRACTORS)  # tests may register more (tiny-test)
    assert {n for n in REGISTERED_EXTRACTORS if n != "tiny-test"} == set(reg.EXTRACTOR_NAMES)
    assert _literal_choices(AblateConfig, "axis") == set(reg.ABLATE_AXES)
    base = load_config(["mirai-e"])
    for axis in reg.ABLATE_AXES:
        assert default_values(axis, base), axis


def test_registries_import_no_torch():
    code = "import sys, mirai_cli.config.registries; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("override,hint", [
    ('foresight.encoder="dinov2-vitb"', "did you mean 'dinov2-vit-b'?"),
    ('eval.extractor="efficientnet-lite9"', "did you mean 'efficientnet-lite2'?"),
    ('ablate.axis="levels"', "did you mean 'level'?"),
    ('model.size="GPT-XXXXL"', "did you mean 'GPT-XXXL'?"),
])
def test_did_you_mean(override, hint):
    from mirai_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=hint.replace("?", r"\?")):
        load_config(["mirai-e"], [override])
