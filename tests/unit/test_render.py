from baking.config import PromptItem
from baking.render import Query, context_block, student_messages, system_prompt, teacher_messages

PERSONA = PromptItem(kind="persona", text="You are a pirate.")
RULE = PromptItem(kind="instruction", text="End every answer with 'Over.'")
NEWS_A = PromptItem(kind="news", text="Zentrix named Mara Okafor CEO.")
NEWS_B = PromptItem(kind="news", text="Port Avalon opened the Glasswing Bridge.")


def test_persona_and_instruction_go_to_the_system_prompt():
    items = [PERSONA, RULE]
    messages = teacher_messages(items, Query.single("Hi"))
    assert messages[0] == {"role": "system", "content": "You are a pirate.\nEnd every answer with 'Over.'"}
    assert messages[1] == {"role": "user", "content": "Hi"}


def test_news_goes_next_to_the_question_not_into_the_system_prompt():
    items = [PERSONA, NEWS_A]
    messages = teacher_messages(items, Query.single("Who leads Zentrix?", context=(1,)))
    assert NEWS_A.text not in messages[0]["content"]
    assert messages[-1]["content"] == context_block([NEWS_A.text]) + "Who leads Zentrix?"


def test_each_item_question_sees_only_its_own_item():
    items = [NEWS_A, NEWS_B]
    about_b = teacher_messages(items, Query.single("Tell me about the bridge.", context=(1,)))
    text = " ".join(m["content"] for m in about_b)
    assert NEWS_B.text in text and NEWS_A.text not in text
    assert system_prompt(items) is None and about_b[0]["role"] == "user"


def test_student_sees_no_baked_item():
    items = [PERSONA, NEWS_A]
    q = Query((("user", "Hi"), ("assistant", "Arr!"), ("user", "Who leads Zentrix?")), (1,))
    student = student_messages(q)
    assert student == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Arr!"},
        {"role": "user", "content": "Who leads Zentrix?"},
    ]
    teacher = teacher_messages(items, q)
    assert teacher[1:3] == student[:2]  # history unchanged, context only on the last turn


def test_query_must_end_with_a_user_turn():
    import pytest

    with pytest.raises(ValueError, match="user turn"):
        Query((("user", "Hi"), ("assistant", "Hello")))


def test_a_memory_item_becomes_a_prompt_item_by_one_rule_notes_as_facts():
    from types import SimpleNamespace

    for kind in ("persona", "instruction", "news", "fact"):
        item = PromptItem.of_memory(SimpleNamespace(kind=kind, text=" Be brief. ", id=7))
        assert item == PromptItem(kind=kind, text="Be brief.", id="7")
    assert PromptItem.of_memory(SimpleNamespace(kind="note", text="Room 4", id=8)) == PromptItem(kind="fact", text="Room 4", id="8")
