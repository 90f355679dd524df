"""The scenario events that talk to an agent: ``feed`` (memories and headlines), ``say`` (a turn
of its live conversation, the user simulated where asked) and ``tool`` (a direct tool call)."""

from __future__ import annotations

import json
import random

from agent.loop import to_chat_dicts
from agent.scenario.schema import FeedEvent, SayEvent, ToolEvent
from agent.scenario.state import seed_for
from agent.serving.engine import SamplingParams
from baking.render import Message
from memory import MemoryInputError
from tools.registry import read_headlines


class TalkEvents:
    """``ScenarioRunner``'s feed, say and tool events (a mixin: the runner holds the state)."""

    def feed(self, event: FeedEvent) -> None:
        added, duplicates, refused, review = [], 0, [], []
        entries: list[tuple[str, str, str, str]] = []  # text, kind, source, trust
        for item in event.items:
            text, kind = (item, event.kind) if isinstance(item, str) else (item.text, item.kind)
            entries.append((text, kind, "scenario", "operator"))
        if event.file is not None:
            path = self.base_dir / event.file
            self.agents[event.agent].tools.news_path = path  # what the news_feed tool reads from now on
            for h in read_headlines(path):
                text = h["title"] + (f": {h['summary']}" if h.get("summary") else "")
                entries.append((text, event.kind, f"feed:{event.file}", "feed"))
        for text, kind, source, trust in entries:
            try:
                result = self.runtime.store.add(event.agent, text, kind, source=source, trust=trust)
            except MemoryInputError as e:  # refused with the reason; the run goes on
                refused.append({"text": text[:200], "reason": str(e)})
                continue
            if result.duplicate:
                duplicates += 1
            elif result.item.status == "review":
                review.append({"id": result.item.id, "text": text[:200], "trust": trust,
                               "flags": list(result.item.flags)})
            else:
                added.append(result.item.id)
        self.report["feeds"].append({"agent": event.agent, "event": self.index, "added": added,
                                     "duplicates": duplicates, "refused": refused, "review": review})
        extra = f", {duplicates} duplicate(s)" if duplicates else ""
        extra += (f", {len(review)} held for review (trust {review[0]['trust']}"
                  + (f", flagged: {', '.join(review[0]['flags'])}" if review[0]["flags"] else "") + ")") if review else ""
        extra += f", {len(refused)} refused: {refused[0]['reason']}" if refused else ""
        self.log("feed", event.agent, f"{len(added)} item(s) added (pending, in context until baked){extra}",
                 added=added, duplicates=duplicates, refused=refused)

    # -------------------------------------------------------- conversation
    def say(self, event: SayEvent) -> None:
        state = self.agents[event.agent]
        turns = len(event.messages) if event.messages else event.simulator.turns
        conditions = sorted({c for _, p in state.probes for c in p.conditions})
        for condition in conditions:
            state.conversations.setdefault(condition, [])
        for i in range(turns):
            seed = seed_for(self.scenario.seed, event.agent, state.turn)
            live_history = [m for m in to_chat_dicts(state.loop.history) if m["role"] in ("user", "assistant")]
            if event.messages:
                users = {c: event.messages[i] for c in ["live", *conditions]}
            else:  # each conversation has its own simulated user, who reacts to that conversation
                histories = {"live": live_history, **{c: state.conversations[c] for c in conditions}}
                simulated = self._parallel([lambda h=h: self._simulate_user(event, h, seed) for h in histories.values()])
                users = dict(zip(histories, simulated))
            user = users["live"]
            params = SamplingParams(temperature=event.temperature, max_tokens=event.max_tokens, seed=seed)
            state.live_params = params
            steps = state.loop.run(user)

            def reply(condition: str) -> str:
                conversation = state.conversations[condition] + [{"role": "user", "content": users[condition]}]
                messages, adapter = self.condition_call(event.agent, condition, conversation)
                return self._engine('chat', messages, adapter, params).text

            answers = self._parallel([lambda c=c: reply(c) for c in conditions])
            for condition, answer in zip(conditions, answers):
                state.conversations[condition] += [{"role": "user", "content": users[condition]},
                                                   {"role": "assistant", "content": answer}]
            state.turn += 1
            final = steps[-1]
            calls = [c.name for s in steps for c in s.tool_calls]
            self.log("say", event.agent, f"turn {state.turn}: {user[:60]!r} -> {final.output[:70]!r}"
                     + (f" (tools: {', '.join(calls)})" if calls else ""),
                     turn=state.turn, user=user, reply=final.output, adapter=final.adapter, tools=calls,
                     prompt_tokens=sum(s.prompt_tokens for s in steps), seconds=round(sum(s.seconds for s in steps), 3))
            self._fire_probes(event.agent)
        self._save_conversations(event.agent)

    def _simulate_user(self, event: SayEvent, history: list[Message], seed: int) -> str:
        """The base model playing the user of ``history``: roles flipped, a user-role system prompt."""
        sim = event.simulator
        flipped = [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in history]
        if not flipped or flipped[-1]["role"] != "user":
            flipped.append({"role": "user", "content": "Hello! What would you like to talk about?"})
        messages = [{"role": "system", "content": sim.user_prompt}, *flipped]
        params = SamplingParams(temperature=sim.temperature, max_tokens=sim.max_tokens, seed=seed)
        text = self._engine('chat', messages, None, params).text.strip().split("\n")[0].strip()
        if len(text) < 3:  # an empty or degenerate turn: a generic question keeps the talk going
            from baking.queries import generic_queries

            text = random.Random(seed).choice(generic_queries())
        return text

    def _save_conversations(self, agent: str) -> None:
        state = self.agents[agent]
        saved = {c: list(m) for c, m in state.conversations.items()}
        saved["live"] = [m for m in to_chat_dicts(state.loop.history)]
        self.report["conversations"][agent] = saved

    def tool(self, event: ToolEvent) -> None:
        step = self.agents[event.agent].loop.use_tool(event.name, event.args)
        result = step.observations[0].content
        self.log("tool", event.agent, f"{event.name}({json.dumps(event.args)}) -> {str(result)[:100]!r}",
                 name=event.name, args=event.args, result=result)
