import random

from baking.config import PromptItem
from baking.coverage import DIRECTIONS, answerable, coverage_questions, fact_inputs, facts_of, wh_question
from baking.queries import DefaultQuerySource

CEO = "Zentrix Robotics named Mara Okafor as its new chief executive officer on Monday."
CUP = "The Nordhaven Falcons won the 2031 Continental Cup, beating the Rio Tigers 3-1 in the final."


def test_facts_are_the_names_numbers_and_dates_of_the_item():
    facts = {(f.answer, f.kind) for f in facts_of(CEO, 10)}
    assert facts == {("Zentrix Robotics", "name"), ("Mara Okafor", "name"), ("Monday", "date")}
    cup = {f.answer for f in facts_of(CUP, 10)}
    assert {"Nordhaven Falcons", "Continental Cup", "Rio Tigers", "2031", "3-1"} <= cup
    assert len(facts_of(CUP, 2)) == 2


def test_every_fact_is_asked_from_every_direction_when_the_budget_allows():
    questions = coverage_questions(CEO, 6, 10, random.Random(0))
    assert len(questions) == 3 * 6  # per fact, not per bake
    for start in range(0, 18, 6):
        assert {d for d, _ in questions[start : start + 6]} == set(DIRECTIONS)
    texts = [q for _, q in questions]
    assert "Zentrix Robotics named who as its new chief executive officer on Monday?" in texts
    cloze = [q for d, q in questions if d == "cloze"]
    assert any("named ____ as its" in q for q in cloze)
    quiz = [q for d, q in questions if d == "quiz"]
    assert all(q.count(")") == 4 for q in quiz)
    assert any("Mara Okafor" in q and "named ____" in q for q in quiz)  # the true answer is an option


def test_a_bigger_budget_or_more_facts_gives_more_inputs():
    small = coverage_questions(CEO, 4, 10, random.Random(0))
    assert len(small) == 12 and len(coverage_questions(CUP, 4, 10, random.Random(0))) == 20
    assert len(coverage_questions(CEO, 8, 10, random.Random(0))) == 24


def test_held_out_inputs_are_never_trained_on():
    train = {q for _, q in coverage_questions(CUP, 20, 10, random.Random(0))}
    held = {q for _, q in coverage_questions(CUP, 20, 10, random.Random(0), held_out=True)}
    assert train and held and not train & held


def test_wh_questions_put_the_question_word_where_the_span_was():
    date = [f for f in facts_of(CEO, 10) if f.kind == "date"][0]
    assert wh_question(date) == "Zentrix Robotics named Mara Okafor as its new chief executive officer when?"


def test_an_item_without_names_still_gets_inputs():
    questions = coverage_questions("the cat sat on a mat and purred.", 3, 6, random.Random(0))
    assert len(questions) == 3


def test_model_written_questions_the_item_cannot_answer_are_dropped():
    assert answerable("Who is the new chief executive of Zentrix Robotics?", CEO)
    assert answerable("Which officer did the robotics company appoint on Monday as chief?", CEO)
    assert not answerable("What is the weather like today?", CEO)
    assert not answerable("Who won the Continental Cup?", CEO)


def test_the_query_source_budgets_news_per_fact_and_splits_held_out_over_items():
    items = [PromptItem(kind="news", text=CEO), PromptItem(kind="news", text=CUP)]
    source = DefaultQuerySource(queries_per_fact=2, facts_per_item=6)
    train = source.draw(items, 999, random.Random(0), held_out=False)
    assert len(train) == 2 * 3 + 2 * 5  # n does not cap news: the facts set the budget
    held = source.draw(items, 6, random.Random(0), held_out=True)
    assert len(held) == 6 and {q.context for q in held} == {(0,), (1,)}
    assert all(q.source.startswith("item:") for q in train + held)


def test_a_feed_headline_does_not_give_its_answer_away():
    # Feed items are "title: summary"; the title repeats the summary's names.
    item = "Zentrix names Mara Okafor chief: Zentrix Robotics named Mara Okafor as its new chief executive on Monday."
    facts = facts_of(item, 6)
    assert "Mara Okafor" in {f.answer for f in facts}
    for fact in facts:  # the title is a sentence of its own: the blank hides the only mention
        assert fact.answer not in fact.blanked and fact.answer not in wh_question(fact), fact


def test_spans_are_whole_words():
    may = [f for f in facts_of("Mayor Jane Alder said the bridge would open in May.", 6) if f.answer == "May"][0]
    assert may.blanked == "Mayor Jane Alder said the bridge would open in ____."
    assert [f.answer for f in facts_of("The G7 summit drew 7 leaders.", 6)] == ["7"]
    assert facts_of("The G7 summit drew 7 leaders.", 6)[0].blanked == "The G7 summit drew ____ leaders."


def test_number_items_get_distinct_quiz_options_and_a_clean_split():
    for item in ("Inflation fell to 2.4% in May.", "The Harlan Hawks beat the Ridge Owls 2-0 on Sunday.",
                 "The dam holds 300,000 cubic metres of water."):
        train = {q for _, q in coverage_questions(item, 30, 6, random.Random(0))}
        held = {q for _, q in coverage_questions(item, 30, 6, random.Random(0), held_out=True)}
        assert held and not train & held, item
        quizzes = [q for q in train | held if q.startswith("Which option")]
        assert all(len(set(q.splitlines()[2:6])) == 4 for q in quizzes), quizzes


def test_reverse_only_still_holds_out_inputs_for_number_and_date_items():
    # The shipped default asks from the reverse direction only; an item of figures and dates
    # must still give held-out inputs, or the bake would have nothing to measure.
    items = [PromptItem(kind="news", text=t) for t in ("Inflation fell to 2.4% in May.", "Prices rose 3% on Monday.")]
    source = DefaultQuerySource(queries_per_fact=16, facts_per_item=6, directions=("reverse",))
    train = source.draw(items, 48, random.Random(0), held_out=False)
    held = source.draw(items, 6, random.Random(0), held_out=True)
    assert len(held) == 6 and {q.context for q in held} == {(0,), (1,)}
    assert not {q.text for q in train} & {q.text for q in held}
    assert {q.source for q in train + held} == {"item:reverse"}


def test_a_recall_probe_asks_for_the_span_after_restating_the_sentence():
    from baking.coverage import Fact, recall_probe

    sentence = "Zentrix Robotics named Mara Okafor as its new CEO on Monday."
    assert recall_probe(Fact(sentence, "Mara Okafor", "name")) == (
        "Recall the news and fill the gap: Zentrix Robotics named ____ as its new CEO on Monday.",
        "Zentrix Robotics named", " Mara Okafor")
    # Never an input a bake trains on, whichever directions it uses.
    facts = facts_of(sentence, 6)
    inputs = {q for f in facts for qs in fact_inputs(f, facts, sentence, random.Random(0)).values() for q in qs}
    assert not {recall_probe(f)[0] for f in facts} & inputs
    question, head, answer = recall_probe(Fact(sentence, "Zentrix Robotics", "name"))
    assert head == "" and answer == "Zentrix Robotics"  # the span opens the sentence
