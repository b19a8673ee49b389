"""Shared fixtures for the screening tests."""
import pytest
import torch
from screen_helpers import FAST

torch.set_num_threads(1)  # tiny models: one thread beats two on a shared 2-core box


@pytest.fixture
def fast_config():
    return FAST
