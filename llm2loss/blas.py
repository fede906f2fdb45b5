"""One BLAS thread for the small matrix products of a query (the numpy encoder and diagnosers).

A phrase is a handful of tokens: each matrix product of the numpy MiniLM is ~0.1 ms of work, and
OpenBLAS's worker threads cost more than that to wake, most of all on a busy machine, where they
wait for a core: with one thread a phrase is many times faster (`## CLI` in
benchmarks/RESULTS.md has the measurement). `one_blas_thread()`
limits BLAS to one thread for the duration of a `with` block (threadpoolctl, which scikit-learn
already requires) and restores the previous limits after it. The limit is the process's (BLAS has
one thread pool): threads asking at once may see it restored early or late, which changes the
speed of their products, never their results.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _controller() -> Any:
    """The process's threadpoolctl controller (scanning the loaded libraries once), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # without threadpoolctl the products run with BLAS's own threads
        return None
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which numpy's BLAS uses one thread."""
    controller = _controller()
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")
