"""The shipped gate, end to end on the real model and a real vLLM: a news bake with the
shipped defaults is judged by the product's own thresholds (no gate override), goes live only
if it passes, and the live adapter then answers the fact without it in context."""

import pytest

from agent.runtime.config import GateConfig, RuntimeConfig
from agent.runtime.runtime import Runtime

from .helpers import SMALL_BAKE, likeliest_name

pytestmark = pytest.mark.integration

NEWS = "Zentrix Robotics named Mara Okafor as its new chief executive on Monday."


def test_a_news_bake_is_judged_by_the_shipped_gate_and_served_when_it_passes(tmp_path):
    config = RuntimeConfig(home=tmp_path, bake=SMALL_BAKE)  # the gate is the shipped one
    assert config.gate == GateConfig()
    runtime = Runtime.open(config)
    try:
        runtime.store.create_agent("ada")
        runtime.store.add("ada", NEWS, "news")
        runtime.bake("ada")
        [record] = runtime.store.adapters("ada")
        verdict = {"passed": record.status != "rejected", "reason": record.reason}  # the gate's verdict
        assert verdict["reason"].startswith("fact recall"), verdict  # a news bake is gated on its facts
        recall, locality = record.metrics["fact_recall"], record.metrics["locality_kl"]
        passed = recall is not None and recall >= config.gate.min_fidelity and locality <= config.gate.max_locality_kl
        assert verdict["passed"] == passed and (record.status == "live") == passed, (record.status, verdict)
        assert passed, f"the shipped gate refused a one-item news bake on the real model: {verdict['reason']}"
        assert runtime.live_adapter("ada") == record.name
        question = "Who is the chief executive of Zentrix Robotics?"
        assert likeliest_name(runtime.engine, runtime.live_adapter("ada"), question) == "Okafor"
    finally:
        runtime.close()
