"""Behaviour checks for baked adapters: generate answers, score them with keyword judges."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from baking.queries import generic_queries
from baking.render import Message, encode
from baking.sampling import sample

# Words that mark pirate speech; used by the pirate persona checks and benchmarks.
PIRATE_WORDS = (
    "arr", "arrr", "arrrr", "matey", "mateys", "ahoy", "aye", "ye", "yer", "hearties", "sea",
    "seas", "ship", "pirate", "pirates", "captain", "treasure", "sail", "sailing", "plunder",
    "scallywag", "landlubber", "landlubbers", "booty", "seven seas", "redbeard",
)


def keyword_hit(text: str, words: Sequence[str]) -> bool:
    """True if ``text`` contains any of ``words`` as a whole word (case-insensitive)."""
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def keyword_rate(texts: Sequence[str], words: Sequence[str]) -> float:
    """Share of ``texts`` that contain at least one of ``words``."""
    return sum(keyword_hit(t, words) for t in texts) / max(len(texts), 1)


def held_out_questions(n: int) -> list[str]:
    """``n`` generic questions from the held-out split (never used for training)."""
    return list(generic_queries()[3::4][:n])


def load_with_adapter(adapter: Path | str, model_ref: str | None = None, device: str = "cpu"):
    """(peft model, tokenizer) for the adapter's base model with the adapter loaded."""
    import json

    from peft import PeftModel

    from baking.model import load_model

    adapter = Path(adapter)
    if model_ref is None:
        bake_json = adapter / "bake.json"
        if not bake_json.is_file():
            bake_json = Path(json.loads((adapter / "scale.json").read_text())["source"]) / "bake.json"
        model_ref = json.loads(bake_json.read_text())["config"]["model"]
    model, tokenizer = load_model(model_ref, device=device)
    return PeftModel.from_pretrained(model, str(adapter)), tokenizer


def generate(
    model,
    tokenizer,
    conversations: Sequence[list[Message]],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Answers to ``conversations`` (greedy by default), decoded without special tokens."""
    prompts = [encode(tokenizer, messages) for messages in conversations]
    outputs = sample(
        model,
        prompts,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        topk=1,
        generator=torch.Generator().manual_seed(seed),
        batch_size=32,
        bf16=False,
    )
    return [tokenizer.decode(o.tokens, skip_special_tokens=True).strip() for o in outputs]


def answer_pairs(adapter: Path | str, n: int) -> list[tuple[str, str, str]]:
    """(question, answer without the adapter, answer with it) on ``n`` held-out questions."""
    model, tokenizer = load_with_adapter(adapter)
    questions = held_out_questions(n)
    conversations = [[{"role": "user", "content": q}] for q in questions]
    with model.disable_adapter():
        before = generate(model, tokenizer, conversations)
    after = generate(model, tokenizer, conversations)
    return list(zip(questions, before, after))
