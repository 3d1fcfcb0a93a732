"""Mirai-E teacher: the EMA GPT's own features, eval mode, true labels, no gradient; the whole loss path
on a real tiny GPT."""

import torch

from mirai_cli.engine.ema import EMA
from mirai_cli.foresight import ForesightObjective, LambdaSchedule
from mirai_cli.foresight.teachers import EMATeacher
from mirai_cli.gpt import GPT, GPTConfig

CFG = {"vocab_size": 37, "num_classes": 5, "layers": 3, "dim": 32, "heads": 2, "grid": (4, 4)}


def setup(seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**CFG))
    ema = EMA(model, decay=0.9)
    with torch.no_grad():  # one "optimizer step" then the EMA update
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ema.update(model)
    tokens = torch.randint(0, 37, (3, 16))
    labels = torch.tensor([0, 2, 4])
    return model, ema, tokens, labels


def test_teacher_features_equal_the_ema_models_own_after_an_update():
    model, ema, tokens, labels = setup()
    teacher = EMATeacher(ema, depth=2)
    feats = teacher(tokens, labels)
    assert feats.shape == (3, 16, 32) and not feats.requires_grad
    ema.module.eval()
    with torch.no_grad():
        own = ema.module(tokens, labels, feature_depth=2).feature
    assert torch.equal(feats, own)
    # and equal to a plain GPT loaded with the EMA weights (what sampling uses)
    plain = GPT(GPTConfig(**CFG)).eval()
    plain.load_state_dict(ema.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain.forward_features(tokens, labels, 2), feats, atol=1e-6)
    # the teacher is the EMA, not the student
    with torch.no_grad():
        student = model.eval()(tokens, labels, feature_depth=2).feature
    assert not torch.allclose(student, feats)


def test_teacher_is_eval_mode_with_true_labels_even_if_flipped_to_train():
    _, ema, tokens, labels = setup()
    ema.module.cfg.class_dropout = 1.0  # in training mode every label would become the null class
    ema.module.train()
    teacher = EMATeacher(ema, depth=3)
    a, b = teacher(tokens, labels), teacher(tokens, labels)
    assert torch.equal(a, b)  # no dropout
    ema.module.eval()
    with torch.no_grad():
        true_labels = ema.module.forward_features(tokens, labels, 3, class_drop=False)
    assert torch.equal(a, true_labels)


def test_output_level_targets_the_final_normed_hidden_state():
    _, ema, tokens, labels = setup()
    out = EMATeacher(ema, depth=2, level="output")(tokens, labels)
    with torch.no_grad():
        assert torch.equal(out, ema.module.eval()(tokens, labels).final_hidden)


def test_no_gradient_reaches_the_teacher_and_the_student_learns():
    model, ema, tokens, labels = setup()
    teacher = EMATeacher(ema, depth=2)
    objective = ForesightObjective.from_layout((4, 4), 32, teacher.teacher_dim, "sequence", "2d", 3, hidden_dim=64)
    schedule = LambdaSchedule.build(2.0, objective.num_heads)
    model.train()
    target = teacher(tokens, labels)  # previous-step EMA: before any update of this step
    out = model(tokens, labels, feature_depth=2)
    losses = objective(out.feature, target, schedule.weights(0))
    assert set(losses) == {"foresight_h0", "foresight_h1", "foresight_h2", "foresight"}
    total = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens.flatten()) + losses["foresight"]
    total.backward()
    assert all(p.grad is None for p in ema.module.parameters())
    assert model.layers[0].attention.wqkv.weight.grad.abs().sum() > 0  # blocks up to depth get foresight grads
    assert all(p.grad is not None for p in objective.parameters())


def test_foresight_loss_goes_down_when_training_the_projectors():
    torch.manual_seed(0)
    student = torch.randn(4, 16, 24)
    teacher = torch.randn(4, 16, 12)
    objective = ForesightObjective.from_layout((4, 4), 24, 12, "sequence", "2d", 3, hidden_dim=64)
    opt = torch.optim.Adam(objective.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        loss = objective(student, teacher, [1.0, 1.0, 1.0])["foresight"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 1.0  # from about 0 towards -3 (three heads, perfect alignment)


def test_class_pair_is_in_every_heads_loss():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 16, 24), torch.randn(2, 16, 12)
    objective = ForesightObjective.from_layout((4, 4), 24, 12, "sequence", "2d", 3, hidden_dim=32)
    losses = objective(student, teacher, [1.0, 1.0, 1.0])
    # head 1 (right neighbour) by hand: the class pair (0, 0), then student g + 1 -> teacher g + 2
    s_idx = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14]
    t_idx = [0, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15]
    pred = objective.projectors.head(1, student[:, s_idx])
    expect = -torch.nn.functional.cosine_similarity(pred, teacher[:, t_idx], dim=-1).mean()
    assert torch.allclose(losses["foresight_h1"], expect, atol=1e-6)


def test_teacher_interface_and_ordering():
    """Targets come from the EMA as of its last update; the teacher names that EMA (`teacher.ema`) for the
    engine, which moves and saves it."""
    from mirai_cli.foresight.teachers import TargetBatch

    model, ema, tokens, labels = setup()
    teacher = EMATeacher(ema, depth=2)
    batch = TargetBatch(tokens, labels)
    before = teacher.targets(batch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    assert torch.equal(teacher.targets(batch), before)  # the model moved, the EMA did not
    teacher.ema.update(model)
    assert not torch.allclose(teacher.targets(batch), before)
    assert teacher.ema is ema and teacher.teacher_space == "sequence" and teacher.teacher_dim == 32


def compiled(block) -> bool:
    return getattr(block, "_compiled_call_impl", None) is not None


def test_a_compiled_teacher_runs_its_blocks_compiled_and_gives_the_same_targets(monkeypatch):
    import mirai_cli.gpt.model as gpt_model

    # aot_eager traces what inductor would compile, without a C++ build on the test machine.
    monkeypatch.setattr(gpt_model, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    _, ema, tokens, labels = setup()
    eager = EMATeacher(ema, depth=2)(tokens, labels)
    teacher = EMATeacher(ema, depth=2, compile=True)
    assert [compiled(b) for b in ema.module.layers] == [True, True, False]  # only the blocks it needs
    assert torch.equal(teacher(tokens, labels), eager)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert set(ema.module.state_dict()) == set(ema.state_dict())  # names unchanged: checkpoints stay the same
    torch._dynamo.reset()


def test_the_teacher_compiles_with_train_compile_on_cuda_only():
    from mirai_cli.config import load_config
    from mirai_cli.foresight.teachers.build import build_teacher

    for device, setting, expected in [("cuda", "auto", True), ("cpu", "auto", False), ("cpu", "true", True),
                                      ("cuda", "false", False)]:
        config = load_config(["mirai-e", "tiny"], [f"train.compile={setting}", "train.ema_decay=0.5"])
        gpt = GPT(GPTConfig(**CFG))
        # The EMA path builds a copy of `gpt` (on its own device) and only reads the device type for the choice.
        teacher = build_teacher(config, None, gpt, torch.device(device), make_ema=EMA)
        assert compiled(teacher.model.layers[0]) is expected, (device, setting)
