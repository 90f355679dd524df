"""The scenario schema: what `agent run scenario.yaml` reads.

A scenario names the model, engine, agents, memory limits, schedule, bake config and seed, and
a timeline of events. Every model forbids unknown fields, and a malformed file is rejected
before anything starts with the file, the line and the field (``agent.scenario.load``):

    scenario.yaml:14: timeline.2.question: Field required

Events (``type:`` picks one):

- ``feed``: memory items (or a JSONL/RSS file of headlines) for an agent;
- ``say``: user messages, scripted or from a user simulator, for long conversations;
- ``ask``: a question with an expected answer or multiple-choice options;
- ``probe``: a judged question asked at given turns of the conversation;
- ``bake``, ``wait_for_bake``, ``scale`` (half-bake strengths), ``checkpoint``;
- ``tool``: an explicit call of one of the agent's tools.

``ask`` and ``probe`` run under conditions: base, prompted, baked, baked+prompted.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.runtime.config import EngineConfig, GateConfig, ScheduleConfig
from baking.config import BakeConfig
from baking.model import DEFAULT_MODEL
from memory.kinds import ItemKind, Trust

Condition = Literal["base", "prompted", "baked", "baked+prompted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    persona: str | None = None
    instructions: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list, description="by name: remember, recall, news_feed, clock")


class MemorySpec(_Strict):
    max_item_chars: int = Field(2000, ge=1)
    auto_approve: list[Trust] = Field(
        default_factory=lambda: ["operator", "user"],
        description="trust levels that reach context and weights without approval; add 'feed' "
                    "and 'tool' to auto-approve fed headlines and tool-written memories (the "
                    "injection screen still holds flagged items for review)")


class Judge(_Strict):
    """A named judge from the registry, with its arguments."""

    name: Literal["contains", "regex", "keyword_rate", "language", "mc_loglik"]
    value: str | None = Field(None, description="contains: text; regex: pattern; language: 'fr', 'en'...")
    words: list[str] = Field(default_factory=list, description="keyword_rate: the keywords")
    choices: list[str] = Field(default_factory=list, description="mc_loglik: the options")
    answer_idx: int | None = Field(None, ge=0, description="mc_loglik: the right option")

    @model_validator(mode="after")
    def _arguments(self) -> "Judge":
        needs = {"contains": self.value, "regex": self.value, "language": self.value,
                 "keyword_rate": self.words, "mc_loglik": self.choices and self.answer_idx is not None}
        if not needs[self.name]:
            wanted = {"contains": "value", "regex": "value", "language": "value",
                      "keyword_rate": "words", "mc_loglik": "choices and answer_idx"}[self.name]
            raise ValueError(f"judge {self.name!r} needs {wanted}")
        if self.name == "mc_loglik" and self.answer_idx >= len(self.choices):
            raise ValueError(f"answer_idx {self.answer_idx} is out of range for {len(self.choices)} choices")
        return self


class FeedItem(_Strict):
    text: str
    kind: ItemKind = "news"


class FeedEvent(_Strict):
    type: Literal["feed"]
    agent: str
    items: list[FeedItem | str] = Field(default_factory=list)
    file: Path | None = Field(None, description="JSONL/RSS file or folder of headlines")
    kind: ItemKind = "news"

    @model_validator(mode="after")
    def _something(self) -> "FeedEvent":
        if not self.items and self.file is None:
            raise ValueError("a feed needs items or a file")
        return self


class Simulator(_Strict):
    """The model itself playing the user (roles flipped, a user-role system prompt)."""

    turns: int = Field(ge=1, le=500)
    user_prompt: str = ("You are a curious person chatting with an assistant. Reply to what it said "
                        "in one short sentence and ask it a new question.")
    temperature: float = Field(0.9, ge=0)
    max_tokens: int = Field(40, ge=1, le=512)


class SayEvent(_Strict):
    type: Literal["say"]
    agent: str
    messages: list[str] = Field(default_factory=list)
    simulator: Simulator | None = None
    max_tokens: int = Field(48, ge=1, le=1024, description="the agent's reply length")
    temperature: float = Field(0.7, ge=0, description="the agent's replies (seeded per turn)")

    @model_validator(mode="after")
    def _source(self) -> "SayEvent":
        if bool(self.messages) == bool(self.simulator):
            raise ValueError("say needs exactly one of messages or simulator")
        return self


class Question(_Strict):
    """A question with its scoring: ``expected`` (contains), ``choices`` (multiple-choice
    log-likelihood) or a ``judge``."""

    question: str
    expected: str | None = Field(None, description="scored by contains")
    choices: list[str] = Field(default_factory=list, description="scored by multiple-choice log-likelihood")
    answer_idx: int | None = None
    judge: Judge | None = None
    paraphrases: list[str] = Field(default_factory=list, description="generalization: same answer, other words")
    control: bool = Field(False, description="an unrelated question: locality")

    @model_validator(mode="after")
    def _scored(self) -> "Question":
        ways = sum([self.expected is not None, bool(self.choices), self.judge is not None])
        if ways != 1:
            raise ValueError("a question needs exactly one of expected, choices or judge")
        if self.choices and (self.answer_idx is None or not 0 <= self.answer_idx < len(self.choices)):
            raise ValueError("choices need an answer_idx within range")
        return self


class AskEvent(_Strict):
    """Questions asked fresh (no conversation history) under each condition."""

    type: Literal["ask"]
    agent: str
    question: str | None = None
    expected: str | None = Field(None, description="scored by contains")
    choices: list[str] = Field(default_factory=list, description="scored by multiple-choice log-likelihood")
    answer_idx: int | None = None
    judge: Judge | None = None
    paraphrases: list[str] = Field(default_factory=list, description="generalization")
    control: bool = Field(False, description="an unrelated question: locality")
    sets: list[str] = Field(default_factory=list, description="names of question_sets to ask")
    label: str | None = Field(None, description="a name for this point in the report (default: after bake N)")
    conditions: list[Condition] = Field(default_factory=lambda: ["base", "prompted", "baked"])
    samples: int = Field(1, ge=1, le=64, description="answers per question: 1 is greedy, more are sampled at T=1")
    max_tokens: int = Field(48, ge=1, le=1024)

    @model_validator(mode="after")
    def _scored(self) -> "AskEvent":
        if (self.question is None) == (not self.sets):
            raise ValueError("ask needs exactly one of question or sets")
        self.inline()  # an inline question is validated as a Question
        return self

    def inline(self) -> Question | None:
        if self.question is None:
            return None
        return Question(question=self.question, expected=self.expected, choices=self.choices,
                        answer_idx=self.answer_idx, judge=self.judge, paraphrases=self.paraphrases,
                        control=self.control)


class ProbeEvent(_Strict):
    """A judged question asked at given turns of the agent's conversation (with the history so
    far, not added to it), under each condition. Armed where it stands in the timeline."""

    type: Literal["probe"]
    agent: str
    question: str | None = None
    questions: list[str] = Field(default_factory=list, description="several probe questions, one judge")
    judge: Judge
    at_turns: list[int] = Field(default_factory=list, description="turns of the conversation to probe at")
    every_n_turns: int | None = Field(None, ge=1)
    conditions: list[Condition] = Field(default_factory=lambda: ["prompted", "baked", "baked+prompted"])
    samples: int = Field(1, ge=1, le=64, description="answers per question: 1 is greedy, more are sampled at T=1")
    max_tokens: int = Field(48, ge=1, le=1024)

    @model_validator(mode="after")
    def _when(self) -> "ProbeEvent":
        if not self.at_turns and self.every_n_turns is None:
            raise ValueError("probe needs at_turns or every_n_turns")
        if (self.question is None) == (not self.questions):
            raise ValueError("probe needs exactly one of question or questions")
        return self

    def all_questions(self) -> list[str]:
        return [self.question] if self.question is not None else list(self.questions)

    def due(self, turn: int) -> bool:
        return turn in self.at_turns or (self.every_n_turns is not None and turn % self.every_n_turns == 0)


class BakeEvent(_Strict):
    """Start a bake of the agent's pending memories in a worker process; serving goes on.
    ``rebake`` is Prompt Pursuit: the persona/instructions already baked are baked again, the
    teacher being the live adapter with the prompt."""

    type: Literal["bake"]
    agent: str
    rebake: bool = False
    config: dict[str, Any] = Field(default_factory=dict, description="BakeConfig fields for this bake only")

    @field_validator("config")
    @classmethod
    def _bake_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        BakeConfig.model_validate(config)  # unknown fields and bad values are errors here
        return config


class WaitForBakeEvent(_Strict):
    """Wait for the agent's bake to finish, then swap in a passing candidate.

    A bake that is progressing is never killed on a fixed clock: it is stopped when it stalls
    (no progress for ``stall_s``), or when it runs past ``limit_factor`` times its own estimate
    of its work on this machine (printed when it starts). ``timeout_s`` adds a hard cap.
    """

    type: Literal["wait_for_bake"]
    agent: str
    stall_s: float = Field(300, gt=0, description="stop a bake that reports no progress for this long")
    limit_factor: float = Field(4.0, ge=1, description="stop a bake after this many times its estimate "
                                "plus start_allowance_s")
    start_allowance_s: float = Field(120, ge=0, description="added to the limit (its clock starts when "
                                     "the worker writes its estimate, after any wait for the CPU turn)")
    timeout_s: float | None = Field(None, gt=0, description="optional hard cap in seconds")


class ScaleEvent(_Strict):
    """The half-bake strength curve: the live adapter with its LoRA delta scaled by each value
    (0 = base, 1 = the bake), and the bake's half-bake snapshots if it wrote any, each asked
    ``questions`` without the prompt and judged."""

    type: Literal["scale"]
    agent: str
    scales: list[float] = Field(min_length=1)
    questions: list[str] = Field(min_length=1)
    judge: Judge
    samples: int = Field(1, ge=1, le=64)
    max_tokens: int = Field(48, ge=1, le=1024)

    @field_validator("scales")
    @classmethod
    def _range(cls, scales: list[float]) -> list[float]:
        for s in scales:
            if not 0 <= s <= 2:
                raise ValueError(f"scale {s} is outside [0, 2]")
        return scales


class ToolEvent(_Strict):
    """Explicit tool use: the scenario calls one of the agent's tools; the call and its result
    go into the agent's conversation as a step (for models too small to call tools)."""

    type: Literal["tool"]
    agent: str
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class CheckpointEvent(_Strict):
    type: Literal["checkpoint"]
    label: str


