"""lambda schedules: pure functions of the step."""

import math

import pytest

from mirai_cli.errors import MiraiError
from mirai_cli.foresight.schedule import LambdaSchedule


def test_mirai_e_recipe_warmup_then_step_halving():
    s = LambdaSchedule.build(2.0, num_heads=3, kind="step", factor=0.5, at_step=800, warmup_steps=150)
    assert s.weights(0) == [0.0, 0.0, 0.0] and not s.active(149)
    assert s.weights(150) == [2.0, 2.0, 2.0] and s.active(150)
    assert s.weights(799) == [2.0] * 3
    assert s.weights(800) == [1.0] * 3 and s.weights(10**7) == [1.0] * 3


def test_constant_and_per_head_lambdas():
    s = LambdaSchedule.build([2.0, 1.0, 0.5], num_heads=3)
    assert s.weights(0) == [2.0, 1.0, 0.5] == s.weights(123456)
    with pytest.raises(MiraiError):
        LambdaSchedule.build([2.0, 1.0], num_heads=3)


def test_cosine_from_lambda_to_lambda_times_factor():
    s = LambdaSchedule.build(2.0, 1, kind="cosine", factor=0.25, warmup_steps=100, total_steps=1100)
    assert s.weights(99) == [0.0]
    assert s.weights(100)[0] == pytest.approx(2.0)
    assert s.weights(600)[0] == pytest.approx(2.0 * (0.25 + 0.75 * 0.5))  # half-way: the mean
    assert s.weights(350)[0] == pytest.approx(2.0 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert s.weights(1100)[0] == pytest.approx(0.5) == s.weights(5000)[0]
    with pytest.raises(MiraiError):
        LambdaSchedule.build(2.0, 1, kind="cosine")  # needs the run length


def test_same_step_same_weights_resume_is_exact():
    a = LambdaSchedule.build(2.0, 2, kind="cosine", factor=0.1, total_steps=997)
    b = LambdaSchedule.build(2.0, 2, kind="cosine", factor=0.1, total_steps=997)
    steps = list(range(0, 997, 7))
    forward = [a.weights(t) for t in steps]
    backward = [b.weights(t) for t in reversed(steps)][::-1]  # another call order: no hidden state
    assert forward == backward and len({tuple(w) for w in forward}) > 1  # and the schedule does change
    assert forward[0][0] == pytest.approx(2.0) and a.weights(997)[0] == pytest.approx(0.2)
    with pytest.raises(MiraiError):
        LambdaSchedule.build(-1.0, 1)
