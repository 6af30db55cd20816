"""Sphere samplings as graphs: builders, edge-weight recipes, hierarchies, Laplacians."""

from .equiangular import equiangular_graph, equiangular_grid, grid_to_nodes, nodes_to_grid
from .equiangular_hierarchy import equiangular_hierarchy
from .equivariance import equivariance_error, tune_kernel_width
from .healpix import healpix_graph, healpix_hierarchy
from .hierarchy import SphereHierarchy
from .hierarchy_data import HierarchyData, hierarchy_data
from .icosahedral import icosahedral_graph, icosahedral_hierarchy, icosahedral_vertices
from .kernels import (
    V2_KERNEL_WIDTHS,
    healpix_kernel_sigma,
    healpix_kernel_width,
    heat_kernel,
    sigma_to_t,
)
from .knn_graph import knn_graph
from .laplacian import (
    estimate_lambda_max,
    harmonic_scale,
    lambda_max_bound,
    laplacian,
    rescaled_laplacian,
)
from .lonlat import region_mask
from .operator import laplacian_scipy
from .points import nodes_to_points, points_graph, points_to_nodes
from .points_hierarchy import points_hierarchy
from .sphere_graph import SphereGraph

__all__ = [
    "HierarchyData",
    "SphereGraph",
    "SphereHierarchy",
    "V2_KERNEL_WIDTHS",
    "equiangular_graph",
    "equiangular_grid",
    "equiangular_hierarchy",
    "equivariance_error",
    "grid_to_nodes",
    "nodes_to_grid",
    "estimate_lambda_max",
    "heat_kernel",
    "harmonic_scale",
    "healpix_graph",
    "healpix_hierarchy",
    "healpix_kernel_sigma",
    "hierarchy_data",
    "healpix_kernel_width",
    "icosahedral_graph",
    "icosahedral_hierarchy",
    "icosahedral_vertices",
    "knn_graph",
    "nodes_to_points",
    "points_graph",
    "points_hierarchy",
    "points_to_nodes",
    "region_mask",
    "lambda_max_bound",
    "laplacian",
    "laplacian_scipy",
    "rescaled_laplacian",
    "sigma_to_t",
    "tune_kernel_width",
]
