"""deepsphere_pyg: graph-based spherical CNNs (DeepSphere) for PyTorch Geometric."""

__version__ = "0.1.0"
