"""The gate's verdict: which measure a candidate must bring to min_fidelity, by what it baked."""

from agent.runtime.config import RuntimeConfig
from agent.runtime.gate import gate_verdict

CONFIG = RuntimeConfig(gate={"min_fidelity": 0.5, "max_locality_kl": 0.5})


def metrics(fidelity: float, recall: float | None, locality: float = 0.1) -> dict:
    return {"fidelity": fidelity, "fact_recall": recall, "locality_kl": locality}


def test_news_is_gated_on_the_facts_it_captured_not_on_the_wording():
    passed, reason = gate_verdict(metrics(0.2, 0.7), CONFIG, ["news", "news"])
    assert passed and reason.startswith("fact recall 0.700 >= 0.5") and "fidelity" not in reason
    passed, reason = gate_verdict(metrics(0.9, 0.3), CONFIG, ["fact"])
    assert not passed and "fact recall 0.300 < 0.5" in reason


def test_a_persona_is_gated_on_fidelity_and_a_mixed_bake_on_both():
    assert gate_verdict(metrics(0.6, None), CONFIG, ["persona"])[0]
    assert not gate_verdict(metrics(0.4, None), CONFIG, ["instruction"])[0]
    passed, reason = gate_verdict(metrics(0.4, 0.9), CONFIG, ["persona", "news"])
    assert not passed and "fact recall 0.900 >= 0.5" in reason and "fidelity 0.400 < 0.5" in reason


def test_news_whose_facts_the_teacher_does_not_gain_on_falls_back_to_fidelity():
    assert not gate_verdict(metrics(0.3, None), CONFIG, ["news"])[0]
    assert gate_verdict(metrics(0.6, None), CONFIG, ["news"])[0]


def test_locality_bounds_every_bake():
    passed, reason = gate_verdict(metrics(0.9, 0.9, locality=0.8), CONFIG, ["news"])
    assert not passed and "locality 0.800 > 0.5" in reason
