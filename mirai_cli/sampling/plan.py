"""Which class each sample gets: an explicit list, N per class over all classes, or uniformly at random."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mirai_cli.errors import MiraiError


def class_plan(
    num_classes: int,
    *,
    classes: Sequence[int] | None = None,
    per_class: int = 50,
    random_count: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Labels int64 [N], sample i gets labels[i].

    - classes: exactly these labels, in this order (repeat a class to get several of it);
    - random_count: that many labels drawn uniformly from 0..num_classes-1 with `seed` (LlamaGen's protocol);
    - otherwise (the evaluation default): per_class samples of every class, class by class.
    """
    if classes is not None and random_count is not None:
        raise MiraiError("give either an explicit class list or a random class count, not both")
    if classes is not None:
        labels = np.asarray(list(classes), dtype=np.int64)
        if labels.size == 0:
            raise MiraiError("the class list is empty: give at least one class")
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise MiraiError(
                f"class {int(bad[0])} is outside the model's range 0..{num_classes - 1} "
                f"(the checkpoint knows {num_classes} classes): fix the class list"
            )
        return labels
    if random_count is not None:
        if random_count < 1:
            raise MiraiError(f"random class count must be >= 1, got {random_count}")
        return np.random.default_rng(seed).integers(0, num_classes, size=random_count, dtype=np.int64)
    if per_class < 1:
        raise MiraiError(f"images per class must be >= 1, got {per_class}")
    return np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
