"""The serving engine's seam: one Protocol (:class:`Engine`), its errors and its value objects.

Two implementations: :mod:`agent.serving.vllm` (the default) and :mod:`agent.serving.hf` (an
in-process transformers/PEFT model, the fallback where vLLM is not installed).

Adapter names are never reused: vLLM keeps stale prefix-cache entries and re-reads from disk
when an adapter is reloaded under a name it has seen. The runtime names every version
``<agent>-vNNNN`` and only ever loads a name once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Message = dict[str, Any]  # an OpenAI chat message: role, content (+ tool_calls / tool_call_id)
BASE = "base"  # the name the un-adapted model is served under


class EngineError(RuntimeError):
    """The serving engine failed (start, request, adapter load); the message carries the cause."""


class EngineUnavailable(EngineError):
    """The server is down or restarting: the request was not served and can be retried."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    max_tokens: int = 128
    top_p: float = 1.0
    seed: int | None = 0
    top_logprobs: int = 0  # > 0: return the top-k log-probs of every generated token


# The one default for an agent's reply when its caller sets nothing: the endpoint, `agent chat`
# and the LangChain chat model. (Measurements set their own, seeded: agent.scenario.)
REPLY_PARAMS = SamplingParams(temperature=0.7, max_tokens=256)


@dataclass(frozen=True)
class NativeToolCall:
    """A tool call from the OpenAI tool-calling API; ``arguments`` is the JSON text as sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    text: str
    adapter: str | None
    prompt_tokens: int
    completion_tokens: int
    # Per generated token: {token: logprob} of the top-k, when requested.
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    tool_calls: tuple[NativeToolCall, ...] = ()  # only when the request carried ``tools``


class Engine(Protocol):
    def chat(self, messages: list[Message], adapter: str | None, params: SamplingParams,
             tools: list[dict] | None = None, tool_choice: str | dict = "auto") -> Completion:
        """One answer. With ``tools`` (OpenAI function specs) the model may answer with
        ``tool_calls`` instead of text; ``tool_choice`` is "auto", "required", "none" or a
        named function, as in the OpenAI API."""
        ...

    def sample(self, messages: list[Message], adapter: str | None, n: int, params: SamplingParams) -> list[Completion]: ...

    def score(self, messages: list[Message], adapter: str | None, continuations: list[str]) -> list[float]:
        """log p(continuation | messages) for each, as the assistant's reply (summed over tokens)."""
        ...

    def load_adapter(self, name: str, path: Path | str) -> None: ...

    def unload_adapter(self, name: str) -> None: ...

    def adapters(self) -> list[str]: ...

    def health(self) -> bool: ...

    def close(self) -> None: ...
