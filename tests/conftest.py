"""Shared test setup.

One torch thread: the policies under test are tiny MLPs, for which a single thread is faster
and, on a 2-core machine, keeps parallel test work from oversubscribing the CPU.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
