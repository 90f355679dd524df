import pytest

from agent.runtime.config import RuntimeConfig
from agent.runtime.engine import open_engine
from baking.model import DEFAULT_MODEL, resolve_model


@pytest.fixture(scope="session")
def real_model_dir():
    """The shipped SmolLM2-135M-Instruct, materialised (make model does this once)."""
    return resolve_model(DEFAULT_MODEL)



@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    # The hermes tool-call parser enables OpenAI tool calling; plain requests are unaffected.
    config = RuntimeConfig(home=tmp_path_factory.mktemp("vllm"), engine={"tool_call_parser": "hermes"})
    engine = open_engine(config)
    yield engine
    engine.close()
