"""Multi-turn conversations for persona and instruction bakes.

A prompt baked on first turns alone fades as a conversation grows: the student never met a
long history without its prompt. Llama 2's Ghost Attention keeps an instruction in force late
in a dialogue by training on multi-turn dialogues; here each bake adds ``num_conversations``
conversations of ``conversation_turns`` turns:

- user turns are drawn from the training split of the shipped pools (generic requests and
  persona questions), so the held-out probes never appear;
- each assistant turn is written by the teacher (prompted) or by the student (un-prompted: the
  parent adapter, i.e. the policy being trained, so it meets the histories it will write
  itself); ``conversation_writer: mixed`` alternates them per conversation, covering both the
  history of a model that holds its prompt and the drifted one it must come back from;
- one teacher-forced pass over the whole conversation with the prompt in context gives the
  teacher's top-k rows at *every* assistant token, and the student trains on the same
  conversation without the prompt, KL(teacher || student) on every assistant turn.

The replies are sampled as answers to their user turn alone, in the bake's one wide sampling
batch, and then joined into a conversation: sampling turn by turn would re-run a growing
history 16 times (quadratic prefill, minutes on a 2-core CPU), while the KL, which is what
trains the student, still sees the whole history at every turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from baking.config import SYSTEM_KINDS, BakeConfig, PromptItem
from baking.queries import generic_queries, persona_queries, split_pool
from baking.render import Query, encode_conversation, with_items
from baking.sampling import Sampled
from baking.train import Example, teacher_rows

WRITERS = {"teacher": ("teacher",), "student": ("student",), "mixed": ("teacher", "student")}


@dataclass(frozen=True)
class Plan:
    """One conversation to be written: who writes the assistant turns, and the user turns."""

    writer: str  # "teacher" (prompted) or "student" (un-prompted parent)
    users: tuple[str, ...]

    def reply_queries(self) -> list[Query]:
        return [Query.single(u, (), "conversation") for u in self.users]


def plan(items: Sequence[PromptItem], config: BakeConfig, rng: random.Random) -> list[Plan]:
    """The bake's conversations: only for personas and instructions, which are meant to hold
    through a dialogue (news and facts are asked for, not kept in force)."""
    if config.num_conversations == 0 or not any(it.kind in SYSTEM_KINDS for it in items):
        return []
    pool = split_pool(generic_queries(), held_out=False) + split_pool(persona_queries(), held_out=False)
    writers = WRITERS[config.conversation_writer]
    turns = min(config.conversation_turns, len(pool))
    return [Plan(writers[c % len(writers)], tuple(rng.sample(pool, turns)))
            for c in range(config.num_conversations)]


def examples(model, tokenizer, items: Sequence[PromptItem], plans: Sequence[Plan],
             replies: Sequence[Sequence[str]], *, topk: int | None, device: torch.device,
             bf16: bool) -> list[Example]:
    """Training examples, one per conversation: the student side (no prompt) with the
    teacher's rows (prompt in context, teacher-forced) at every assistant token.

    ``replies[c][t]`` answers ``plans[c].users[t]``. A conversation whose prompted and
    un-prompted renderings do not share the same tail after the first user turn (a template
    that rewrites turns) is skipped rather than trained on misaligned rows.
    """
    teacher_side, student_side = [], []
    for p, texts in zip(plans, replies):
        turns = [m for u, r in zip(p.users, texts) for m in ({"role": "user", "content": u},
                                                             {"role": "assistant", "content": r})]
        try:
            s_ids, s_pos = encode_conversation(tokenizer, turns)
            t_ids, t_pos = encode_conversation(tokenizer, with_items(items, (), turns))
        except ValueError:  # a template that rewrites earlier turns: no stable positions
            continue
        s0, t0 = s_pos[0], t_pos[0]
        if s_ids[s0:] != t_ids[t0:] or [q - s0 for q in s_pos] != [q - t0 for q in t_pos]:
            continue
        tail = torch.tensor(s_ids[s0:])
        targets = [q - s0 for q in s_pos]
        placeholder = Sampled(tail, torch.empty(0), None)  # rows come from the forced pass
        teacher_side.append(Example(t_ids[:t0], placeholder, targets))
        student_side.append(s_ids[:s0])
    forced = teacher_rows(model, teacher_side, tokenizer.pad_token_id, device, bf16, topk=topk, batch_size=4)
    return [Example(prompt, ex.teacher, ex.targets) for prompt, ex in zip(student_side, forced)]
