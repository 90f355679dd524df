"""Multi-turn conversations in persona bakes: who writes them, where the loss goes, and that
the teacher rows line up with the prompted model at every assistant token."""

import random

import torch

from baking import BakeConfig, PromptItem, bake
from baking import conversations
from baking.model import load_model
from baking.queries import generic_queries, persona_queries, split_pool
from baking.render import encode_conversation, with_items
from tests.unit.tiny_bake import tiny_bake

PERSONA = PromptItem(kind="persona", text="You always answer in capital letters.")
NEWS = PromptItem(kind="news", text="Zentrix Robotics named Mara Okafor as its new CEO on Monday.")


def test_the_loss_positions_are_every_assistant_turn_and_its_end_token(tiny_model):
    _, tokenizer = load_model(str(tiny_model))
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "AB"},
             {"role": "user", "content": "more"}, {"role": "assistant", "content": "CDE"}]
    ids, positions = encode_conversation(tokenizer, turns)
    # The tiny tokenizer is one token per character, so the positions decode to the replies.
    assert tokenizer.decode([ids[p] for p in positions]) == "AB<|im_end|>CDE<|im_end|>"
    assert positions == sorted(positions) and len(positions) == len("AB") + len("CDE") + 2


def test_conversations_are_planned_for_personas_only_from_the_training_pools():
    config = BakeConfig(num_conversations=4, conversation_turns=6)
    assert conversations.plan([NEWS], config, random.Random(0)) == []
    plans = conversations.plan([PERSONA, NEWS], config, random.Random(0))
    assert [p.writer for p in plans] == ["teacher", "student", "teacher", "student"]  # mixed
    training = set(split_pool(generic_queries(), False) + split_pool(persona_queries(), False))
    for p in plans:
        assert len(p.users) == 6 == len(set(p.users)) and set(p.users) <= training
    only = conversations.plan([PERSONA], config.model_copy(update={"conversation_writer": "student"}),
                              random.Random(0))
    assert {p.writer for p in only} == {"student"}


def test_teacher_rows_are_the_prompted_model_at_every_assistant_token(tiny_model):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(str(tiny_model))
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))  # as a bake holds it
    plans = [conversations.Plan("student", ("hello there", "and then?", "why"))]
    replies = [["abc", "", "xy z"]]  # an empty reply still ends its turn
    examples = conversations.examples(model, tokenizer, [PERSONA], plans, replies, topk=5,
                                      device=torch.device("cpu"), bf16=False)
    (ex,) = examples
    turns = [m for u, r in zip(plans[0].users, replies[0])
             for m in ({"role": "user", "content": u}, {"role": "assistant", "content": r})]
    s_ids, s_pos = encode_conversation(tokenizer, turns)
    assert ex.prompt_ids + ex.teacher.tokens.tolist() == s_ids  # the student side has no prompt
    assert [len(ex.prompt_ids) + t for t in ex.targets] == s_pos
    assert ex.teacher.logprobs.shape == ex.teacher.ids.shape == (len(s_pos), 5)

    t_ids, t_pos = encode_conversation(tokenizer, with_items([PERSONA], (), turns))
    with torch.no_grad():
        logits = model(torch.tensor([t_ids])).logits[0]
    expected = torch.log_softmax(logits[[p - 1 for p in t_pos]].float(), -1).topk(5, dim=-1)
    torch.testing.assert_close(ex.teacher.logprobs, expected.values)
    assert torch.equal(ex.teacher.ids, expected.indices)


def test_conversations_are_batched_among_themselves():
    from baking.sampling import Sampled
    from baking.train import Example, length_grouped_batches

    single = Example([1, 2], Sampled(torch.ones(3, dtype=torch.long), torch.empty(0), None))
    talk = Example([1], Sampled(torch.ones(40, dtype=torch.long), torch.empty(0), None), targets=[0, 5])
    examples = [single] * 13 + [talk] * 3
    batches = length_grouped_batches(examples, 4, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(16))
    assert all(len({examples[i].targets is None for i in b}) == 1 for b in batches)


def test_a_persona_bake_trains_on_its_conversations(tiny_model, tmp_path):
    config = BakeConfig(model=str(tiny_model), **tiny_bake(num_conversations=2, conversation_turns=3))
    version = bake([PERSONA], tmp_path / "v1", config, progress=False)
    m = version.metrics
    assert m["num_conversations"] == 2 and m["inputs_by_source"]["conversation"] == 2
    # Their assistant turns are trained on: more loss positions than the first turns alone.
    alone = bake([PERSONA], tmp_path / "v0", config.model_copy(update={"num_conversations": 0}), progress=False)
    assert m["teacher_tokens"] > alone.metrics["teacher_tokens"] and m["train_tokens"] > alone.metrics["train_tokens"]
    news = bake([NEWS], tmp_path / "v2", config, progress=False)
    assert news.metrics["num_conversations"] == 0 and "conversation" not in news.metrics["inputs_by_source"]
