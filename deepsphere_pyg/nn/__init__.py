"""Layers: Chebyshev graph convolution and sphere pooling, PyG-compatible."""

from .cheb_conv import SphericalChebConv
from .chebyshev_operator import chebyshev_operator, clear_operator_cache
from .sphere_pool import SpherePool, is_regular_pool_index
from .sphere_unpool import SphereUnpool

__all__ = [
    "SphereUnpool",
    "SpherePool",
    "SphericalChebConv",
    "chebyshev_operator",
    "clear_operator_cache",
    "is_regular_pool_index",
]
