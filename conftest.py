"""Root pytest configuration: shared fixtures for every test folder."""
import pytest

from harness.gpu import gpu_unavailable_reason


@pytest.fixture
def gpu():
    """Skip (showing why) when no CUDA GPU is usable; tests that take this fixture run kernels."""
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"needs a CUDA GPU: {reason}")
