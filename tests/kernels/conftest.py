"""Kernels tests: see kernel_testing.py for where they run (interpreter on CPU, or a CUDA GPU) and the
tolerances. Importing it first sets TRITON_INTERPRET=1 when no CUDA device is present, before anything
imports triton."""

import kernel_testing  # noqa: F401  (must come first: sets TRITON_INTERPRET before triton is imported)
import pytest
import torch
from kernel_testing import ON_GPU

@pytest.fixture(autouse=True)
def _seed_and_threads():
    # one thread for these tests only (conftest code at import time would apply to every test in the
    # session): the interpreter is single-threaded Python anyway, and on a shared 2-core machine
    # OpenMP's spinning threads made the tiny CPU matmuls 100x slower (4 s -> 0.03 s a tiny-model step)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    if not ON_GPU:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
