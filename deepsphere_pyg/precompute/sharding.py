"""Which samples a process computes: ranks of a (possibly distributed) run and local workers.

One function reads a process's place in a run, :func:`read_environment` (``torchrun``'s
``RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE``); the training engine and
:func:`~deepsphere_pyg.precompute.precompute` both use it. Work is split round-robin:
sample ``i`` of ``M`` belongs to rank ``i % world_size`` (:func:`rank_share`), and a rank's
list of pending samples ``t`` is dealt to ``k`` local workers as ``t[w::k]``
(:func:`worker_shares`), so every sample has exactly one writer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "ProcessLayout",
    "check_int",
    "rank_share",
    "read_environment",
    "resolve_rank",
    "worker_shares",
]


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an ``int`` at least ``minimum``.

    Raises:
        TypeError: ``value`` is not an integer (``bool`` is refused); the message names ``name``.
        ValueError: ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


@dataclass(frozen=True)
class ProcessLayout:
    """This process's place in a (possibly distributed) run.

    Attributes:
        rank: Global rank, in ``[0, world_size)``.
        world_size: Number of processes over all machines.
        local_world_size: Processes on this machine (``world_size`` is a multiple of it).
    """

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProcessLayout:
        """Read torchrun's variables (one process when they are absent); see
        :func:`read_environment`."""
        return read_environment(environ)

    @property
    def distributed(self) -> bool:
        """Whether the run has more than one process."""
        return self.world_size > 1


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise ValueError(
            f"the environment variable {name}={text!r} must be an integer (it is set by "
            f"torchrun; unset it for a single-process run)"
        ) from exc


def read_environment(environ: Mapping[str, str] | None = None) -> ProcessLayout:
    """The process layout set by ``torchrun``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``.

    Absent variables mean a single process: ``WORLD_SIZE`` defaults to 1, ``RANK`` to 0 and
    ``LOCAL_WORLD_SIZE`` to ``WORLD_SIZE``.

    Args:
        environ: Variables to read (default :data:`os.environ`).

    Raises:
        ValueError: a variable is not an integer, ``WORLD_SIZE`` is not a positive multiple
            of ``LOCAL_WORLD_SIZE``, or ``RANK`` is outside ``[0, WORLD_SIZE)``.
    """
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "WORLD_SIZE", 1)
    local = _env_int(environ, "LOCAL_WORLD_SIZE", world)
    rank = _env_int(environ, "RANK", 0)
    if world < 1 or local < 1 or world % local:
        raise ValueError(f"WORLD_SIZE={world} is not a multiple of "
                         f"LOCAL_WORLD_SIZE={local}: start the run with torchrun")
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} must be in [0, WORLD_SIZE={world}): start the run "
                         f"with torchrun")
    return ProcessLayout(rank, world, local)


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    """``(rank, world_size, use_dist)`` of this process for splitting work.

    With neither argument given, they come from :mod:`torch.distributed` when a process
    group is initialised, else from :func:`read_environment`. ``use_dist`` is whether the
    split is torch.distributed's own (so its collectives may be used to coordinate).

    Raises:
        ValueError: only one of ``rank`` and ``world_size`` is given, ``world_size < 1``, or
            ``rank`` is outside ``[0, world_size)``.
        TypeError: ``rank`` or ``world_size`` is not an int.
    """
    dist = torch.distributed
    dist_on = dist.is_available() and dist.is_initialized()
    if (rank is None) != (world_size is None):
        raise ValueError(
            f"give both rank and world_size or neither (got rank={rank}, "
            f"world_size={world_size}); with neither they come from torch.distributed or "
            f"the RANK/WORLD_SIZE environment variables"
        )
    if rank is None:
        if dist_on:
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            layout = read_environment()
            rank, world_size = layout.rank, layout.world_size
    world_size = check_int(world_size, "world_size", 1)
    rank = check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    use_dist = (
        dist_on
        and world_size > 1
        and (rank, world_size) == (dist.get_rank(), dist.get_world_size())
    )
    return rank, world_size, use_dist


def rank_share(num_samples: int, rank: int, world_size: int) -> np.ndarray:
    """Indices ``[rank, rank + world_size, ...] < num_samples`` that ``rank`` computes."""
    return np.arange(rank, num_samples, world_size)


def worker_shares(indices: Sequence[int], num_workers: int) -> list[list[int]]:
    """``indices`` dealt round-robin to ``num_workers`` workers; empty shares are dropped."""
    num_workers = check_int(num_workers, "num_workers", 1)
    shares = [list(indices[w::num_workers]) for w in range(num_workers)]
    return [share for share in shares if share]
