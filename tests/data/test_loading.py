"""Decoding ahead of the model: order kept, errors surface, the caller's RNG untouched."""

import pytest
import torch

from mirai_cli.data.loading import decoded_batches, read_ahead


class Squares(torch.utils.data.Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        if i == 99:
            raise ValueError("bad item")
        return i * i


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_in_order_and_the_global_rng_untouched(workers):
    torch.manual_seed(3)
    want = torch.rand(2)
    torch.manual_seed(3)
    batches = list(decoded_batches(Squares(), 3, workers, list))
    assert batches == [[0, 1, 4], [9, 16, 25], [36]]
    assert torch.equal(torch.rand(2), want)  # a DataLoader's base seed came from its own generator


def test_read_ahead_raises_the_producers_error():
    def items():
        yield 1
        raise ValueError("decoding failed")

    it = read_ahead(items())
    assert next(it) == 1
    with pytest.raises(ValueError, match="decoding failed"):
        next(it)