Event = Annotated[
    Union[FeedEvent, SayEvent, AskEvent, ProbeEvent, BakeEvent, WaitForBakeEvent, ScaleEvent, ToolEvent,
          CheckpointEvent],
    Field(discriminator="type"),
]


class Scenario(_Strict):
    name: str
    description: str = ""
    model: str = DEFAULT_MODEL
    engine: EngineConfig = Field(default_factory=EngineConfig)
    agents: list[AgentSpec] = Field(min_length=1)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    bake: BakeConfig = Field(default_factory=BakeConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    seed: int = 0
    clock: datetime | None = Field(None, description="what the clock tool reports (a fixed time makes runs repeatable); default: the real time")
    question_sets: dict[str, list[Question]] = Field(default_factory=dict, description="named questions for ask.sets")
    timeline: list[Event] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_agents(self) -> "Scenario":
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        for i, event in enumerate(self.timeline):
            agent = getattr(event, "agent", None)
            if agent is not None and agent not in names:
                raise ValueError(f"timeline.{i}.agent: unknown agent {agent!r} (agents: {', '.join(names)})")
            if isinstance(event, ToolEvent):
                tools = next(a.tools for a in self.agents if a.name == agent)
                if event.name not in tools:
                    raise ValueError(f"timeline.{i}.name: unknown tool {event.name!r} for agent {agent!r} "
                                     f"(its tools: {', '.join(tools) or 'none'})")
            for name in getattr(event, "sets", None) or []:
                if name not in self.question_sets:
                    known = ", ".join(self.question_sets) or "none defined"
                    raise ValueError(f"timeline.{i}.sets: unknown question set {name!r} ({known})")
        return self
