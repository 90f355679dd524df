import pytest

from baking.model import DEFAULT_MODEL, resolve_model


@pytest.fixture(scope="session")
def real_model_dir():
    """The shipped SmolLM2-135M-Instruct, materialised (make model does this once)."""
    return resolve_model(DEFAULT_MODEL)

