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


def test_more_validation_images_than_the_test_split_holds_is_refused(tiny_store, tmp_path, monkeypatch):
    """data.val_images is an exact count: never silently capped at the size of a built-in set's test split."""
    import gzip
    import struct

    from mirai_cli.config import load_config
    from mirai_cli.tokenizer.from_config import encode_from_config

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for stem, arr in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", np.array([0, 1, 2], np.uint8))):
        with gzip.open(folder / f"{stem}.gz", "wb") as f:  # the idx format: zero bytes, uint8 code, rank, sizes
            f.write(bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes())
    monkeypatch.setenv("MIRAI_DATA", str(tmp_path))
    config = load_config(["tiny"], ["data.source=\"fashion-mnist\"", "data.val_images=5", "data.image_size=16",
                                    f"data.val_store=\"{tmp_path / 'val'}\"",
                                    f"tokenizer.checkpoint=\"{tiny_store['tokenizer']}\""])
    with pytest.raises(MiraiError, match="data.val_images = 5, but split 'test' of fashion-mnist holds only 3"):
        encode_from_config(config, show_progress=False, validation=True)
    assert not (tmp_path / "val").exists()
