"""The validation images are never training images: built-in sets use their test split, others a held-out slice."""

import numpy as np
import pytest

from mirai_cli.data.holdout import holdout_indices, training_and_validation_splits
from mirai_cli.data.sources import open_source
from mirai_cli.errors import MiraiError


@pytest.fixture
def npz_source(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(6), 10)  # sorted by class, as a folder of class folders is
    path = tmp_path / "data.npz"
    np.savez(path, images=images, labels=labels)
    return str(path), images


def test_held_out_slice_and_training_part_are_disjoint_and_cover_the_source(npz_source):
    spec, images = npz_source
    train_split, val_split, limit = training_and_validation_splits(spec, "train", 12)
    assert limit is None
    train, val = open_source(spec, train_split), open_source(spec, val_split)
    assert (len(train), len(val)) == (48, 12)
    seen = {train.read(i)[0].tobytes() for i in range(len(train))}
    held = {val.read(i)[0].tobytes() for i in range(len(val))}
    assert not seen & held
    assert seen | held == {img.tobytes() for img in images}
    assert {val.label(i) for i in range(len(val))} == set(range(6))  # every class is represented
    # the manifest records a split that reopens exactly the same part
    assert open_source(spec, val.to_manifest()["split"]).read(3)[0].tobytes() == val.read(3)[0].tobytes()


def test_built_in_sets_take_validation_images_from_their_test_split():
    assert training_and_validation_splits("fashion-mnist", "train", 2000) == ("train", "test", 2000)
    assert training_and_validation_splits("fashion-mnist", "train", 0) == ("train", None, None)


def test_holdout_indices_are_distinct_and_spread_and_bad_counts_are_one_line():
    idx = holdout_indices(100, 7)
    assert len(set(idx.tolist())) == 7 and idx.min() == 0 and idx.max() >= 85
    with pytest.raises(MiraiError, match="data.val_images"):
        holdout_indices(10, 10)
