r"""Run healpy's OpenMP regions on one thread.

healpy parallelises its transforms with OpenMP. For the small transforms of tests, data
generation and metrics, OpenMP threads waiting for busy cores of a loaded machine made
:func:`healpy.rotate_alm` far slower than one thread (``BENCHMARKS.md``, "Costs behind the
library's defaults"); :func:`single_threaded_openmp` sets one thread for the duration
of a ``with`` block and restores the previous setting (:func:`openmp_threads` sets any
number).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator

import healpy  # noqa: F401  (loads the OpenMP runtime that healpy uses)

__all__ = ["openmp_libraries", "openmp_threads", "single_threaded_openmp"]


@functools.cache
def openmp_libraries() -> tuple[ctypes.CDLL, ...]:
    """OpenMP runtimes loaded in this process (Linux; empty elsewhere), found once."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps
                     if any(name in line for name in ("libgomp", "libiomp", "libomp"))}
    except OSError:
        return ()
    libraries = []
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
            library.omp_get_max_threads.restype = ctypes.c_int
            libraries.append(library)
        except (OSError, AttributeError):
            continue
    return tuple(libraries)


@contextlib.contextmanager
def openmp_threads(num_threads: int | None) -> Iterator[None]:
    """Run the calling thread's OpenMP regions (healpy's) on ``num_threads`` threads, then
    restore the previous setting; ``None`` changes nothing."""
    saved = []
    if num_threads is not None:
        for library in openmp_libraries():
            saved.append((library, library.omp_get_max_threads()))
            library.omp_set_num_threads(int(num_threads))
    try:
        yield
    finally:
        for library, threads in saved:
            library.omp_set_num_threads(threads)


def single_threaded_openmp() -> contextlib.AbstractContextManager[None]:
    """:func:`openmp_threads` with one thread."""
    return openmp_threads(1)
