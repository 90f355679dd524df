"""A promptbake agent as a langchain-core chat model: always its live adapter + its context.

    chat = PromptbakeChatModel(runtime=runtime, agent="ada")
    chat.invoke("Who runs Zentrix?")
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.engines import SamplingParams
from agent.loop import to_chat_dicts


class PromptbakeChatModel(BaseChatModel):
    runtime: Any  # agent.runtime.Runtime
    agent: str
    temperature: float = 0.0
    max_tokens: int = 256

    @property
    def _llm_type(self) -> str:
        return "promptbake"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        params = SamplingParams(temperature=kwargs.get("temperature", self.temperature),
                                max_tokens=kwargs.get("max_tokens", self.max_tokens))
        reply = self.runtime.chat(self.agent, to_chat_dicts(messages), params)
        text = reply.text
        for s in stop or []:
            text = text.split(s)[0]
        message = AIMessage(content=text, response_metadata={"adapter": reply.adapter},
                            usage_metadata={"input_tokens": reply.prompt_tokens,
                                            "output_tokens": reply.completion_tokens,
                                            "total_tokens": reply.prompt_tokens + reply.completion_tokens})
        return ChatResult(generations=[ChatGeneration(message=message)])
