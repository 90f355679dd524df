"""The bake recipe, pinned: the tiny random Llama, a fixed seed, one thread, fp32; the KL before
and after and the loss curve of a persona bake and of a news bake continued from it must stay
what they were (float noise aside). A refactor of baking/ that changes any number here changed
the method, not only the code. The numbers were measured on the code before the recipe split
(issue 16); re-pin them only for an intended change of the method, and say so in its commit.
Re-pinned once: the news bake's parent holds a persona, so its locality inputs now stay on the
parent instead of the base model (``baker._lineage_has_system``)."""

import pytest
import torch

import baking.baker as baker
from baking import BakeConfig, PromptItem, bake
from tests.unit.tiny_bake import tiny_bake

PERSONA = PromptItem(kind="persona", text="You always answer in capital letters.")
NEWS = PromptItem(kind="news", text="On 3 May 2031 Port Alder opened the Glasswing Bridge, 940 metres long.")
EARLIER = PromptItem(kind="fact", text="The office moved to Pier 9 in 2029.", id="7")

# (kl_base, kl_baked), then the loss at every optimiser step.
PERSONA_KL = [0.9146982828776041, 0.8566329479217529]
PERSONA_LOSSES = [0.25812292098999023, 0.5786306262016296, 0.582402765750885, 0.524835467338562]
NEWS_KL = [1.034595775604248, 1.013139533996582]
NEWS_LOSSES = [0.6186270713806152, 0.5388417840003967, 1.1226387023925781, 0.5275439620018005]


@pytest.fixture
def losses(monkeypatch) -> list[float]:
    """The loss curve of every bake in the test, read from ``train``'s stats."""
    curve: list[float] = []

    def recorded(*args, **kwargs):
        stats = real(*args, **kwargs)
        curve.extend(stats.losses)
        return stats

    real = baker.train
    monkeypatch.setattr(baker, "train", recorded)
    threads = torch.get_num_threads()
    yield curve
    torch.set_num_threads(threads)  # the bakes pin one thread; the rest of the session keeps all


def test_a_persona_bake_then_a_continued_news_bake_keep_their_pinned_numbers(tiny_model, tmp_path, losses):
    config = BakeConfig(model=str(tiny_model), num_threads=1, dtype="fp32",
                        **tiny_bake(min_steps=4, num_conversations=1))
    v1 = bake([PERSONA], tmp_path / "v1", config, progress=False)
    torch.testing.assert_close([v1.metrics["kl_base"], v1.metrics["kl_baked"]], PERSONA_KL, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses, PERSONA_LOSSES, rtol=1e-4, atol=1e-6)

    losses.clear()
    v2 = bake([NEWS], tmp_path / "v2", config, parent=v1.path, replay=["Tell me about the number 3."],
              earlier=[EARLIER], progress=False)
    assert v2.metrics["inputs_by_source"] == {"item:reverse": 2, "locality": 1, "replay": 1, "replay-item": 4}
    assert v2.metrics["locality_anchor"] == "parent" and v1.metrics["num_conversations"] == 1
    torch.testing.assert_close([v2.metrics["kl_base"], v2.metrics["kl_baked"]], NEWS_KL, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses, NEWS_LOSSES, rtol=1e-4, atol=1e-6)
