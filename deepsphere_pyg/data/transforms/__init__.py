r"""PyG transforms for sphere maps (one per module): rotations, noise, masks, normalisation.

Every transform is a :class:`torch_geometric.transforms.BaseTransform` acting on one
sample (``data.x`` ``[N]`` or ``[N, F]``), refuses NaN or infinite values with a clear
error, and has a ``repr`` that names every argument that changes its output (PyG uses it
as the cache key of a ``pre_transform``). Random transforms take a ``seed``: with a seed,
a fresh transform repeats the same sequence of draws. Nodes where ``data.node_mask`` is
``False`` (set by :class:`ApplyMask`) are left unchanged by the others.
"""

from .add_noise import AddNoise
from .apply_mask import ApplyMask
from .normalize import Normalize
from .random_rotation import GRID_ROTATIONS, RandomRotation, rotate_healpix
from .standardize import Standardize

__all__ = [
    "GRID_ROTATIONS",
    "AddNoise",
    "ApplyMask",
    "Normalize",
    "RandomRotation",
    "Standardize",
    "rotate_healpix",
]
