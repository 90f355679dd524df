import torch

from agent.scenario.judges import JUDGES, detect_language, mc_loglik
from agent.serving.hf import choice_logliks
from baking.model import load_model
from baking.render import encode


def test_text_judges():
    assert JUDGES["contains"]("The CEO is Mara OKAFOR.", "okafor") == 1.0
    assert JUDGES["contains"]("The CEO is unknown.", "Okafor") == 0.0
    assert JUDGES["regex"]("Answer ends here. Over.", r"Over\.$") == 1.0
    assert JUDGES["keyword_rate"]("Arr, the sea is calm, matey.", ["arr", "matey"]) == 1.0
    assert JUDGES["keyword_rate"]("Arrange the seats.", ["arr"]) == 0.0  # whole words only


def test_language_check():
    assert detect_language("Le chat est sur la table et il dort dans le salon.") == "fr"
    assert detect_language("The cat is on the table and it is asleep.") == "en"
    assert detect_language("El gato está en la mesa y no se mueve.") == "es"
    assert JUDGES["language"]("Je pense que la réponse est simple.", "fr") == 1.0
    assert detect_language("12345 !!!") is None


def test_mc_loglik_picks_the_most_likely_choice(tiny_model):
    model, tokenizer = load_model(str(tiny_model))
    messages = [{"role": "user", "content": "Pick one."}]
    choices = ["alpha", "beta", "gamma"]
    scores = choice_logliks(model, tokenizer, messages, choices)
    # Reference: score each choice by a direct forward over prompt + choice.
    prompt = encode(tokenizer, messages)
    for choice, score in zip(choices, scores):
        ids = tokenizer(choice, add_special_tokens=False)["input_ids"]
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
        expected = sum(torch.log_softmax(logits[len(prompt) - 1 + i], -1)[t].item() for i, t in enumerate(ids))
        assert abs(score - expected) < 1e-3
    best = max(range(3), key=scores.__getitem__)
    assert mc_loglik(scores, best) == 1.0 and mc_loglik(scores, (best + 1) % 3) == 0.0
