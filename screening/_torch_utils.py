"""Device choice, thread count and seeding shared by the torch code (private)."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from .errors import ScreeningInputError

        raise ScreeningInputError("ScreenConfig(device='cuda') but no CUDA device is available")
    return torch.device(name)


def default_threads(work: float | None = None) -> int:
    """Threads for the CPU work: 1 for small problems, else the usable cores, at most 4.

    ``work`` is the size of the problem in floats (rows x features). Below about 2**22
    the probe's per-step matrices are so small (a 128-row batch) that OpenMP's fork/join
    costs more than a second thread gains, and on a contended machine a waiting thread
    spins for a core it cannot get (docs/design-notes.md).
    Beyond 4 threads the probe's small matrices stop scaling.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    if work is not None and work < 2 ** 22:
        return 1
    return max(1, min(n, 4))


@contextlib.contextmanager
def torch_threads(n: int | None, *, work: float | None = None):
    """Run the block with ``torch.set_num_threads(n or default_threads(work))``, then restore.

    OpenMP's spin-wait is what turns CPU contention into a hang; ``OMP_WAIT_POLICY=passive``
    (set before torch starts its thread pool, see ``screening/__init__.py``) makes idle
    threads sleep instead.
    """
    before = torch.get_num_threads()
    want = int(n) if n else default_threads(work)
    if want != before:
        torch.set_num_threads(want)
    try:
        yield want
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    return g
