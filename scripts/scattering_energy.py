#!/usr/bin/env python
r"""The modulus moves the energy of wavelet coefficients to low degrees.

Scattering relies on it: a wavelet coefficient :math:`f \star \psi_j` lives in the band
:math:`\lambda^{j-1} < \ell < \lambda^{j+1}`, so the scaling function :math:`\Phi`
(:math:`\ell < \lambda^{J_0}`) would keep none of it; its modulus
:math:`|f \star \psi_j|` has most of its energy at low degrees (its mean alone is
positive), which :math:`\Phi` keeps and the coarse output level can hold.

For random band-limited maps (flat angular power spectrum up to :math:`L - 1 =
3 n_\mathrm{side} - 1`, or :math:`C_\ell \propto (\ell + 1)^{-\alpha}` with ``--slope``),
computes with the harmonic backend the angular power spectra of :math:`f \star \psi_j`
and :math:`|f \star \psi_j|` for a few scales :math:`j` (averaged over the maps), plots
:math:`(2\ell + 1) C_\ell` (the energy per degree) and prints, per scale, the fraction of
the energy below :math:`\lambda^{J_0}` and below the wavelet's band
(:math:`\ell \le \lambda^{j-1}`), before and after the modulus.

Usage::

    python scripts/scattering_energy.py                      # nside 64, 3 maps, ~10 s
    python scripts/scattering_energy.py --nside 128 --scales 3 5 7 --out results/e.png
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import healpy as hp
import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from deepsphere_pyg.graphs import SphereHierarchy  # noqa: E402
from deepsphere_pyg.plots import save_figure  # noqa: E402
from deepsphere_pyg.scattering import FilterBank, HarmonicBackend  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nside", type=int, default=64, help="HEALPix resolution (64)")
    parser.add_argument("--J0", type=int, default=2, help="scale of Phi: l < lam^J0 (2)")
    parser.add_argument("--lam", type=float, default=2.0, help="dilation factor (2)")
    parser.add_argument("--scales", type=int, nargs="+", default=None,
                        help="wavelet scales j to show (default: three spread over J0..J)")
    parser.add_argument("--maps", type=int, default=3, help="random maps to average (3)")
    parser.add_argument("--slope", type=float, default=0.0,
                        help="C_l proportional to (l+1)^-slope (0: flat spectrum)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", type=Path, default=Path("results/scattering_energy.png"),
                        help="PNG to write (results/scattering_energy.png)")
    return parser.parse_args(argv)


def random_alm(lmax: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    r"""Coefficients of a real Gaussian field with :math:`C_\ell \propto (\ell+1)^{-s}`."""
    alm = np.zeros(hp.Alm.getsize(lmax), dtype=np.complex128)
    for ell in range(lmax + 1):
        m = np.arange(ell + 1)
        values = rng.standard_normal(ell + 1) + 1j * rng.standard_normal(ell + 1)
        values[0] = values[0].real * math.sqrt(2.0)
        amplitude = (ell + 1.0) ** (-slope / 2.0) / math.sqrt(2.0)
        alm[hp.Alm.getidx(lmax, ell, m)] = amplitude * values
    return alm


def energy_per_degree(nest_map: np.ndarray, lmax: int) -> np.ndarray:
    r""":math:`(2\ell + 1) C_\ell` of a NEST map (map2alm with three iterations)."""
    alm = hp.map2alm(hp.reorder(nest_map, n2r=True), lmax=lmax, iter=3, pol=False,
                     use_pixel_weights=False)
    return (2 * np.arange(lmax + 1) + 1) * hp.alm2cl(alm)


def fraction_below(energy: np.ndarray, bound: float) -> float:
    """Fraction of the energy at degrees below ``bound`` (strictly)."""
    ell = np.arange(energy.size)
    return float(energy[ell < bound].sum() / energy.sum())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"seed: {args.seed}")
    start = time.perf_counter()
    L = 3 * args.nside
    lmax = L - 1
    bank = FilterBank(L, args.J0, lam=args.lam)
    scales = args.scales or sorted({bank.scales[1], bank.scales[len(bank.scales) // 2],
                                    bank.scales[-2]})
    for j in scales:
        if j not in bank.scales:
            raise SystemExit(f"--scales: {j} is not a wavelet scale of the bank "
                             f"(J0..J = {bank.scales})")
    backend = HarmonicBackend(SphereHierarchy.healpix(args.nside, 1), bank, 1, 0)

    rng = np.random.default_rng(args.seed)
    maps = np.stack([hp.reorder(hp.alm2map(random_alm(lmax, args.slope, rng), args.nside,
                                           lmax=lmax, pol=False), r2n=True)
                     for _ in range(args.maps)])
    wavelets = backend.wavelet_coefficients(torch.from_numpy(maps)[..., None])[:, :, 0]
    wavelets = wavelets.numpy()  # [maps, N, scales]

    band = bank.scaling_band_limit
    print(f"nside={args.nside} L={L} lam={bank.lam:g} J0={bank.J0} J={bank.J} "
          f"maps={args.maps} slope={args.slope:g}; Phi keeps degrees l < {band:g}")
    print(f"{'j':>3} {'band of psi_j':>17} {'l<lam^J0 before':>16} {'after':>7} "
          f"{'l<=lam^(j-1) before':>20} {'after':>7}")
    figure, axes = plt.subplots(1, len(scales), figsize=(4.2 * len(scales), 3.6),
                                squeeze=False, sharey=True)
    ell = np.arange(lmax + 1)
    for axis, j in zip(axes[0], scales, strict=True):
        k = bank.scales.index(j)
        before = np.mean([energy_per_degree(w[:, k], lmax) for w in wavelets], axis=0)
        after = np.mean([energy_per_degree(np.abs(w[:, k]), lmax) for w in wavelets], axis=0)
        low, high = bank.wavelet_band(j)
        print(f"{j:>3} {f'({low:g}, {high:g})':>17} {fraction_below(before, band):>16.4f} "
              f"{fraction_below(after, band):>7.4f} "
              f"{fraction_below(before, low + 1e-9):>20.4f} "
              f"{fraction_below(after, low + 1e-9):>7.4f}")
        floor = 1e-12 * max(before.max(), after.max())
        axis.semilogy(ell, np.maximum(before, floor), label=r"$f \star \psi_j$")
        axis.semilogy(ell, np.maximum(after, floor), label=r"$|f \star \psi_j|$")
        axis.axvspan(low, min(high, lmax), color="0.9", zorder=0, label=r"band of $\psi_j$")
        axis.axvline(band, color="k", lw=0.8, ls="--", label=r"$\lambda^{J_0}$")
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_xlim(0, lmax)
        axis.set_title(f"j = {j}")
        axis.set_xlabel(r"degree $\ell$")
    axes[0][0].set_ylabel(r"$(2\ell + 1)\, C_\ell$")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"modulus moves energy to low degrees (nside {args.nside}, "
                    f"{args.maps} maps, seed {args.seed})", fontsize=10)
    figure.tight_layout()
    save_figure(figure, args.out, dpi=120)
    plt.close(figure)
    print(f"wrote {args.out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
