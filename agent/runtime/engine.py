"""Which serving engine a runtime opens, and at which LoRA rank: attach to a URL, start a managed
vLLM at the smallest ``--max-lora-rank`` that holds every adapter its agents may serve, or the
in-process transformers fallback."""

from __future__ import annotations

import os
from pathlib import Path

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import Engine, EngineError
from agent.serving.hf import TransformersEngine
from agent.serving.vllm import VLLMEngine, VLLMSettings, cpu_preload_libraries
from memory import MemoryStore


def lineage_ranks(store: MemoryStore) -> list[int]:
    """The LoRA ranks of every adapter an agent may serve again (live, candidate, retired)."""
    import json

    ranks = []
    for agent in store.agents():
        for record in store.adapters(agent):
            config = Path(record.path) / "adapter_config.json"
            if record.status in ("live", "candidate", "retired") and config.is_file():
                try:
                    ranks.append(int(json.loads(config.read_text()).get("r", 0)))
                except (ValueError, TypeError, OSError):
                    continue  # validation refuses it with the reason when it is loaded
    return ranks


def serving_max_rank(config: RuntimeConfig, store: MemoryStore | None = None) -> int:
    """``engine.max_lora_rank`` if set, else the smallest vLLM rank that holds the bake config's
    rank and every adapter already in the store."""
    from baking.config import serving_rank

    if config.engine.max_lora_rank:
        return config.engine.max_lora_rank
    if config.engine.url:  # an attached server enforces its own limit, unknown here
        from baking.config import VLLM_MAX_LORA_RANKS

        return VLLM_MAX_LORA_RANKS[-1]
    return serving_rank([config.bake.lora_rank, *(lineage_ranks(store) if store is not None else [])])


def omp_bind(value: str | None) -> str | None:
    """``engine.omp_threads_bind`` as vLLM reads it: 'all' is every core this process may use."""
    if value != "all":
        return value
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return ",".join(map(str, cores))


def open_engine(config: RuntimeConfig, max_lora_rank: int | None = None) -> Engine:
    """The configured engine: attach to a URL, start vLLM, or the in-process fallback."""
    from baking.model import resolve_model

    if config.engine.kind == "transformers":
        return TransformersEngine(config.model, device=config.engine.device)
    from agent.runtime.config import is_loopback

    api_key = os.environ.get(config.engine.api_key_env) or None
    if config.engine.url:
        return VLLMEngine.attach(config.engine.url, api_key=api_key)
    if not is_loopback(config.engine.host) and not api_key:
        raise EngineError(f"refusing to bind vLLM to {config.engine.host} without an API key: "
                          f"set ${config.engine.api_key_env}")
    return VLLMEngine.start(resolve_model(config.model), config.home / "logs" / "vllm.log",
                            vllm_settings(config, api_key, max_lora_rank))


def vllm_settings(config: RuntimeConfig, api_key: str | None = None, max_lora_rank: int | None = None,
                  extra_args: tuple[str, ...] = ()) -> VLLMSettings:
    """How the runtime starts a managed vLLM for ``config`` (benchmarks start theirs the same way)."""
    return VLLMSettings(
        dtype=config.engine.dtype, max_loras=config.engine.max_loras,
        max_lora_rank=max_lora_rank or serving_max_rank(config),
        max_model_len=config.engine.max_model_len, kv_cache_gib=config.engine.kv_cache_gib,
        startup_timeout_s=config.engine.startup_timeout_s, host=config.engine.host, api_key=api_key,
        tool_call_parser=config.engine.tool_call_parser, chat_template=config.engine.chat_template,
        omp_threads_bind=omp_bind(config.engine.omp_threads_bind), reserved_cpus=config.engine.reserved_cpus,
        preload=cpu_preload_libraries() if config.engine.preload == "auto" else (),
        lora_cpu_kernel=config.engine.lora_cpu_kernel, lora_cpu_merge_gib=config.engine.lora_cpu_merge_gib,
        extra_args=extra_args,
    )
