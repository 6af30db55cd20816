"""Shared fixtures of the precompute tests."""

import pytest
from precompute_stand_in import make_maps


@pytest.fixture(autouse=True)
def _no_rank_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


@pytest.fixture
def maps():
    return make_maps()
