r"""Compute the angular power spectra shipped in ``deepsphere_pyg/data/resources/spectra.npz``.

Needs CAMB (``pip install camb``, e.g. into a separate virtual environment: it is a
dependency of this script only; the package only reads the file this script writes).
CAMB 2.0.5 installs from wheels; the run takes about 70 s on one core.

**Weak-lensing convergence** (two flat LCDM cosmologies, the DeepSphere v1 pair, nearly
degenerate along :math:`\sigma_8 \Omega_m^{0.5}`): model 0 has
:math:`(\Omega_m, \sigma_8) = (0.31, 0.82)`, model 1 :math:`(0.26, 0.91)`, and model 2
:math:`(0.26, \sigma_8^*)` with :math:`\sigma_8^*` tuned (golden-section search on the
largest :math:`|C^{(2)}_\ell / C^{(0)}_\ell - 1|` over :math:`100 \le \ell \le 1500`,
every 25th multipole) so that the pair (0, 2) is degenerate in that band (0.9038,
1.3 %); all share :math:`h = 0.7`, :math:`\Omega_b = 0.05`, :math:`n_s = 0.96`, massless
neutrinos, and a single source plane at :math:`z_s = 0.8` (DeepSphere v1).
The spectrum is the Limber integral of the
non-linear matter power spectrum (CAMB, halofit "takahashi"),

.. math::

    C_\ell^{\kappa} = \int_0^{\chi_s} \frac{q(\chi)^2}{\chi^2}\,
        P_\mathrm{nl}\!\left(k = \frac{\ell + 1/2}{\chi},\, z(\chi)\right) d\chi, \qquad
    q(\chi) = \frac{3}{2}\, \Omega_m \frac{H_0^2}{c^2}\, \frac{\chi}{a(\chi)}\,
        \frac{\chi_s - \chi}{\chi_s},

with :math:`\chi` the comoving distance (Mpc). The file also holds the convergence of an
empty beam, :math:`\kappa_\mathrm{empty} = -\int_0^{\chi_s} q(\chi)\, d\chi` (the minimum
convergence, reached where the density contrast is -1 along the whole line of sight);
The lognormal shift of each model is the ray-tracing calibration of Hilbert, Hartlap &
Schneider (2011, A&A 536, A85), :math:`\kappa_0(z_s) = 0.008 z_s + 0.029 z_s^2 - 0.0079
z_s^3 + 0.00065 z_s^4` for the Millennium cosmology, scaled by
:math:`\kappa_\mathrm{empty}(\Omega_m) / \kappa_\mathrm{empty}^\mathrm{Mill}` (the
empty-beam convergence is about 1.8 times the calibrated shift).
The amplitude :math:`A_s` is set so that the linear
:math:`\sigma_8` at :math:`z = 0` is the target.

**CMB temperature**: lensed :math:`C_\ell^{TT}` in :math:`\mu K^2` of the Planck 2018
best-fit LCDM model (TT,TE,EE+lowE+lensing: :math:`H_0 = 67.36`,
:math:`\Omega_b h^2 = 0.02237`, :math:`\Omega_c h^2 = 0.1200`, :math:`\tau = 0.0544`,
:math:`\ln(10^{10} A_s) = 3.044`, :math:`n_s = 0.9649`, one massive neutrino of 0.06 eV).

Spectra run over :math:`\ell = 0 \dots 3072` (:math:`3 \times 1024`, the band limit of
HEALPix maps up to nside 1024); :math:`C_0 = C_1 = 0`. Stored as float32 with the
parameters and the CAMB version in a JSON ``metadata`` field; the file is written to a
temporary name and renamed.

Usage::

    python scripts/make_spectra.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import camb
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit("this script needs CAMB: pip install camb") from error

LMAX = 3 * 1024
SOURCE_REDSHIFT = 0.8
SPEED_OF_LIGHT = 299792.458  # km/s

#: Shared parameters of the two convergence models.
LENSING_COMMON = {"h": 0.7, "omega_b": 0.05, "n_s": 0.96, "mnu": 0.0,
                  "z_source": SOURCE_REDSHIFT, "halofit_version": "takahashi"}
#: (Omega_m, sigma_8) of model 0 and model 1 (DeepSphere v1, the "paper" pair).
LENSING_MODELS = ({"omega_m": 0.31, "sigma_8": 0.82}, {"omega_m": 0.26, "sigma_8": 0.91})
#: Omega_m of the third model, whose sigma_8 is tuned to model 0 (the "degenerate" pair).
DEGENERATE_OMEGA_M = 0.26
#: Multipole band over which the degenerate pair's spectra are matched.
DEGENERATE_BAND = (100, 1500)
#: Cosmology of the Millennium Simulation, the calibration of the lognormal shift.
MILLENNIUM = {"omega_m": 0.25, "h": 0.73}
#: Planck 2018 TT,TE,EE+lowE+lensing best fit.
PLANCK_2018 = {"H0": 67.36, "ombh2": 0.02237, "omch2": 0.1200, "tau": 0.0544,
               "ln10_10_As": 3.044, "ns": 0.9649, "mnu": 0.06}

DEFAULT_OUT = (Path(__file__).resolve().parent.parent
               / "deepsphere_pyg" / "data" / "resources" / "spectra.npz")


def _lensing_params(omega_m: float, amplitude: float, nonlinear: bool) -> camb.CAMBparams:
    c = LENSING_COMMON
    h = c["h"]
    pars = camb.CAMBparams()
    pars.set_cosmology(H0=100 * h, ombh2=c["omega_b"] * h**2,
                       omch2=(omega_m - c["omega_b"]) * h**2, mnu=c["mnu"],
                       num_massive_neutrinos=0, omk=0.0)
    pars.InitPower.set_params(As=amplitude, ns=c["n_s"])
    pars.set_matter_power(redshifts=[0.0], kmax=10.0)
    pars.NonLinear = camb.model.NonLinear_both if nonlinear else camb.model.NonLinear_none
    pars.NonLinearModel.set_params(halofit_version=c["halofit_version"])
    pars.WantCls = False
    return pars


def _amplitude_for_sigma8(omega_m: float, sigma_8: float) -> float:
    """A_s giving the target linear sigma_8 at z = 0 (sigma_8^2 is linear in A_s)."""
    reference = 2.0e-9
    results = camb.get_results(_lensing_params(omega_m, reference, nonlinear=False))
    measured = float(results.get_sigma8_0())
    return reference * (sigma_8 / measured) ** 2


def convergence_spectrum(omega_m: float, sigma_8: float, lmax: int = LMAX,
                         num_chi: int = 2000, ells: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, float, dict]:
    """``(C_ell [lmax + 1], kappa_empty, info)`` of one cosmology (module docstring).

    With ``ells``, only those multipoles are computed (the others are zero): the fast
    path of the sigma_8 tuning.
    """
    amplitude = _amplitude_for_sigma8(omega_m, sigma_8)
    pars = _lensing_params(omega_m, amplitude, nonlinear=True)
    results = camb.get_background(pars)
    chi_s = float(results.comoving_radial_distance(SOURCE_REDSHIFT))
    interpolator = camb.get_matter_power_interpolator(
        pars, zmin=0.0, zmax=SOURCE_REDSHIFT + 0.1, nz_step=150, kmax=50.0, nonlinear=True,
        hubble_units=False, k_hunit=False, extrap_kmax=1e4)
    # Comoving distance grid (midpoints avoid chi = 0 and chi = chi_s).
    edges = np.linspace(0.0, chi_s, num_chi + 1)
    chi = 0.5 * (edges[1:] + edges[:-1])
    dchi = np.diff(edges)
    z = results.redshift_at_comoving_radial_distance(chi)
    h0 = 100 * LENSING_COMMON["h"] / SPEED_OF_LIGHT  # 1/Mpc
    q = 1.5 * omega_m * h0**2 * chi * (1.0 + z) * (chi_s - chi) / chi_s
    kappa_empty = -float(np.sum(q * dchi))
    cl = np.zeros(lmax + 1)
    weight = q**2 / chi**2 * dchi
    for ell in (range(2, lmax + 1) if ells is None else ells):
        k = (ell + 0.5) / chi
        power = interpolator.P(z, k, grid=False)
        cl[ell] = float(np.sum(weight * power))
    info = {"omega_m": omega_m, "sigma_8": sigma_8, "A_s": amplitude,
            "sigma_8_linear_check": float(camb.get_results(
                _lensing_params(omega_m, amplitude, nonlinear=False)).get_sigma8_0()),
            "chi_source_Mpc": chi_s, "kappa_empty": kappa_empty, **LENSING_COMMON}
    return cl, kappa_empty, info


def empty_beam_convergence(omega_m: float, h: float, z_source: float = SOURCE_REDSHIFT,
                           num_chi: int = 2000) -> float:
    r"""Empty-beam convergence :math:`\kappa_\mathrm{empty} = -\int_0^{\chi_s} q\, d\chi` (< 0)."""
    pars = camb.CAMBparams()
    pars.set_cosmology(H0=100 * h, ombh2=LENSING_COMMON["omega_b"] * h**2,
                       omch2=(omega_m - LENSING_COMMON["omega_b"]) * h**2, mnu=0.0,
                       num_massive_neutrinos=0, omk=0.0)
    results = camb.get_background(pars)
    chi_s = float(results.comoving_radial_distance(z_source))
    edges = np.linspace(0.0, chi_s, num_chi + 1)
    chi = 0.5 * (edges[1:] + edges[:-1])
    z = results.redshift_at_comoving_radial_distance(chi)
    q = 1.5 * omega_m * (100 * h / SPEED_OF_LIGHT) ** 2 * chi * (1.0 + z) * (chi_s - chi) / chi_s
    return -float(np.sum(q * np.diff(edges)))


def hilbert_shift(z_source: float) -> float:
    r"""Lognormal shift of Hilbert, Hartlap & Schneider (2011, A&A 536, A85), Millennium run.

    :math:`\kappa_0(z_s) = 0.008 z_s + 0.029 z_s^2 - 0.0079 z_s^3 + 0.00065 z_s^4`, their
    fit to ray-traced convergence of the Millennium Simulation
    (:math:`\Omega_m = 0.25, \sigma_8 = 0.9, h = 0.73`).
    """
    z = float(z_source)
    return 0.008 * z + 0.029 * z**2 - 0.0079 * z**3 + 0.00065 * z**4


def lognormal_shift(omega_m: float, h: float, z_source: float = SOURCE_REDSHIFT) -> float:
    r"""Shift of one cosmology: :func:`hilbert_shift` scaled by the empty-beam convergence.

    :math:`\lambda = \kappa_0^\mathrm{HHS}(z_s)\,
    \kappa_\mathrm{empty}(\Omega_m, h, z_s) / \kappa_\mathrm{empty}^\mathrm{Millennium}(z_s)`.
    """
    reference = empty_beam_convergence(MILLENNIUM["omega_m"], MILLENNIUM["h"], z_source)
    return hilbert_shift(z_source) * empty_beam_convergence(omega_m, h, z_source) / reference


def tune_sigma_8(reference: np.ndarray, omega_m: float, band: tuple[int, int] = DEGENERATE_BAND,
                 bracket: tuple[float, float] = (0.85, 0.97), steps: int = 14,
                 ) -> tuple[float, float]:
    """sigma_8 at ``omega_m`` minimising max |C/C_ref - 1| over ``band`` (golden section).

    Returns ``(sigma_8, max relative difference)``; spectra on every 25th multipole.
    """
    ells = np.arange(band[0], band[1] + 1, 25)

    def cost(sigma_8: float) -> float:
        cl, _, _ = convergence_spectrum(omega_m, sigma_8, lmax=band[1], ells=ells)
        return float(np.max(np.abs(cl[ells] / reference[ells] - 1)))

    golden = (np.sqrt(5) - 1) / 2
    low, high = bracket
    a, b = high - golden * (high - low), low + golden * (high - low)
    fa, fb = cost(a), cost(b)
    for _ in range(steps):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - golden * (high - low)
            fa = cost(a)
        else:
            low, a, fa = a, b, fb
            b = low + golden * (high - low)
            fb = cost(b)
    best = a if fa < fb else b
    return round(best, 4), min(fa, fb)


def cmb_tt_spectrum(lmax: int = LMAX) -> np.ndarray:
    """Lensed :math:`C_\\ell^{TT}` in muK^2, ``[lmax + 1]``, Planck 2018 LCDM."""
    p = PLANCK_2018
    pars = camb.CAMBparams()
    pars.set_cosmology(H0=p["H0"], ombh2=p["ombh2"], omch2=p["omch2"], tau=p["tau"],
                       mnu=p["mnu"])
    pars.InitPower.set_params(As=np.exp(p["ln10_10_As"]) * 1e-10, ns=p["ns"])
    pars.set_for_lmax(lmax, lens_potential_accuracy=1)
    results = camb.get_results(pars)
    spectra = results.get_cmb_power_spectra(pars, CMB_unit="muK", raw_cl=True,
                                            spectra=["lensed_scalar"], lmax=lmax)
    tt = np.array(spectra["lensed_scalar"][: lmax + 1, 0], dtype=np.float64)
    tt[:2] = 0.0
    return tt


def write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez_compressed`` to a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-",
                                         suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates the file private (0600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz file")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    models = [dict(model) for model in LENSING_MODELS]
    reference, _, _ = convergence_spectrum(models[0]["omega_m"], models[0]["sigma_8"])
    sigma_8, mismatch = tune_sigma_8(reference, DEGENERATE_OMEGA_M)
    print(f"tuned sigma_8 = {sigma_8} at Omega_m = {DEGENERATE_OMEGA_M}: max |ratio - 1| "
          f"{mismatch:.4f} over l = {DEGENERATE_BAND} ({time.perf_counter() - start:.1f} s)")
    models.append({"omega_m": DEGENERATE_OMEGA_M, "sigma_8": sigma_8})
    kappa, shifts, infos = [], [], []
    for model in models:
        cl, kappa_empty, info = convergence_spectrum(model["omega_m"], model["sigma_8"])
        shift = lognormal_shift(model["omega_m"], LENSING_COMMON["h"])
        info["lognormal_shift"] = shift
        kappa.append(cl)
        shifts.append(shift)
        infos.append(info)
        print(f"convergence Omega_m={model['omega_m']} sigma_8={model['sigma_8']}: "
              f"A_s={info['A_s']:.4e}, chi_s={info['chi_source_Mpc']:.1f} Mpc, "
              f"kappa_empty={kappa_empty:.5f}, shift={shift:.5f}, C_100={cl[100]:.4e}, "
              f"C_1000={cl[1000]:.4e}")
    tt = cmb_tt_spectrum()
    band = slice(DEGENERATE_BAND[0], DEGENERATE_BAND[1] + 1)
    for row, name in ((1, "paper"), (2, "degenerate")):
        ratio = kappa[row][band] / kappa[0][band]
        print(f"{name}: C_l(model {row}) / C_l(model 0) over l = {DEGENERATE_BAND}: "
              f"min {ratio.min():.4f}, max {ratio.max():.4f}")
    print(f"CMB TT: D_220 = {220 * 221 * tt[220] / (2 * np.pi):.1f} muK^2")

    metadata = {
        "description": "angular power spectra C_ell, ell = 0..lmax (C_0 = C_1 = 0)",
        "lmax": LMAX,
        "camb_version": camb.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "kappa": {"method": "Limber integral of the non-linear matter power spectrum, "
                            "single source plane",
                  "models": infos,
                  "classes": {"paper": [0, 1], "degenerate": [0, 2]},
                  "degenerate_band": list(DEGENERATE_BAND),
                  "degenerate_max_relative_difference": mismatch,
                  "shift": "Hilbert, Hartlap & Schneider (2011) kappa_0(z_s) for the "
                           "Millennium cosmology, scaled by kappa_empty(cosmology) / "
                           "kappa_empty(Millennium)"},
        "cmb_tt": {"units": "muK^2", "spectrum": "lensed scalar TT",
                   "parameters": PLANCK_2018, "reference": "Planck 2018 best fit"},
        "script": "scripts/make_spectra.py",
    }
    write_atomic(args.out, {
        "ell": np.arange(LMAX + 1, dtype=np.int32),
        "kappa_cl": np.asarray(kappa, dtype=np.float32),
        "kappa_models": np.asarray([[m["omega_m"], m["sigma_8"]] for m in models],
                                   dtype=np.float64),
        "kappa_shift": np.asarray(shifts, dtype=np.float32),
        "cmb_tt": tt.astype(np.float32),
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
    })
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.1f} kB) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
