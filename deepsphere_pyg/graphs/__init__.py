"""Sphere samplings as graphs: builders, edge-weight recipes, hierarchies, Laplacians."""

from .equivariance import equivariance_error, tune_kernel_width
from .healpix import healpix_graph
from .hierarchy import SphereHierarchy
from .kernels import V2_KERNEL_WIDTHS, healpix_kernel_width, heat_kernel
from .laplacian import (
    estimate_lambda_max,
    lambda_max_bound,
    laplacian,
    laplacian_scipy,
    rescaled_laplacian,
)
from .sphere_graph import SphereGraph

__all__ = [
    "SphereGraph",
    "SphereHierarchy",
    "V2_KERNEL_WIDTHS",
    "equivariance_error",
    "estimate_lambda_max",
    "heat_kernel",
    "healpix_graph",
    "healpix_kernel_width",
    "lambda_max_bound",
    "laplacian",
    "laplacian_scipy",
    "rescaled_laplacian",
    "tune_kernel_width",
]
