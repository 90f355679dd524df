"""Configuration and value objects for a bake. Every default lives in the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from baking.model import DEFAULT_MODEL
from memory.kinds import BakeKind as Kind  # the one definition of an item's kinds

SYSTEM_KINDS: tuple[Kind, ...] = ("persona", "instruction")  # rendered into the system prompt
CONTEXT_KINDS: tuple[Kind, ...] = ("news", "fact")  # rendered as a context block next to the user question

# vLLM only accepts these values for --max-lora-rank.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def serving_rank(ranks) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds every rank in ``ranks``: its
    LoRA path pads each adapter to this rank, so a larger one only costs (issue 14)."""
    need = max(ranks, default=1)
    fits = [r for r in VLLM_MAX_LORA_RANKS if r >= need]
    if not fits:
        raise ValueError(f"LoRA rank {need} is above vLLM's largest --max-lora-rank {VLLM_MAX_LORA_RANKS[-1]}")
    return fits[0]


class PromptItem(BaseModel):
    """One thing to bake: a prompt text with its kind, and an optional id (e.g. a memory id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    text: str = Field(max_length=8000)
    id: str | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty or only whitespace; give the prompt to bake")
        return text.strip()

    @classmethod
    def of_memory(cls, item) -> "PromptItem":
        """The one rule that turns a memory item (``memory.MemoryItem``: kind, text, id) into a
        prompt, for the runtime's context, the worker's bake and a scenario's prompted
        condition alike: its own kind and text, its id as a string. A note becomes a fact: it
        is served next to the question, and stays in context for good (a bake never claims
        notes, so none is ever baked)."""
        return cls(kind="fact" if item.kind == "note" else item.kind, text=item.text, id=str(item.id))


class BakeConfig(BaseModel):
    """How to bake. Defaults are the ones measured in benchmarks/ on the 135M model (CPU)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="model ref: shipped name, HF folder or .gguf")
    # --- queries x ---
    num_queries: int = Field(48, ge=1, description="persona/instruction: training user inputs drawn "
                             "per bake (news and facts are budgeted per fact: queries_per_fact)")
    queries_per_fact: int = Field(
        16, ge=1, description="news/fact: training inputs per fact of an item (a name, number or "
        "date in its text), asked from rotating directions: wh, reverse, cloze, quiz, paraphrase, "
        "continuation (baking.coverage)")
    facts_per_item: int = Field(6, ge=1, description="news/fact: at most this many facts of one item")
    coverage_directions: list[Literal["wh", "reverse", "cloze", "quiz", "paraphrase", "continuation"]] = Field(
        default_factory=lambda: ["reverse"], min_length=1,
        description="news/fact: the directions each fact is asked from, taken in turn. Default: "
        "reverse only (open questions from each name, date or figure to the event): on the "
        "quickstart's 4 items (fp32, 8 per fact) it answered 2 of 4 closed-book questions at "
        "fidelity 0.48, all six directions 0 of 4 at 0.30; wh, cloze, quiz, paraphrase and "
        "continuation inputs quote the rest of the sentence, so the student can copy instead of "
        "recall")
    locality_per_item: int = Field(
        16, ge=0, description="news/fact: inputs per new item trained toward the parent without "
        "the new prompt (a locality term): generic requests, general-knowledge questions and "
        "quizzes about other, never-baked news, in turn. Per item, so its share of the bake stays "
        "fixed as bakes grow: 12 per bake (not per item) let 60 items in 6 bakes of 10 cost 20 "
        "points on never-baked controls (benchmarks/results/news.md)")
    locality_anchor: Literal["base", "parent"] = Field(
        "base", description="news/fact: the locality inputs' teacher in a continued bake. "
        "\"base\": the base model (the adapter off), so drift cannot compound along a chain of "
        "bakes (a parent that already moved is a moved target); \"parent\": the parent adapter "
        "without the new prompt. The two agree on a first bake. A lineage holding a persona or "
        "instruction always uses the parent (base would wear it away). Earlier items are kept by "
        "``replay_per_fact``, not by this term")
    replay_per_fact: int = Field(
        2, ge=0, description="news/fact items baked before (``bake(earlier=...)``): inputs per fact "
        "of each, re-taught from the prompted teacher (the item in context), so an item is kept "
        "as the lineage grows and its target never decays with the parent")
    trajectories_per_query: int = Field(2, ge=1, description="teacher samples per persona/generic "
                                        "input (news/fact inputs are distinct and sampled once each)")
    num_eval_queries: int = Field(16, ge=1, description="held-out inputs for fidelity")
    num_control_queries: int = Field(
        8, ge=0, description="unrelated held-out inputs for locality (drift from the parent)"
    )
    num_conversations: int = Field(
        4, ge=0, description="persona/instruction: multi-turn training conversations, the KL on "
        "every assistant turn (baking.conversations), so the prompt holds deep into a dialogue")
    conversation_turns: int = Field(16, ge=1, le=64, description="user/assistant turns per conversation")
    conversation_writer: Literal["mixed", "teacher", "student"] = Field(
        "mixed", description="who writes the conversations' assistant turns: the prompted teacher, "
        "the un-prompted student (the parent: on-policy), or each in turn (mixed)")
    model_questions_per_item: int = Field(
        4, ge=0, description="news/fact: questions the model writes with the item in context"
    )
    # --- teacher sampling ---
    temperature: float = Field(1.0, gt=0, description="teacher sampling temperature (paper: >= 1)")
    max_new_tokens: int = Field(
        24, ge=1, le=2048, description="teacher continuation length; 24 kept a persona's fidelity "
        "(0.795 vs 0.778 at 40, same steps, bf16) at 0.7x the cost (benchmarks/results/persona_bake*.md)")
    sample_batch_size: int = Field(256, ge=1, description="sequences per teacher decoding batch: one wide "
                                   "batch decodes far faster per token on a CPU than two narrow ones")
    # --- LoRA ---
    lora_rank: int = Field(8, ge=1)
    max_lora_rank: int = Field(64, description="the serving engine's --max-lora-rank")
    lora_alpha: float = Field(16.0, gt=0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="the attention projections (as in the paper) and the MLP ones, where facts are "
        "stored: with the MLP, a one-fact bake named the fact in 5 of 9 closed-book answers (3 "
        "seeds, bf16) against 1 of 9 with attention only",
    )
    # --- optimisation ---
    lr: float = Field(
        2.5e-3, gt=0, description="peak learning rate. 5e-3 was measured with attention-only "
        "LoRA; with the MLP "
        "projections adapted too it overshoots. Standalone fp32 bakes (not the quickstart run),"
        " 2.5e-3 vs 5e-3: a persona alone 0.827 vs 0.719 fidelity; the quickstart's 4 news "
        "items 0.605 vs 0.552, 2 vs 1 of 8 closed-book answers, locality KL 0.11 vs 0.22; a "
        "persona on top of that news adapter 0.728 / 0.646 vs 0.542 / 0.391 (seeds 0 / 1; 1e-2 "
        "went negative, 1.5e-3 gave 0.783). At 5e-3 the quickstart's own persona bake was "
        "refused by the 0.5 gate (0.456)")
    lora_plus_ratio: float = Field(
        1.0, ge=1, description="LoRA+: lora_B learns this many times faster than lora_A"
    )
    epochs: int = Field(2, ge=1, description="passes over the trajectories; with batch_size 8, "
                        "as many optimiser steps as 4 epochs of 16 for half the FLOPs")
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    min_steps: int = Field(
        32, ge=1, description="at least this many optimiser steps: a small bake (one fact) passes "
        "over its inputs more often, since a fact needs enough updates to be stored")
    batch_size: int = Field(8, ge=1, description="trajectories per optimiser step")
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    loss: Literal["full", "topk"] = "topk"
    topk: int = Field(32, ge=1, description="k for loss=topk: teacher log-probs kept per token")
    dtype: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 where it is native and measured faster than fp32 "
        "(baking.hardware.choose_precision), else fp32; bake.json records which and why"
    )
    device: str = "cpu"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None: all cores")
    seed: int = 0
    half_bake_fractions: list[float] = Field(
        default_factory=list, description="also save snapshots at these fractions of training"
    )

    @field_validator("half_bake_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        for f in fractions:
            if not 0 < f < 1:
                raise ValueError(f"half_bake_fractions must lie in (0, 1), got {f}")
        return sorted(set(fractions))

    @field_validator("max_lora_rank")
    @classmethod
    def _vllm_rank(cls, rank: int) -> int:
        if rank not in VLLM_MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {VLLM_MAX_LORA_RANKS}, got {rank}")
        return rank

    @model_validator(mode="after")
    def _rank_within_limit(self) -> "BakeConfig":
        if self.lora_rank > self.max_lora_rank:
            raise ValueError(
                f"lora_rank {self.lora_rank} is above max_lora_rank {self.max_lora_rank}; "
                "vLLM would refuse the adapter. Lower lora_rank or raise max_lora_rank."
            )
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> "BakeConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of BakeConfig fields, got {type(data).__name__}")
        return cls(**data)
