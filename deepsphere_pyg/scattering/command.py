"""``deepsphere-pyg scatter``: precompute the scattering coefficients of HEALPix maps on disk.

Input maps come from a ``.npy`` array (``[M, 12 nside^2]`` or ``[M, 12 nside^2, C]``,
read memory-mapped, one map at a time) or from HEALPix FITS files (read with
:func:`healpy.read_map`, which converts each file's ordering to NEST). The output is a
:class:`~deepsphere_pyg.scattering.cache.CoefficientStore`: re-running the command resumes
an interrupted run, and a different configuration is refused unless ``--overwrite``.
Under ``torchrun`` every process computes its share of the maps.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import healpy as hp
import numpy as np
import torch

from ..graphs import SphereHierarchy
from .cache import precompute
from .module import SphericalScattering


class HealpixMaps(Sequence):
    """Maps ``[N, C]`` (float32, NEST order) read lazily from a ``.npy`` file or FITS files.

    Args:
        paths: one ``.npy`` file, or one or more FITS files (one map each).
        ordering: pixel ordering of a ``.npy`` array, ``"ring"`` or ``"nest"`` (FITS files
            carry theirs in the header).
    """

    def __init__(self, paths: Sequence[str | Path], ordering: str | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("give at least one input file (.npy or FITS)")
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise ValueError(f"input file(s) not found: {', '.join(missing[:5])}")
        self.is_npy = self.paths[0].suffix == ".npy"
        if self.is_npy:
            if len(self.paths) != 1:
                raise ValueError("give a single .npy file (holding all maps) or FITS files")
            if ordering not in ("ring", "nest"):
                raise ValueError(
                    "--ordering must be 'ring' or 'nest' for a .npy input: the array does "
                    "not record its HEALPix pixel ordering")
            self.array = np.load(self.paths[0], mmap_mode="r")
            if self.array.ndim not in (2, 3):
                raise ValueError(
                    f"{self.paths[0]} must hold maps [M, 12 nside^2] or [M, 12 nside^2, C], "
                    f"got shape {self.array.shape}")
            npix = self.array.shape[1]
        else:
            npix = hp.get_map_size(hp.read_map(self.paths[0], nest=True, dtype=np.float64))
        self.nest = ordering != "ring"
        try:
            self.nside = hp.npix2nside(npix)
        except ValueError as error:
            raise ValueError(f"maps of {npix} pixels are not HEALPix maps (12 nside^2 "
                             "pixels)") from error

    def __len__(self) -> int:
        return int(self.array.shape[0]) if self.is_npy else len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if self.is_npy:
            values = np.asarray(self.array[index], dtype=np.float64)
            if not self.nest:
                values = hp.reorder(values.T, r2n=True).T
        else:
            values = hp.read_map(self.paths[index], nest=True, dtype=np.float64)
            if values.shape[0] != hp.nside2npix(self.nside):
                raise ValueError(f"{self.paths[index]} has {values.shape[0]} pixels, the "
                                 f"first map {hp.nside2npix(self.nside)}; give maps of "
                                 "one resolution")
        values = values.reshape(values.shape[0], -1)
        return torch.from_numpy(np.ascontiguousarray(values)).float()


def default_levels(nside: int, J0: int) -> int:
    """Levels from ``nside`` down to the output resolution :math:`\\lambda^{J_0}` (at least 1)."""
    return max(1, int(math.log2(nside)) - max(J0, 0) + 1)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``scatter`` on the ``deepsphere-pyg`` command."""
    parser = commands.add_parser(
        "scatter", help="precompute scattering coefficients of HEALPix maps into a zarr store",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a .npy file [M, 12 nside^2(, C)] or HEALPix FITS files")
    parser.add_argument("--output", required=True, metavar="STORE",
                        help="directory of the coefficient store (created or resumed)")
    parser.add_argument("--ordering", choices=("ring", "nest"),
                        help="pixel ordering of a .npy input (required for .npy)")
    parser.add_argument("--J0", type=int, default=2,
                        help="scaling-function scale: output band limit 2^J0 (default 2)")
    parser.add_argument("--J", type=int, default=None, help="finest wavelet scale "
                        "(default ceil(log2 L))")
    parser.add_argument("--depth", type=int, default=2, help="scattering order (default 2)")
    parser.add_argument("--backend", choices=("graph", "harmonic"), default="graph")
    parser.add_argument("--k", type=int, default=20, help="graph neighbours (default 20)")
    parser.add_argument("--levels", type=int, default=None,
                        help="hierarchy levels (default: down to nside 2^J0)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0,
                        help="local worker processes (default 0: this process)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a store of another configuration")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    maps = HealpixMaps(args.inputs, args.ordering)
    levels = default_levels(maps.nside, args.J0) if args.levels is None else args.levels
    hierarchy = SphereHierarchy.healpix(maps.nside, levels, k=args.k)
    scattering = SphericalScattering(hierarchy, J0=args.J0, J=args.J, depth=args.depth,
                                     backend=args.backend)
    num_out, channels = scattering.out_shape(maps[0].shape[1])
    print(f"{len(maps)} map(s) at nside {maps.nside} -> {num_out} nodes x {channels} "
          f"coefficients ({scattering.num_paths} paths); {scattering!r}")
    store = precompute(scattering, maps, args.output, batch_size=args.batch_size,
                       num_workers=args.workers, overwrite=args.overwrite)
    print(f"{store.num_done}/{store.num_maps} maps done in {args.output} "
          f"(config {store.config_hash[:12]})")
    return 0
