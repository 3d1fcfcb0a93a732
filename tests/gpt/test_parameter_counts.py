"""Parameter counts from a model config (for plots against the student's size): equal to a real model's."""

from mirai_cli.config import load_config
from mirai_cli.engine.run import gpt_config_from
from mirai_cli.gpt.model import GPT, parameter_counts


def test_counts_match_a_built_model_and_exclude_the_embeddings():
    cfg = gpt_config_from(load_config(["tiny"], ["model.dim=64", "model.heads=2"]))
    model = GPT(cfg)
    counts = parameter_counts(cfg)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    tables = model.tok_embeddings.weight.numel() + model.cls_embedding.embedding_table.weight.numel() \
        + model.output.weight.numel()
    assert counts["non_embedding"] == counts["total"] - tables
    # the transformer blocks and the final norm are what is left
    assert counts["non_embedding"] == sum(p.numel() for p in model.layers.parameters()) + cfg.dim
    wider = parameter_counts(gpt_config_from(load_config(["tiny"], ["model.dim=128", "model.heads=2"])))
    assert wider["non_embedding"] > 3 * counts["non_embedding"]  # ~quadratic in width
