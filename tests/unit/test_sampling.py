import torch

from baking.model import load_model
from baking.render import encode
from baking.sampling import _common_prefix, sample


def _prompts(tokenizer):
    system = {"role": "system", "content": "You speak in rhymes and love the sea."}
    return [encode(tokenizer, [system, {"role": "user", "content": q}])
            for q in ("Hi", "What is two plus two?", "Tell me a longer story please.")]


def test_shared_prefix_batch_matches_one_by_one(tiny_model):
    model, tokenizer = load_model(str(tiny_model))
    prompts = _prompts(tokenizer)
    assert _common_prefix(prompts) > 10
    kwargs = dict(eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                  max_new_tokens=6, temperature=0, topk=5, bf16=False)
    together = sample(model, prompts, generator=torch.Generator(), batch_size=8, **kwargs)
    for prompt, joint in zip(prompts, together):
        (alone,) = sample(model, [prompt], generator=torch.Generator(), batch_size=1, **kwargs)
        assert joint.tokens.tolist() == alone.tokens.tolist()
        torch.testing.assert_close(joint.logprobs, alone.logprobs, atol=1e-4, rtol=1e-4)
        assert joint.ids.tolist() == alone.ids.tolist()


def test_teacher_log_probs_are_normalised_and_sampling_is_seeded(tiny_model):
    model, tokenizer = load_model(str(tiny_model))
    prompts = _prompts(tokenizer)
    kwargs = dict(eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                  max_new_tokens=5, temperature=1.0, batch_size=8, bf16=False)
    full = sample(model, prompts, topk=None, generator=torch.Generator().manual_seed(3), **kwargs)
    again = sample(model, prompts, topk=None, generator=torch.Generator().manual_seed(3), **kwargs)
    for a, b in zip(full, again):
        assert a.tokens.tolist() == b.tokens.tolist()
        sums = a.logprobs.float().exp().sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums), atol=2e-2, rtol=0)
