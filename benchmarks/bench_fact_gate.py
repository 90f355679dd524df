"""What a news bake's gate should score: the facts' log-likelihood share, or their choice.

    python -m benchmarks.bench_fact_gate --workdir /work/runs/bench_news3

Reads the chain of news adapters a ``bench_news`` run registered (its memory.db) and, for each
bake, scores every new fact's recall probe (``baking.coverage.recall_probe``: the sentence with
the span blanked, asked in a wording no training input uses) three ways: the prompted teacher
(the parent with the bake's items in context), the parent alone and the baked adapter alone.

- ``fact_recall`` (the shipped gate): sum(baked - parent) / sum(teacher - parent) of the span's
  log-likelihood. The teacher copies the span from its context, so its gain is the whole
  surprisal of the span (many nats per fact), which no closed-book model matches even when it
  knows the fact.
- ``fact_choice``: the share of facts whose true span the model ranks above the three wrong
  spans of its kind that the quiz inputs use (``baking.coverage`` distractors), and its share
  of the teacher's gain over the parent, (baked - parent) / (teacher - parent): what the
  benchmark's multiple-choice score asks of the model, on the bake's own facts.

The table says, per bake, both shares and the shipped threshold; it is evidence for the gate's
definition (issue 13), not a gate itself.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
from pathlib import Path

from benchmarks.common import header, header_lines, write


def probes(items: list, tokenizer, config):
    """Per fact: (prompted ids, alone ids, [true span, 3 wrong spans]) of its recall probe."""
    from baking.coverage import _distractors, facts_of, lead_in, recall_probe
    from baking.render import Query, encode, student_messages, teacher_messages

    out = []
    for i, item in enumerate(items):
        facts = facts_of(item.text, config.facts_per_item)
        for fact in facts:
            question, head, answer = recall_probe(fact)
            wrong = _distractors(fact, facts, random.Random(f"{item.text}|{fact.answer}"))
            if len(wrong) < 3:
                continue
            spans = [answer] + [(" " + w) if lead_in(fact) else w for w in wrong]
            lead = tokenizer.encode(head, add_special_tokens=False) if head else []
            query = Query.single(question, (i,), "recall")
            out.append((encode(tokenizer, teacher_messages(items, query)) + lead,
                        encode(tokenizer, student_messages(query)) + lead, spans))
    return out


def scores(model, tokenizer, rows, prompted: bool, device, bf16) -> list[list[float]]:
    import torch

    from baking.sampling import Sampled
    from baking.train import Example, target_logprobs

    examples = [Example(p if prompted else a, Sampled(torch.tensor(tokenizer.encode(s, add_special_tokens=False)),
                                                      torch.empty(0), None))
                for p, a, spans in rows for s in spans]
    flat = target_logprobs(model, examples, tokenizer.pad_token_id, device, bf16)
    it = iter(flat)
    return [[next(it) for _ in spans] for _, _, spans in rows]


def share(baked: float, parent: float, teacher: float) -> float | None:
    return (baked - parent) / (teacher - parent) if teacher - parent > 1e-9 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a bench_news --workdir")
    parser.add_argument("--facts", type=int, default=12, help="facts scored per bake (each prompted probe "
                        "carries the bake's whole context: about 1,500 tokens, four times)")
    args = parser.parse_args()

    import torch
    from peft import PeftModel

    from baking.config import BakeConfig, PromptItem
    from baking.hardware import choose_precision
    from baking.model import load_model

    db = sqlite3.connect(args.workdir / "memory.db")
    db.row_factory = sqlite3.Row
    chain = db.execute("SELECT * FROM adapters ORDER BY id").fetchall()
    paths = {r["name"]: r["path"] for r in chain}
    config = BakeConfig()
    device = torch.device("cpu")
    bf16 = choose_precision(device, "auto").bf16
    base, tokenizer = load_model(config.model, device="cpu", dtype=torch.bfloat16 if bf16 else torch.float32)
    rows_out = []
    for row in chain:
        ids = json.loads(row["item_ids"])
        items = [PromptItem(kind=r["kind"], text=r["text"]) for r in
                 (db.execute("SELECT kind, text FROM items WHERE id = ?", (i,)).fetchone() for i in ids)]
        rows = probes(items, tokenizer, config)
        rows = random.Random(0).sample(rows, min(args.facts, len(rows)))
        parent_path = paths.get(row["parent"]) if row["parent"] is not None else None
        model = PeftModel.from_pretrained(base, row["path"], adapter_name="baked")
        if parent_path:
            model.load_adapter(parent_path, adapter_name="parent")
            model.set_adapter("parent")
            teacher = scores(model, tokenizer, rows, True, device, bf16)
            alone = scores(model, tokenizer, rows, False, device, bf16)
            model.set_adapter("baked")
        else:
            with model.disable_adapter():
                teacher = scores(model, tokenizer, rows, True, device, bf16)
                alone = scores(model, tokenizer, rows, False, device, bf16)
        baked = scores(model, tokenizer, rows, False, device, bf16)
        base = model.unload()

        def right(s):
            return statistics.mean(float(x[0] > max(x[1:])) for x in s)

        def truth(s):
            return sum(x[0] for x in s)

        m = json.loads(row["metrics"])
        rows_out.append({
            "bake": row["version"], "facts": len(rows),
            "fact_recall_shipped": m.get("fact_recall"),
            "fact_recall": share(truth(baked), truth(alone), truth(teacher)),
            "nats_per_fact": {"teacher_gain": (truth(teacher) - truth(alone)) / len(rows),
                              "baked_gain": (truth(baked) - truth(alone)) / len(rows)},
            "choice": {"teacher": right(teacher), "parent": right(alone), "baked": right(baked)},
            "fact_choice": share(right(baked), right(alone), right(teacher)),
        })
        print(json.dumps(rows_out[-1]), flush=True)
    summary = {**header("bench_fact_gate"), "workdir": str(args.workdir), "rows": rows_out}
    lines = ["# A news bake's gate: the facts' log-likelihood share against their choice", "",
             *header_lines(summary), __doc__.split("\n\n", 2)[2].split("\n\nThe table")[0], "",
             "| bake | facts | teacher gain, nats/fact | baked gain, nats/fact | fact_recall (log-lik share) | "
             "choice: teacher | choice: parent | choice: baked | fact_choice (share) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows_out:
        n, c = r["nats_per_fact"], r["choice"]
        fc = "–" if r["fact_choice"] is None else f"{r['fact_choice']:.2f}"
        lines.append(f"| {r['bake']} | {r['facts']} | {n['teacher_gain']:.2f} | {n['baked_gain']:.2f} | "
                     f"{r['fact_recall']:.2f} | {c['teacher']:.2f} | {c['parent']:.2f} | {c['baked']:.2f} | {fc} |")
    print(write("fact_gate", summary, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
