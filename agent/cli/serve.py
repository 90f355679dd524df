"""``agent chat`` and ``agent serve``: talk to an agent, or serve every agent on an endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pydantic import ValidationError
import typer

from agent.cli.app import CONFIG, HOME, _runtime_config, _validation_message, app, console, fail


@app.command()
def chat(
    agent: str = typer.Option("assistant", "--agent", help="the agent to talk to (created if new)"),
    persona: Optional[str] = typer.Option(None, "--persona", help="a persona for a new agent"),
    tools: list[str] = typer.Option(["remember", "recall", "clock"], "--tool", help="tools by name (repeatable)"),
    engine_kind: Optional[str] = typer.Option(None, "--engine", help="vllm (default) or transformers"),
    home: Optional[Path] = typer.Option(None, "--home", help="runtime folder (default runs/chat)"),
    runtime_config: Optional[Path] = CONFIG,
) -> None:
    """Chat with an agent. Commands: /remember [kind:] TEXT, /bake, /adapters, /status, /quit."""
    from agent.chat import ChatSession
    from agent.serving.engine import EngineError

    config = _runtime_config(home or Path("runs/chat"), runtime_config)
    if engine_kind:
        try:
            config = config.replace(engine={**config.engine.model_dump(), "kind": engine_kind})
        except ValidationError as e:
            fail(f"bad --engine {engine_kind!r}: {_validation_message(e)}")
    try:
        session = ChatSession.open(config, agent, persona=persona, tools=tools, console=console)
    except EngineError as e:
        fail(str(e))
    except ValueError as e:
        fail(str(e))
    session.repl()


@app.command()
def serve(home: Optional[Path] = HOME, runtime_config: Optional[Path] = CONFIG,
          host: Optional[str] = typer.Option(None, "--host", help="bind address (default 127.0.0.1)"),
          allow_remote: bool = typer.Option(False, "--allow-remote",
                                            help="allow a non-loopback --host; needs $PROMPTBAKE_API_KEY"),
          port: int = typer.Option(8400, "--port", help="the agents' OpenAI-compatible endpoint")) -> None:
    """Start the runtime (vLLM + scheduler) and print where the endpoint is; Ctrl-C stops it.
    It binds to 127.0.0.1 unless --host and --allow-remote say otherwise, and then every request
    needs the API key from $PROMPTBAKE_API_KEY (the config's engine.api_key_env)."""
    import signal
    import threading

    from agent.serving.engine import EngineError
    from agent.serving.vllm import VLLMEngine
    from agent.runtime.runtime import Runtime
    from agent.runtime.scheduler import BakeScheduler

    config = _runtime_config(home, runtime_config)
    if host is not None or allow_remote:
        engine = {**config.engine.model_dump(), **({"host": host} if host else {}),
                  "allow_remote": allow_remote or config.engine.allow_remote}
        try:
            config = config.replace(engine=engine)
        except ValidationError as e:
            fail(f"bad serve options: {_validation_message(e)}")
    # While starting, SIGTERM interrupts like Ctrl-C: the start in progress stops its vLLM.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        runtime = Runtime.open(config)
    except EngineError as e:
        fail(str(e))
    scheduler = BakeScheduler(runtime)
    scheduler.start()
    runtime.supervise()  # restarts vLLM if it dies and reloads the live adapters
    from agent.serving.server import AgentServer

    server = AgentServer(runtime, config.engine.host, port, os.environ.get(config.engine.api_key_env) or None)
    try:
        server.start()
    except EngineError as e:
        scheduler.shutdown(wait=False)
        runtime.close()
        fail(str(e))
    console.print(f"agents' OpenAI-compatible endpoint: {server.url}/v1  (model = an agent's name)")
    if isinstance(runtime.engine, VLLMEngine):
        console.print(f"vLLM endpoint: {runtime.engine.url}/v1  (model 'base' or an adapter name)")
    for name in runtime.store.agents():
        console.print(f"  agent {name}: live adapter {runtime.live_adapter(name) or '(none: base + context)'}")
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # systemd, Docker, Kubernetes and kill send SIGTERM
        signal.signal(sig, lambda signum, frame: stopping.set())
    try:
        while not stopping.wait(1):
            pass
        console.print("stopping: in-flight requests finish (10 s at most), then the scheduler and vLLM stop")
    finally:
        server.stop()
        scheduler.shutdown(wait=False)
        runtime.close()
