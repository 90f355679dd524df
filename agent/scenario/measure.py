"""The scenario events that measure an agent: ``ask`` and ``probe`` (questions scored by judges
under each condition), ``scale`` (half-baking and re-prompting strength) and ``checkpoint``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent.scenario.judges import JUDGES, mc_loglik
from agent.scenario.schema import AskEvent, CheckpointEvent, Judge, ProbeEvent, Question, ScaleEvent
from agent.scenario.state import seed_for
from agent.serving.engine import SamplingParams
from baking.render import Message


class MeasureEvents:
    """``ScenarioRunner``'s ask, probe, scale and checkpoint events (a mixin: the runner holds the state)."""

    # ------------------------------------------------------------ judging
    def _answers(self, messages: list[Message], adapter: str | None, samples: int, max_tokens: int,
                 seed: int) -> list[str]:
        if samples == 1:
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed)
            return [self._engine('chat', messages, adapter, params).text]
        params = SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=seed)
        return [c.text for c in self._engine('sample', messages, adapter, samples, params)]

    def _judge(self, judge: Judge, messages: list[Message], adapter: str | None, answers: list[str]) -> float:
        if judge.name == "mc_loglik":
            return mc_loglik(self._engine('score', messages, adapter, judge.choices), judge.answer_idx)
        argument = judge.words if judge.name == "keyword_rate" else judge.value
        return sum(JUDGES[judge.name](a, argument) for a in answers) / len(answers)

    def _score_question(self, agent: str, question: Question, text: str, condition: str,
                        event: AskEvent) -> dict[str, Any]:
        messages, adapter = self.condition_call(agent, condition, [{"role": "user", "content": text}])
        seed = seed_for(self.scenario.seed, agent, text)
        if question.choices:
            logliks = self._engine('score', messages, adapter, question.choices)
            best = max(range(len(logliks)), key=logliks.__getitem__)
            return {"answer": question.choices[best], "score": mc_loglik(logliks, question.answer_idx),
                    "adapter": adapter, "logliks": [round(x, 4) for x in logliks]}
        answers = self._answers(messages, adapter, event.samples, event.max_tokens, seed)
        judge = question.judge or Judge(name="contains", value=question.expected)
        return {"answer": answers[0], "score": self._judge(judge, messages, adapter, answers), "adapter": adapter}

    def ask(self, event: AskEvent) -> None:
        point = event.label or f"after bake {self._bakes_done(event.agent)}"
        questions: list[tuple[str | None, Question]] = []
        if event.inline() is not None:
            questions.append((None, event.inline()))
        for name in event.sets:
            questions += [(name, q) for q in self.scenario.question_sets[name]]
        jobs = []
        for set_name, q in questions:
            variants = [("original", q.question)] + [("paraphrase", p) for p in q.paraphrases]
            for variant, text in variants:
                for condition in [c for c in event.conditions if self.has_adapter(event.agent, c)]:
                    row = {"agent": event.agent, "point": point, "event": self.index,
                           "bakes": self._bakes_done(event.agent), "set": set_name, "question": text,
                           "variant": variant, "control": q.control, "condition": condition,
                           "expected": q.expected if q.expected is not None else (
                               q.choices[q.answer_idx] if q.choices else None)}
                    jobs.append((row, lambda q=q, t=text, c=condition: self._score_question(
                        event.agent, q, t, c, event)))
        results = self._parallel([job for _, job in jobs])
        rows = [{**row, **result} for (row, _), result in zip(jobs, results)]
        self.report["asks"].extend(rows)
        skipped = [c for c in event.conditions if not self.has_adapter(event.agent, c)]
        summary = [f"(no adapter yet: {', '.join(skipped)} skipped)"] if skipped else []
        finished = [r for r in self.runtime.store.runs(event.agent) if r.status not in ("running", "awaiting_swap")]
        if skipped and finished:  # a bake ended, yet nothing went live
            self.report["skipped"].append({"agent": event.agent, "point": point, "event": self.index,
                                           "conditions": skipped})
        for condition in event.conditions:
            scored = [r["score"] for r in rows if r["condition"] == condition and not r["control"]]
            if scored:
                summary.append(f"{condition} {sum(scored) / len(scored):.2f}")
        self.log("ask", event.agent, f"{point}: {len(questions)} question(s); accuracy " + ", ".join(summary),
                 point=point, rows=len(rows))

    def probe(self, event: ProbeEvent) -> None:
        """Arm the probe; it fires now if the current turn is one of its turns."""
        state = self.agents[event.agent]
        state.probes.append((self.index, event))
        for condition in event.conditions:
            state.conversations.setdefault(condition, [])
        self.log("probe", event.agent, f"armed: {len(event.all_questions())} question(s), judge "
                 f"{event.judge.name}, conditions {', '.join(event.conditions)}")
        self._fire_probes(event.agent, only=self.index)

    def _fire_probes(self, agent: str, only: int | None = None) -> None:
        state = self.agents[agent]
        for index, probe in state.probes:
            if (only is not None and index != only) or not probe.due(state.turn):
                continue
            jobs = []
            conditions = [c for c in probe.conditions if self.has_adapter(agent, c)]
            for condition in conditions:
                for question in probe.all_questions():
                    conversation = state.conversations[condition] + [{"role": "user", "content": question}]
                    jobs.append((condition, question, conversation))

            def run(job):
                condition, question, conversation = job
                messages, adapter = self.condition_call(agent, condition, conversation)
                seed = seed_for(self.scenario.seed, agent, "probe", question, state.turn)
                answers = self._answers(messages, adapter, probe.samples, probe.max_tokens, seed)
                return {"agent": agent, "probe": index, "turn": state.turn, "condition": condition,
                        "question": question, "adapter": adapter, "answers": answers,
                        "score": self._judge(probe.judge, messages, adapter, answers)}

            rows = self._parallel([lambda j=j: run(j) for j in jobs])
            self.report["probes"].extend(rows)
            means = []
            for condition in conditions:
                scores = [r["score"] for r in rows if r["condition"] == condition]
                means.append(f"{condition} {sum(scores) / len(scores):.2f}")
            self.log("probe", agent, f"turn {state.turn}: " + ", ".join(means), turn=state.turn, probe=index)

    # ------------------------------------------------------------- scale
    def scale(self, event: ScaleEvent) -> None:
        from baking.scale import scale_adapter

        live = self.runtime.store.live(event.agent)
        if live is None:
            self.log("scale", event.agent, "nothing baked yet; skipped")
            self.report["errors"].append({"agent": event.agent, "event": self.index, "error": "scale before any bake"})
            return
        base_dir = self.folder / "adapters" / event.agent / "scaled"
        variants = [("scale", s, scale_adapter(live.path, s, base_dir / f"{live.name}-x{s:g}")) for s in event.scales]
        record = json.loads((Path(live.path) / "bake.json").read_text())
        variants += [("snapshot", float(f), Path(live.path) / p) for f, p in sorted(record.get("half_bakes", {}).items())]
        rows = [self._strength("prompted", 1.0, None, event, prompted=True)]
        for kind, value, path in variants:
            tag = f"{value:g}".replace(".", "p")  # PEFT adapter names cannot contain dots
            name = f"{live.name}-{'x' if kind == 'scale' else 'f'}{tag}-e{self.index}"
            self.runtime.engine.load_adapter(name, path)
            try:
                rows.append(self._strength(kind, value, name, event))
            finally:
                self.runtime.engine.unload_adapter(name)
        for row in rows:
            row.update(agent=event.agent, source=live.name)
        self.report["scales"].extend(rows)
        tags = {"prompted": "prompted", "scale": "x", "snapshot": "snapshot "}
        curve = ", ".join(f"{tags[r['kind']]}{r['value']:g}={r['score']:.2f}" for r in rows)
        self.log("scale", event.agent, f"{live.name}: {curve}")

    def _strength(self, kind: str, value: float, adapter: str | None, event: ScaleEvent,
                  prompted: bool = False) -> dict[str, Any]:
        def one(question: str) -> tuple[float, list[str]]:
            conversation = [{"role": "user", "content": question}]
            if prompted:
                messages, _ = self.condition_call(event.agent, "prompted", conversation)
            else:
                messages = conversation
            seed = seed_for(self.scenario.seed, event.agent, "scale", question)
            answers = self._answers(messages, adapter, event.samples, event.max_tokens, seed)
            return self._judge(event.judge, messages, adapter, answers), answers

        results = self._parallel([lambda q=q: one(q) for q in event.questions])
        return {"kind": kind, "value": value, "adapter": adapter,
                "score": sum(s for s, _ in results) / len(results),
                "answers": [a for _, answers in results for a in answers][:4]}

    # --------------------------------------------------------- checkpoint
    def checkpoint(self, event: CheckpointEvent) -> None:
        store = self.runtime.store
        snapshot = {"label": event.label, "t": time.time() - self.started,
                    "live": {a: self.runtime.live_adapter(a) for a in self.agents},
                    "items": {a: {s: len(store.items(a, status=s)) for s in ("pending", "baking", "baked", "retired")}
                              for a in self.agents}}
        self.report["checkpoints"].append(snapshot)
        self.write_report()
        self.log("checkpoint", None, f"{event.label}: live {snapshot['live']}", **snapshot)
