"""The allocator setting (ecglib.allocator): freed activation memory stays in the heap for the next batch."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# A fresh process per setting: the thresholds are the process's, set once. The first convolution of the models on a
# batch of 256 beats, as predict runs it, twenty times after five to warm up; the page faults those twenty took.
_CONVOLUTIONS = """
import resource, torch
import torch.nn.functional as F
from ecglib.allocator import keep_freed_memory
applied = keep_freed_memory()
torch.set_num_threads(1)
x, w = torch.rand(256, 4, 187), torch.randn(64, 4, 3)
with torch.no_grad():
    for _ in range(5):
        F.conv1d(x, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        F.conv1d(x, w)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: str) -> tuple[bool, int]:
    env = {**os.environ, "ECGLIB_KEEP_FREED_MEMORY": keep, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CONVOLUTIONS], capture_output=True, text=True, env=env, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the thresholds are glibc's")
def test_freed_memory_is_kept_for_the_next_batch():
    applied, kept = _faults("1")
    not_applied, glibc = _faults("0")
    assert applied and not not_applied
    # glibc's own thresholds give each call's 12 MB output back and fault it in again (thousands of faults a call
    # on the project's VM); with the thresholds set the heap keeps it.
    assert kept <= max(200, glibc // 10), (kept, glibc)
