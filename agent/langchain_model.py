"""A promptbake agent as a langchain-core chat model: always its live adapter + its context.

    chat = PromptbakeChatModel(runtime=runtime, agent="ada")
    chat.invoke("Who runs Zentrix?")

``bind_tools`` works as on any LangChain chat model. The tools go to the engine's OpenAI tool
calling (vLLM started with a tool-call parser: ``engine.tool_call_parser``), and the reply
carries ``tool_calls``; arguments that are not a JSON object come back as ``invalid_tool_calls``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent.serving.engine import REPLY_PARAMS, SamplingParams
from agent.loop import native_tool_calls, to_chat_dicts, to_openai_dicts


class PromptbakeChatModel(BaseChatModel):
    runtime: Any  # agent.runtime.runtime.Runtime
    agent: str
    temperature: float = REPLY_PARAMS.temperature
    max_tokens: int = REPLY_PARAMS.max_tokens

    @property
    def _llm_type(self) -> str:
        return "promptbake"

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
                   *, tool_choice: str | dict | bool | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, BaseMessage]:
        """Tools as OpenAI function specs; ``tool_choice`` "auto" (default), "required" (also
        LangChain's "any" or True), "none" (or False), or a tool's name."""
        if tool_choice is True or tool_choice == "any":
            tool_choice = "required"
        elif tool_choice is False:
            tool_choice = "none"
        elif isinstance(tool_choice, str) and tool_choice not in ("auto", "required", "none"):
            tool_choice = {"type": "function", "function": {"name": tool_choice}}
        specs = [convert_to_openai_tool(t) for t in tools]
        return super().bind(tools=specs, tool_choice=tool_choice or "auto", **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        params = SamplingParams(temperature=kwargs.get("temperature", self.temperature),
                                max_tokens=kwargs.get("max_tokens", self.max_tokens))
        tools = kwargs.get("tools")
        if tools:
            reply = self.runtime.chat(self.agent, to_openai_dicts(messages), params, tools=tools,
                                      tool_choice=kwargs.get("tool_choice", "auto"))
        else:
            reply = self.runtime.chat(self.agent, to_chat_dicts(messages), params)
        text = reply.text
        for s in stop or []:
            text = text.split(s)[0]
        calls, invalid = [], []
        for call in native_tool_calls(reply):  # malformed arguments are kept as written, flagged
            if call.error:
                invalid.append({"name": call.name, "args": call.raw, "id": call.id, "error": call.error})
            else:
                calls.append({"name": call.name, "args": call.args, "id": call.id})
        message = AIMessage(content=text, tool_calls=calls, invalid_tool_calls=invalid,
                            response_metadata={"adapter": reply.adapter},
                            usage_metadata={"input_tokens": reply.prompt_tokens,
                                            "output_tokens": reply.completion_tokens,
                                            "total_tokens": reply.prompt_tokens + reply.completion_tokens})
        return ChatResult(generations=[ChatGeneration(message=message)])
