"""A stand-in fixed transform for the precompute tests, and helpers.

``K`` fixed random linear maps over the nodes, a modulus, and average pooling of groups of
``pool`` consecutive nodes (the protocol of the scattering front-end: ``config()`` and
``out_shape()``). Expected outputs come from an independent float64 NumPy loop over the
definition.
"""

from __future__ import annotations

import numpy as np
import torch

from deepsphere_pyg.precompute import CoefficientStore

N, C, K, POOL = 24, 2, 3, 4
N_OUT, C_OUT = N // POOL, C * K
NUM_MAPS = 7


class LinearModulusPool(torch.nn.Module):
    """``y[b, m, c*K + k] = mean_{p < pool} |sum_n W[k, m*pool + p, n] x[b, n, c]|``.

    Records every map it is given (``inputs``) and, with ``fail_after``, raises instead of
    computing a batch that would take it past that many maps.
    """

    def __init__(self, n=N, k=K, pool=POOL, seed=0, fail_after=None):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("weights", torch.randn(k, n, n, generator=generator) / n**0.5)
        self.n, self.k, self.pool, self.seed = n, k, pool, seed
        self.fail_after = fail_after
        self.inputs: list[torch.Tensor] = []

    def config(self):
        return {
            "kind": "linear-modulus-pool",
            "n": self.n,
            "k": self.k,
            "pool": self.pool,
            "seed": self.seed,
        }

    def out_shape(self, in_channels):
        return self.n // self.pool, in_channels * self.k

    def forward(self, x):
        if self.fail_after is not None and len(self.inputs) + len(x) > self.fail_after:
            raise RuntimeError("simulated interruption")
        self.inputs.extend(x.clone())
        y = torch.einsum("kmn,bnc->bkmc", self.weights, x).abs()
        b, k, n, c = y.shape
        y = y.reshape(b, k, n // self.pool, self.pool, c).mean(3)
        return y.permute(0, 2, 3, 1).reshape(b, n // self.pool, c * k)


def reference(transform: LinearModulusPool, x) -> np.ndarray:
    """The stand-in's definition, in float64 loops."""
    w = transform.weights.double().numpy()
    x = np.asarray(x, dtype=np.float64).reshape(transform.n, -1)
    out = np.zeros((transform.n // transform.pool, x.shape[1] * transform.k))
    for m in range(out.shape[0]):
        for c in range(x.shape[1]):
            for k in range(transform.k):
                rows = w[k, m * transform.pool : (m + 1) * transform.pool]
                out[m, c * transform.k + k] = np.abs(rows @ x[:, c]).mean()
    return out


def make_maps(num=NUM_MAPS, seed=1):
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.standard_normal((N, C)).astype(np.float32)) for _ in range(num)]


def seen_indices(transform: LinearModulusPool, maps) -> list[int]:
    """Which maps the transform was called on (matched by value)."""
    found = []
    for x in transform.inputs:
        matches = [i for i, m in enumerate(maps) if torch.equal(torch.as_tensor(m), x)]
        assert len(matches) == 1
        found.append(matches[0])
    return found


def read_all(store: CoefficientStore) -> np.ndarray:
    return np.stack([store[i].numpy() for i in range(len(store))])

