import random

from baking.config import PromptItem
from baking.queries import (
    DefaultQuerySource,
    ListQuerySource,
    generic_queries,
    named_entities,
    parse_model_question,
    persona_queries,
)


def test_generic_pool_is_large_and_unique():
    pool = generic_queries()
    assert len(pool) >= 200
    assert len(set(q.lower() for q in pool)) == len(pool)
    assert len(persona_queries()) >= 50


def test_held_out_split_is_disjoint_from_training():
    items = [PromptItem(kind="persona", text="You are a pirate.")]
    source = DefaultQuerySource()
    train = {q.text for q in source.draw(items, 150, random.Random(0), held_out=False)}
    held = {q.text for q in source.draw(items, 40, random.Random(0), held_out=True)}
    assert train and held and not train & held


def test_persona_draw_mixes_persona_and_generic_queries():
    items = [PromptItem(kind="persona", text="You are a pirate.")]
    queries = DefaultQuerySource().draw(items, 30, random.Random(1), held_out=False)
    assert len(queries) == 30
    assert {q.source for q in queries} == {"persona", "generic"}
    assert all(q.context == () for q in queries)


def test_news_questions_carry_only_their_own_item():
    items = [
        PromptItem(kind="news", text="Zentrix Corp named Mara Okafor as chief executive."),
        PromptItem(kind="news", text="Port Avalon opened the Glasswing Bridge."),
    ]
    queries = DefaultQuerySource().draw(items, 8, random.Random(2), held_out=False)
    assert {q.context for q in queries} == {(0,), (1,)}
    about_bridge = [q.text for q in queries if q.context == (1,)]
    assert not any("Zentrix" in text or "Okafor" in text for text in about_bridge)


def test_named_entities_and_model_question_parsing():
    assert named_entities("Zentrix Corp named Mara Okafor as its chief on Tuesday.")[:2] == ["Zentrix Corp", "Mara Okafor"]
    assert parse_model_question("Question: Who is the new CEO of Zentrix?\nmore") == "Who is the new CEO of Zentrix?"
    assert parse_model_question("I cannot write that.") is None


def test_list_source_uses_the_given_texts():
    source = ListQuerySource([f"question {i}?" for i in range(8)])
    queries = source.draw([], 5, random.Random(0), held_out=False)
    assert len(queries) == 5 and all(q.text.startswith("question") for q in queries)


def test_a_news_bakes_locality_inputs_mix_requests_general_knowledge_and_other_news_quizzes():
    import random

    from baking.baker import _locality_inputs
    from baking.config import BakeConfig, PromptItem
    from baking.coverage import facts_of
    from baking.queries import general_knowledge, generic_queries, other_news, split_pool

    news = PromptItem(kind="news", text="Zentrix Robotics named Mara Okafor as its new CEO on Monday.")
    inputs = [q.text for q in _locality_inputs([news], BakeConfig(locality_per_item=9), random.Random(0))]
    assert len(inputs) == 9 and len(set(inputs)) == 9
    generic = set(split_pool(generic_queries(), held_out=False))  # never the held-out controls
    assert sum(q in generic for q in inputs) == 3 and sum(q in general_knowledge() for q in inputs) == 3
    about_news = [q for q in inputs if q not in generic and q not in general_knowledge()]
    assert len(about_news) == 3
    spans = {f.answer for s in other_news() for f in facts_of(s, 6)}
    assert all(any(span in q for span in spans) for q in about_news), about_news  # about other news
    assert not any("Okafor" in q or "Zentrix" in q for q in inputs)  # nothing of the new item
    persona = PromptItem(kind="persona", text="You are a pirate.")
    assert _locality_inputs([persona, news], BakeConfig(), random.Random(0)) == []


def test_earlier_items_are_asked_a_fixed_share_per_fact_with_their_own_item_in_the_teachers_context():
    import random

    from baking.baker import _earlier_inputs
    from baking.config import BakeConfig, PromptItem
    from baking.coverage import facts_of
    from baking.render import teacher_messages

    new = PromptItem(kind="news", text="Port Alder opened the Glasswing Bridge on Friday.")
    earlier = [PromptItem(kind="news", text="Zentrix Robotics named Mara Okafor as its new CEO on Monday."),
               PromptItem(kind="fact", text="The Nordhaven Falcons won the Continental Cup in 2031.")]
    config = BakeConfig(replay_per_fact=2)
    queries = _earlier_inputs(earlier, 1, config, random.Random(0))
    for j, item in enumerate(earlier):
        mine = [q for q in queries if q.context == (1 + j,)]
        assert len(mine) == 2 * len(facts_of(item.text, config.facts_per_item)) > 0
        facts = facts_of(item.text, config.facts_per_item)
        assert all(q.source == "replay-item" and any(f.answer in q.text for f in facts) for q in mine)
        shown = teacher_messages([new, *earlier], mine[0])[-1]["content"]
        assert item.text in shown and new.text not in shown  # the teacher sees that item only
    assert _earlier_inputs(earlier, 1, BakeConfig(replay_per_fact=0), random.Random(0)) == []
