"""The gate: what may go live. ``gate_verdict`` judges a finished bake from its metrics; the
verdict is recorded as the adapter's status (``candidate``: passed, ``rejected``: refused) and
its reason, and read from there only. ``check_adapter`` refuses a folder no engine may load
(root, config, tensors, or a digest that changed since it was registered)."""

from __future__ import annotations

from typing import Sequence

from agent.runtime.config import RuntimeConfig
from agent.serving.engine import EngineError
from baking.config import SYSTEM_KINDS
from memory import AdapterRecord, MemoryStore
from memory.store import adapter_digest


def gate_verdict(metrics: dict, config: RuntimeConfig, kinds: Sequence[str]) -> tuple[bool, str]:
    """Whether a candidate goes live, and why, from its bake's metrics.

    What must reach ``min_fidelity`` depends on what was baked. A persona or instruction is a
    way of answering, so the KL fidelity on held-out inputs measures it. A news item or fact
    is knowledge, so the share of the prompt's gain in the new facts' likelihood that the
    adapter captured (``fact_recall``) measures it: the KL fidelity of a chained news bake
    falls as its parent already answers news the way the prompted teacher does, since the
    style it shares no longer counts in the denominator, while what is left to transfer, the
    facts, is what fact_recall scores (benchmarks/RESULTS.md, news). A bake of both must pass
    both; one whose facts the teacher itself does not gain on (fact_recall None) falls back to
    the KL fidelity. Locality bounds the drift on unrelated inputs in every case.
    """
    gate = config.gate
    recall = metrics.get("fact_recall")
    checks = []
    if recall is not None:
        checks.append(("fact recall", recall))
    if recall is None or any(k in SYSTEM_KINDS for k in kinds):
        checks.append(("fidelity", metrics["fidelity"]))
    ok = [value >= gate.min_fidelity for _, value in checks]
    locality = metrics["locality_kl"]
    ok_l = locality <= gate.max_locality_kl
    reason = "; ".join(f"{name} {value:.3f} {'>=' if good else '<'} {gate.min_fidelity}"
                       for (name, value), good in zip(checks, ok))
    reason += f"; locality {locality:.3f} {'<=' if ok_l else '>'} {gate.max_locality_kl} nats/token"
    return all(ok) and ok_l, reason


class AdapterRefused(EngineError):
    """An adapter folder failed validation (shape, rank, root, or its recorded digest): it
    must not be loaded, whatever the engine's state. Not retryable."""


def check_adapter(record: AdapterRecord, config: RuntimeConfig, max_lora_rank: int, store: MemoryStore) -> None:
    """Validate the adapter folder before the engine sees it (root, config, tensors, and
    the weights' digest recorded at registration)."""
    from baking.model import resolve_model
    from baking.validate import AdapterInvalid, validate_adapter

    try:
        validate_adapter(record.path, config.adapters_dir, resolve_model(config.model),
                         max_lora_rank)
        if record.weights_sha256 and adapter_digest(record.path) != record.weights_sha256:
            raise AdapterInvalid("its weights or config changed since it was registered "
                                 "(SHA-256 mismatch): refusing a tampered adapter")
    except AdapterInvalid as e:
        store.audit(record.agent, "adapter_refused", adapter=record.name, reason=str(e))
        raise AdapterRefused(f"adapter {record.name} failed validation: {e}") from e
