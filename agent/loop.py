"""The agent loop: typed step records, langchain-core messages and tools.

The default 135M model cannot use OpenAI tool calling, so tools are also reachable through a
plain-text format it can follow; one line of its reply:

    CALL <tool name> <JSON object of arguments>

e.g. ``CALL remember {"text": "The office moved to Pier 9.", "kind": "fact"}``. The tool's
result comes back as the next user turn, ``[<tool> result] ...``, and the model answers again.
A reply without a CALL line is the final answer. Tool errors become observations the model
sees; engine errors raise. Scenarios can also call a tool explicitly (:meth:`Agent.use_tool`).

Larger models use the OpenAI tool-calling API instead (``tool_calling="openai"``): the tools go
to the server as JSON-schema function specs, calls come back as ``tool_calls``, and results go
back as ``tool`` messages. The last step a turn allows is sent with ``tool_choice="none"``, so a
turn always ends in an answer.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

_CALL = re.compile(r"^\s*CALL\s+([A-Za-z_][\w-]*)\s*(\{.*\})?\s*$", re.MULTILINE)


class Reply(Protocol):
    text: str
    prompt_tokens: int
    completion_tokens: int
    adapter: str | None
    # with tool_calling="openai": objects with .id, .name, .arguments (JSON text)
    tool_calls: tuple[Any, ...]


class ChatFn(Protocol):
    """model(messages) in text mode; model(messages, tools=[...], tool_choice=...) in openai mode."""

    def __call__(self, messages: list[dict[str, Any]], **tooling: Any) -> Reply: ...


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]  # {"__error__": why} when the model's arguments were not a JSON object
    id: str
    raw: str = "{}"  # the arguments as the model wrote them

    @property
    def error(self) -> str | None:
        return self.args.get("__error__")


@dataclass(frozen=True)
class Step:
    """One model turn: what went in, what came out, the tools it called and what they said."""

    number: int
    messages_in: tuple[BaseMessage, ...]
    output: str
    tool_calls: tuple[ToolCall, ...]
    observations: tuple[ToolMessage, ...]
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    adapter: str | None  # the adapter version that answered (None: base model + context)

    def to_messages(self) -> list[BaseMessage]:
        calls = [{"name": c.name, "args": c.args, "id": c.id} for c in self.tool_calls if not c.error]
        invalid = [{"name": c.name, "args": c.raw, "id": c.id, "error": c.error} for c in self.tool_calls if c.error]
        return [AIMessage(content=self.output, tool_calls=calls, invalid_tool_calls=invalid), *self.observations]


def _arguments(raw: str) -> dict[str, Any]:
    """Tool arguments from JSON text; a malformed object becomes args that carry the error."""
    try:
        args = json.loads(raw)
    except json.JSONDecodeError as e:
        return {"__error__": f"arguments are not a JSON object: {e.msg}"}
    return args if isinstance(args, dict) else {"__error__": "arguments must be a JSON object"}


def parse_tool_calls(text: str, step: int) -> list[ToolCall]:
    """CALL lines in ``text``; malformed JSON becomes a call whose args carry the error."""
    calls = []
    for n, match in enumerate(_CALL.finditer(text)):
        raw = match.group(2) or "{}"
        calls.append(ToolCall(match.group(1), _arguments(raw), f"call-{step}-{n}", raw))
    return calls


def native_tool_calls(reply: Reply) -> list[ToolCall]:
    """The ``tool_calls`` of an OpenAI-API reply as :class:`ToolCall` records."""
    return [ToolCall(c.name, _arguments(c.arguments), c.id, c.arguments) for c in reply.tool_calls]


def tool_specs(tools: dict[str, BaseTool]) -> list[dict]:
    """OpenAI function specs (JSON schema from each tool's signature and docstring)."""
    return [convert_to_openai_tool(t) for t in tools.values()]


def tool_instructions(tools: dict[str, BaseTool]) -> str:
    lines = ["You can use tools. To use one, reply with a single line:",
             'CALL <tool> {"argument": "value"}', "Tools:"]
    for tool in tools.values():
        args = ", ".join(tool.args)
        lines.append(f"- {tool.name}({args}): {tool.description.splitlines()[0]}")
    lines.append("When you have the answer, reply normally without CALL.")
    return "\n".join(lines)


def to_openai_dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """langchain messages -> OpenAI chat messages, tool calls and ``tool`` results included."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, AIMessage) and (m.tool_calls or m.invalid_tool_calls):
            # The valid calls, then the malformed ones as the model wrote them (results match by id).
            written = [(c["id"], c["name"], json.dumps(c["args"])) for c in m.tool_calls]
            written += [(c["id"], c["name"], c["args"] or "") for c in m.invalid_tool_calls]
            calls = [{"id": i, "type": "function", "function": {"name": name, "arguments": args}}
                     for i, name, args in written]
            out.append({"role": "assistant", "content": str(m.content) or None, "tool_calls": calls})
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": str(m.content)})
        else:
            out.extend(to_chat_dicts([m]))
    return out


def to_chat_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """langchain messages -> chat-template dicts (tool results become user turns)."""
    out = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": str(m.content)})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": str(m.content)})
        elif isinstance(m, AIMessage):
            out.append({"role": "assistant", "content": str(m.content)})
        elif isinstance(m, ToolMessage):
            out.append({"role": "user", "content": f"[{m.name} result] {m.content}"})
    return out


@dataclass
class Agent:
    model: ChatFn
    tools: dict[str, BaseTool] = field(default_factory=dict)
    max_steps: int = 4
    history: list[BaseMessage] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    tool_calling: Literal["text", "openai"] = "text"
    # openai mode, the first step of a turn: "auto", "required" (the turn starts with a call) or
    # a named function; later steps are "auto", and the last one a turn allows is "none".
    tool_choice: str | dict = "auto"

    def run(self, user_text: str) -> list[Step]:
        """Answer one user message, calling tools until a reply calls none."""
        self.history.append(HumanMessage(content=user_text))
        new_steps = []
        for n in range(self.max_steps):
            choice = "none" if n == self.max_steps - 1 else self.tool_choice if n == 0 else "auto"
            step = self._step(choice)
            new_steps.append(step)
            if not step.tool_calls:
                break
        return new_steps

    def _step(self, tool_choice: str | dict = "auto") -> Step:
        number = len(self.steps) + 1
        messages_in = list(self.history)
        start = time.perf_counter()
        if self.tool_calling == "openai" and self.tools:
            reply = self.model(to_openai_dicts(messages_in), tools=tool_specs(self.tools), tool_choice=tool_choice)
            calls = native_tool_calls(reply)
        else:
            prompt = to_chat_dicts(messages_in)
            if self.tools:
                prompt = [{"role": "system", "content": tool_instructions(self.tools)}, *prompt]
            reply = self.model(prompt)  # engine errors propagate
            calls = parse_tool_calls(reply.text, number)
        observations = tuple(self._execute(call) for call in calls)
        step = Step(number, tuple(messages_in), reply.text, tuple(calls), observations,
                    reply.prompt_tokens, reply.completion_tokens, time.perf_counter() - start, reply.adapter)
        self.steps.append(step)
        self.history.extend(step.to_messages())
        return step

    def _execute(self, call: ToolCall) -> ToolMessage:
        """Run a tool; any failure becomes an observation the model can react to."""
        if call.error:
            content = f"error: {call.error}"
        elif call.name not in self.tools:
            content = f"error: unknown tool {call.name!r}; available: {', '.join(self.tools) or 'none'}"
        else:
            try:
                content = str(self.tools[call.name].invoke(call.args))
            except Exception as e:  # a tool's failure is information for the model, not a crash
                content = f"error: {type(e).__name__}: {e}"
        return ToolMessage(content=content, name=call.name, tool_call_id=call.id)

    def use_tool(self, name: str, args: dict[str, Any] | None = None) -> Step:
        """Explicit tool use (e.g. from a scenario): recorded as a step with no model call."""
        call = ToolCall(name, args or {}, f"explicit-{len(self.steps) + 1}")
        step = Step(len(self.steps) + 1, tuple(self.history), "", (call,), (self._execute(call),),
                    0, 0, 0.0, None)
        self.steps.append(step)
        self.history.extend(step.to_messages())
        return step
