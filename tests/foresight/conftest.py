"""One intra-op thread for these tests: on a shared 2-core machine, two OpenMP threads wait on each other
(a 64x64 matmul took 16 ms with 2 threads under load vs 0.05 ms with 1). Restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
