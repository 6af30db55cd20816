"""``deepsphere-pyg scatter``: precompute the scattering coefficients of HEALPix maps on disk.

Input maps come from a ``.npy`` array (``[M, 12 nside^2]`` or ``[M, 12 nside^2, C]``,
read memory-mapped, one map at a time, ordering given by ``--ordering``) or from HEALPix
FITS files (ordering from their headers), through
:class:`~deepsphere_pyg.data.HealpixFileDataset` (converted to NEST; wrong sizes, NaN /
UNSEEN values and detectably wrong orderings are refused). The output is a
:class:`~deepsphere_pyg.precompute.CoefficientStore`: re-running the command resumes
an interrupted run, and a different configuration is refused unless ``--overwrite``.
Under ``torchrun`` every process computes its share of the maps.
"""

from __future__ import annotations

import argparse
import math


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
    # Imported here, not with the parser: ``deepsphere-pyg --help`` does without torch.
    from ..data.files import HealpixFileDataset
    from ..graphs import SphereHierarchy
    from .cache import precompute_scattering
    from .module import SphericalScattering

    maps = HealpixFileDataset(args.inputs, ordering=args.ordering)
    levels = default_levels(maps.nside, args.J0) if args.levels is None else args.levels
    hierarchy = SphereHierarchy.healpix(maps.nside, levels, k=args.k)
    scattering = SphericalScattering(hierarchy, J0=args.J0, J=args.J, depth=args.depth,
                                     backend=args.backend)
    num_out, channels = scattering.out_shape(maps.num_channels)
    print(f"{len(maps)} map(s) at nside {maps.nside} -> {num_out} nodes x {channels} "
          f"coefficients ({scattering.num_paths} paths); {scattering!r}")
    store = precompute_scattering(scattering, maps, args.output, batch_size=args.batch_size,
                                  num_workers=args.workers, overwrite=args.overwrite)
    print(f"{store.num_done}/{store.num_maps} maps done in {args.output} "
          f"(config {store.config_hash[:12]})")
    return 0
