"""The agents' OpenAI-compatible endpoint: ``model`` is an agent's name.

Requests go through :meth:`Runtime.chat`: the agent's live adapter plus its pending memories in
context. A hot swap never breaks a request: the old adapter stays loaded until the requests
using it finish. While the engine restarts, requests get 503 with ``Retry-After``; when an API
key is set, requests without it get 401. Binding is loopback unless the runtime config allows
more (see :class:`agent.runtime.config.EngineConfig`).

``stream: true`` answers with server-sent events (``chat.completion.chunk`` lines, then
``data: [DONE]``), as OpenAI clients and chat front ends expect. Known limitation: the engine
returns whole completions, so the deltas are cut from the finished answer (by words, tool
calls one chunk each), not sent token by token as the engine generates them; the first byte
comes when the answer is complete. The chat runs before the stream starts, so its errors
(404, 502, 503) are ordinary JSON responses with those statuses.

Only ``n=1`` is served. Sampling fields are checked here, so a bad value is a 400 naming the
field rather than the engine's error passed through.
"""


import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from agent.serving.engine import REPLY_PARAMS, Completion, EngineError, EngineUnavailable, SamplingParams
from agent.runtime.runtime import Runtime
from memory import MemoryInputError


def create_app(runtime: Runtime, api_key: str | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="promptbake agents", docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key and request.url.path != "/health":
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return error(401, "missing or wrong API key", "authentication_error")
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"ok": True}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [
            {"id": agent, "object": "model", "owned_by": "promptbake", "live_adapter": runtime.live_adapter(agent)}
            for agent in runtime.store.agents()]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            body: Any = await request.json()
        except ValueError:
            return error(400, "the body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return error(400, f"the body must be a JSON object, got {type(body).__name__}", "invalid_request_error")
        agent, messages = body.get("model"), body.get("messages")
        problem = message_problem(messages)
        if problem:
            return error(400, problem, "invalid_request_error")
        tools, tool_choice = body.get("tools"), body.get("tool_choice", "auto")
        problem = tools_problem(tools, tool_choice)
        if problem is None and tools and runtime.config.engine.kind != "vllm":
            problem = "tools need the vLLM engine with a tool-call parser (engine.tool_call_parser)"
        if problem:
            return error(400, problem, "invalid_request_error")
        problem = sampling_problem(body) or stream_problem(body)
        if problem:
            return error(400, problem, "invalid_request_error")
        params = sampling_params(body)
        try:
            tooling = {"tools": tools, "tool_choice": tool_choice} if tools else {}
            completion = await run_in_threadpool(lambda: runtime.chat(str(agent), messages, params, **tooling))
        except MemoryInputError as e:
            return error(404, str(e), "invalid_request_error")
        except EngineUnavailable as e:
            return error(503, str(e), "engine_unavailable", {"Retry-After": "5"})
        except EngineError as e:
            return error(502, str(e), "engine_error")
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": agent,
                "system_fingerprint": completion.adapter or "base"}
        finish = finish_reason(completion, params.max_tokens)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = stream_chunks(completion, head, finish, include_usage)
            return StreamingResponse(sse_lines(chunks), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return {**head, "object": "chat.completion",
                "choices": [{"index": 0, "message": reply_message(completion), "finish_reason": finish}],
                "usage": usage(completion)}

    return app


def _is_int(value: Any) -> bool:
    """A JSON integer: an int or an integral float (``5.0``), never a bool."""
    return not isinstance(value, bool) and (isinstance(value, int)
                                            or isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    """A finite JSON number, never a bool."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def sampling_problem(body: dict[str, Any]) -> str | None:
    """Why the sampling fields of ``body`` are not valid (naming the field), or None.

    Missing or null fields take the defaults of :func:`sampling_params`.
    """
    max_tokens, temperature = body.get("max_tokens"), body.get("temperature")
    top_p, seed, n = body.get("top_p"), body.get("seed"), body.get("n")
    if max_tokens is not None and not (_is_int(max_tokens) and max_tokens > 0):
        return f"max_tokens must be a positive integer, got {max_tokens!r}"
    if temperature is not None and not (_is_number(temperature) and temperature >= 0):
        return f"temperature must be a finite number >= 0, got {temperature!r}"
    if top_p is not None and not (_is_number(top_p) and 0 < top_p <= 1):
        return f"top_p must be a number in (0, 1], got {top_p!r}"
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return f"seed must be an integer or null, got {seed!r}"
    if n is not None and (isinstance(n, bool) or n != 1):
        return f"n must be 1 (only n=1 is supported), got {n!r}"
    return None


def sampling_params(body: dict[str, Any]) -> SamplingParams:
    """The engine's sampling parameters from a body that passed :func:`sampling_problem`."""
    def given(field: str, default: Any) -> Any:
        value = body.get(field)
        return default if value is None else value

    return SamplingParams(temperature=float(given("temperature", REPLY_PARAMS.temperature)),
                          max_tokens=int(given("max_tokens", REPLY_PARAMS.max_tokens)),
                          top_p=float(given("top_p", REPLY_PARAMS.top_p)), seed=body.get("seed"))


def stream_problem(body: dict[str, Any]) -> str | None:
    """Why ``stream`` / ``stream_options`` are not valid, or None."""
    stream, options = body.get("stream"), body.get("stream_options")
    if stream is not None and not isinstance(stream, bool):
        return f"stream must be true or false, got {stream!r}"
    if options is not None and not (isinstance(options, dict)
                                    and isinstance(options.get("include_usage", False), bool)):
        return f"stream_options must be {{include_usage: true|false}}, got {options!r}"
    return None


def finish_reason(completion: Completion, max_tokens: int) -> str:
    if completion.tool_calls:
        return "tool_calls"
    return "length" if completion.completion_tokens >= max_tokens else "stop"


def usage(completion: Completion) -> dict[str, int]:
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens}


def text_deltas(text: str) -> list[str]:
    """``text`` cut into words, each with the whitespace around it (leading whitespace goes
    with the first word); the pieces concatenate back to exactly ``text``."""
    return re.findall(r"\s*\S+\s*|\s+", text)


def stream_chunks(completion: Completion, head: dict[str, Any], finish: str,
                  include_usage: bool = False) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a finished completion, in order: the role, the
    text by words, one chunk per tool call (id, name and all its arguments), the finish reason,
    and with ``include_usage`` a last chunk with no choices and the usage.

    ``head`` holds the fields every chunk repeats: id, created, model, system_fingerprint.
    """
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in text_deltas(completion.text)]
    deltas += [{"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments}}]}
               for i, call in enumerate(completion.tool_calls)]
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    extra = {"usage": None} if include_usage else {}
    chunks = [{**head, "object": "chat.completion.chunk", **extra,
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
    chunks.append({**head, "object": "chat.completion.chunk", **extra,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if include_usage:
        chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage(completion)})
    return chunks


def sse_lines(chunks: list[dict[str, Any]]) -> Iterator[str]:
    """Server-sent events: one ``data:`` line per chunk, then ``data: [DONE]``."""
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _function_name(entry: Any) -> str | None:
    """``entry["function"]["name"]`` of a tool spec or a tool call, if it has one."""
    function = entry.get("function") if isinstance(entry, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def tools_problem(tools: Any, tool_choice: Any) -> str | None:
    """Why ``tools`` / ``tool_choice`` are not valid OpenAI request fields, or None."""
    if tools is not None and (not isinstance(tools, list) or not all(_function_name(t) for t in tools)):
        return "tools must be a list of {type: function, function: {name, parameters}}"
    if tool_choice not in ("auto", "required", "none") and not _function_name(tool_choice):
        return "tool_choice must be auto, required, none or {type: function, function: {name}}"
    return None


def message_problem(messages: Any) -> str | None:
    """Why ``messages`` is not a valid OpenAI chat history, or None."""
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content}"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system", "tool"):
            return f"messages[{i}]: role must be system, user, assistant or tool"
        calls = m.get("tool_calls")
        if m["role"] == "assistant" and calls:
            if not isinstance(calls, list) or not all(_function_name(c) for c in calls):
                return f"messages[{i}].tool_calls: each needs function.name"
            if m.get("content") is not None and not isinstance(m["content"], str):
                return f"messages[{i}].content must be a string or null"
        elif not isinstance(m.get("content"), str):
            return f"messages[{i}].content must be a string"
        if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
            return f"messages[{i}]: a tool message needs tool_call_id"
    return None


def reply_message(completion: Completion) -> dict[str, Any]:
    """The OpenAI assistant message: text, or (possibly empty) text and tool calls."""
    if not completion.tool_calls:
        return {"role": "assistant", "content": completion.text}
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
             for c in completion.tool_calls]
    return {"role": "assistant", "content": completion.text or None, "tool_calls": calls}


class AgentServer:
    """The endpoint on a uvicorn server in a background thread (``start``/``stop``)."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 8400, api_key: str | None = None) -> None:
        import uvicorn

        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(runtime, api_key), host=host, port=port,
                                                    log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=10))
        self.thread = None

    def start(self, timeout_s: float = 30.0) -> "AgentServer":
        import threading

        self.thread = threading.Thread(target=self.server.run, name="agent-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise EngineError(f"the agent endpoint did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop taking requests; those in flight get up to 10 s to finish."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)
