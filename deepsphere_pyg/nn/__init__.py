"""Layers: Chebyshev graph convolution and sphere pooling, PyG-compatible."""

from .cheb_conv import SphericalChebConv
from .chebyshev_operator import chebyshev_operator, clear_operator_cache

__all__ = ["SphericalChebConv", "chebyshev_operator", "clear_operator_cache"]
