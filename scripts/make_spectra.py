r"""Compute the angular power spectra shipped in ``deepsphere_pyg/data/resources/spectra.npz``.

Needs CAMB (``pip install camb``), which the package itself does not depend on: the
package only reads the file this script writes.

**Weak-lensing convergence** (two flat LCDM cosmologies, the DeepSphere v1 pair, nearly
degenerate along :math:`\sigma_8 \Omega_m^{0.5}`): model 0 has
:math:`(\Omega_m, \sigma_8) = (0.31, 0.82)`, model 1 :math:`(0.26, 0.91)`; both share
:math:`h = 0.7`, :math:`\Omega_b = 0.05`, :math:`n_s = 0.96`, massless neutrinos, and a
single source plane at :math:`z_s = 1`. The spectrum is the Limber integral of the
non-linear matter power spectrum (CAMB, halofit "takahashi"),

.. math::

    C_\ell^{\kappa} = \int_0^{\chi_s} \frac{q(\chi)^2}{\chi^2}\,
        P_\mathrm{nl}\!\left(k = \frac{\ell + 1/2}{\chi},\, z(\chi)\right) d\chi, \qquad
    q(\chi) = \frac{3}{2}\, \Omega_m \frac{H_0^2}{c^2}\, \frac{\chi}{a(\chi)}\,
        \frac{\chi_s - \chi}{\chi_s},

with :math:`\chi` the comoving distance (Mpc). The file also holds the convergence of an
empty beam, :math:`\kappa_\mathrm{empty} = -\int_0^{\chi_s} q(\chi)\, d\chi` (the minimum
convergence, reached where the density contrast is -1 along the whole line of sight);
:class:`~deepsphere_pyg.data.CosmologyMaps` uses :math:`|\kappa_\mathrm{empty}|` as the
shift of its lognormal fields. The amplitude :math:`A_s` is set so that the linear
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
SOURCE_REDSHIFT = 1.0
SPEED_OF_LIGHT = 299792.458  # km/s

#: Shared parameters of the two convergence models.
LENSING_COMMON = {"h": 0.7, "omega_b": 0.05, "n_s": 0.96, "mnu": 0.0,
                  "z_source": SOURCE_REDSHIFT, "halofit_version": "takahashi"}
#: (Omega_m, sigma_8) of model 0 and model 1 (DeepSphere v1).
LENSING_MODELS = ({"omega_m": 0.31, "sigma_8": 0.82}, {"omega_m": 0.26, "sigma_8": 0.91})
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
                         num_chi: int = 2000) -> tuple[np.ndarray, float, dict]:
    """``(C_ell [lmax + 1], kappa_empty, info)`` of one cosmology (module docstring)."""
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
    ells = np.arange(lmax + 1, dtype=np.float64)
    cl = np.zeros(lmax + 1)
    weight = q**2 / chi**2 * dchi
    for ell in range(2, lmax + 1):
        k = (ells[ell] + 0.5) / chi
        power = interpolator.P(z, k, grid=False)
        cl[ell] = float(np.sum(weight * power))
    info = {"omega_m": omega_m, "sigma_8": sigma_8, "A_s": amplitude,
            "sigma_8_linear_check": float(camb.get_results(
                _lensing_params(omega_m, amplitude, nonlinear=False)).get_sigma8_0()),
            "chi_source_Mpc": chi_s, "kappa_empty": kappa_empty, **LENSING_COMMON}
    return cl, kappa_empty, info


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
    kappa, shifts, models = [], [], []
    for model in LENSING_MODELS:
        cl, kappa_empty, info = convergence_spectrum(model["omega_m"], model["sigma_8"])
        kappa.append(cl)
        shifts.append(abs(kappa_empty))
        models.append(info)
        print(f"convergence Omega_m={model['omega_m']} sigma_8={model['sigma_8']}: "
              f"A_s={info['A_s']:.4e}, chi_s={info['chi_source_Mpc']:.1f} Mpc, "
              f"kappa_empty={kappa_empty:.5f}, C_100={cl[100]:.4e}, C_1000={cl[1000]:.4e}")
    tt = cmb_tt_spectrum()
    ratio = kappa[1][2:] / kappa[0][2:]
    print(f"C_l(model 1) / C_l(model 0): min {ratio.min():.3f}, max {ratio.max():.3f}")
    print(f"CMB TT: D_220 = {220 * 221 * tt[220] / (2 * np.pi):.1f} muK^2")

    metadata = {
        "description": "angular power spectra C_ell, ell = 0..lmax (C_0 = C_1 = 0)",
        "lmax": LMAX,
        "camb_version": camb.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "kappa": {"method": "Limber integral of the non-linear matter power spectrum, "
                            "single source plane",
                  "models": models,
                  "shift": "abs(kappa_empty), the empty-beam convergence"},
        "cmb_tt": {"units": "muK^2", "spectrum": "lensed scalar TT",
                   "parameters": PLANCK_2018, "reference": "Planck 2018 best fit"},
        "script": "scripts/make_spectra.py",
    }
    write_atomic(args.out, {
        "ell": np.arange(LMAX + 1, dtype=np.int32),
        "kappa_cl": np.asarray(kappa, dtype=np.float32),
        "kappa_shift": np.asarray(shifts, dtype=np.float32),
        "cmb_tt": tt.astype(np.float32),
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
    })
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.1f} kB) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
