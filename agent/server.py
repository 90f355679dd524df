"""The agents' OpenAI-compatible endpoint: ``model`` is an agent's name.

Requests go through :meth:`Runtime.chat`: the agent's live adapter plus its pending memories in
context. A hot swap never breaks a request: the old adapter stays loaded until the requests
using it finish. While the engine restarts, requests get 503 with ``Retry-After``; when an API
key is set, requests without it get 401. Binding is loopback unless the runtime config allows
more (see :class:`agent.config.EngineConfig`).
"""


import hmac
import time
import uuid
from typing import Any

from agent.engines import Completion, EngineError, EngineUnavailable, SamplingParams
from agent.runtime import Runtime
from memory import MemoryInputError


def create_app(runtime: Runtime, api_key: str | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
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
            body: dict[str, Any] = await request.json()
        except ValueError:
            return error(400, "the body is not JSON", "invalid_request_error")
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
        try:
            params = SamplingParams(temperature=float(body.get("temperature", 0.7)),
                                    max_tokens=int(body.get("max_tokens", 256)),
                                    top_p=float(body.get("top_p", 1.0)), seed=body.get("seed"))
        except (TypeError, ValueError) as e:
            return error(400, f"bad sampling parameters: {e}", "invalid_request_error")
        try:
            tooling = {"tools": tools, "tool_choice": tool_choice} if tools else {}
            completion = await run_in_threadpool(lambda: runtime.chat(str(agent), messages, params, **tooling))
        except MemoryInputError as e:
            return error(404, str(e), "invalid_request_error")
        except EngineUnavailable as e:
            return error(503, str(e), "engine_unavailable", {"Retry-After": "5"})
        except EngineError as e:
            return error(502, str(e), "engine_error")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": agent, "system_fingerprint": completion.adapter or "base",
            "choices": [{"index": 0, "message": reply_message(completion),
                         "finish_reason": "tool_calls" if completion.tool_calls else
                         "length" if completion.completion_tokens >= params.max_tokens else "stop"}],
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        }

    return app


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
                                                    log_level="warning", access_log=False))
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
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
