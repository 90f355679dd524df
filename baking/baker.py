"""``bake()``: turn prompts into a LoRA adapter with Prompt Baking (arXiv 2409.13697).

It minimises KL(P_teacher(. | u, x) || P_student(. | x)) over trajectories y sampled from the
prompted teacher, where the teacher is the parent (adapter or base) with the prompt u in
context, and the student is the parent's LoRA trained further without u.

``_bake`` is the recipe: named steps, called top to bottom in the order a bake runs:

1. ``_load``: seeds, precision, the model and the parent adapter;
2. ``_draw_inputs``: user inputs x (held-out first, then training ones);
3. ``_sample_teacher``: teacher trajectories, once, keeping their log-probs (and
   ``_held_out_rows``: the held-out inputs' full-vocabulary teacher rows);
4. ``_evaluate``: KL(prompted || parent) on held-out inputs;
5. ``_train``: the LoRA student (snapshots at the half-bake fractions);
6. ``_evaluate``: KL(prompted || baked);
7. ``_metrics`` and 8. ``_write``: the adapter and ``bake.json``, atomically.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from baking.config import CONTEXT_KINDS, SYSTEM_KINDS, BakeConfig, PromptItem
from baking.faults import fault_point
from baking.cost import ModelShape, estimate_bake
from baking import conversations
from baking.coverage import (answerable, coverage_questions, facts_of, interleave, questions_by_fact,
                             recall_probe)
from baking.hardware import choose_precision, cpu_isa, matmul_flops, resolve_device
from baking.queries import (
    DefaultQuerySource,
    control_questions,
    QuerySource,
    general_knowledge,
    generic_queries,
    other_news,
    parse_model_question,
    question_writing_prompt,
    split_pool,
)
from baking.render import Query, encode, student_messages, teacher_messages
from baking.sampling import Sampled, sample
from baking.scale import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from baking.train import Example, mean_kl, target_logprobs, teacher_rows, train

BAKE_JSON = "bake.json"
MIN_FACT_GAIN = 0.1  # nats per fact; below it fact_recall is not measured (see _fact_recall)


class BakeError(ValueError):
    """A bake that cannot start: bad items, config, parent or output folder."""


@dataclass(frozen=True)
class AdapterVersion:
    """A baked adapter on disk: a PEFT folder vLLM can load, plus ``bake.json``."""

    path: Path
    parent: Path | None
    items: tuple[PromptItem, ...]
    metrics: dict[str, Any]
    half_bakes: dict[float, Path] = field(default_factory=dict)

    @property
    def fidelity(self) -> float:
        return self.metrics["fidelity"]

    @classmethod
    def load(cls, path: Path | str) -> "AdapterVersion":
        path = Path(path)
        record = json.loads((path / BAKE_JSON).read_text())
        return cls(
            path=path,
            parent=Path(record["parent"]) if record["parent"] else None,
            items=tuple(PromptItem(**item) for item in record["items"]),
            metrics=record["metrics"],
            half_bakes={float(f): path / p for f, p in record["half_bakes"].items()},
        )


def check_parent(parent: Path | str | None) -> Path | None:
    if parent is None:
        return None
    parent = Path(parent)
    if not (parent / ADAPTER_CONFIG).is_file() or not (parent / ADAPTER_WEIGHTS).is_file():
        raise BakeError(f"parent adapter {parent} not found (no {ADAPTER_CONFIG}/{ADAPTER_WEIGHTS})")
    return parent


def check_out(out: Path | str, overwrite: bool) -> Path:
    """Fail before any work if ``out`` cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BakeError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BakeError(f"--out {out} is not empty; pick a new folder or allow overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise BakeError(f"--out {out} is not writable: {e.strerror or e}") from e
    return out


def bake(
    items: Sequence[PromptItem],
    out: Path | str,
    config: BakeConfig | None = None,
    *,
    queries: QuerySource | None = None,
    parent: Path | str | None = None,
    replay: Sequence[str | Query] = (),
    earlier: Sequence[PromptItem] = (),
    overwrite: bool = False,
    progress: bool | Path = True,
) -> AdapterVersion:
    """Bake ``items`` into a LoRA adapter written to ``out``; returns its :class:`AdapterVersion`.

    Args:
        items: prompts to bake; personas/instructions go to the system prompt, news/facts next
            to the question (each item's own questions see only that item).
        out: adapter folder to create (written to a temp folder, renamed when complete).
        config: :class:`BakeConfig`; defaults if None.
        queries: source of user inputs x; the shipped pools by default.
        parent: adapter to start from; it is also the teacher (with the prompt in context).
        replay: inputs whose teacher is the parent *without* the new prompt, to keep old
            behaviour (generic answers).
        earlier: news/fact items baked before into ``parent``; each is re-taught with
            ``config.replay_per_fact`` inputs per fact from the teacher with that item in
            context, so the lineage keeps it. They are not evaluated or gated.
        progress: a rich progress display (True), none (False), or a JSON file to keep current
            for a display in another process (a path).
    """
    tmp = Path(out).parent / f".{Path(out).name}.tmp-{os.getpid()}"
    try:
        return _bake(items, out, config, queries, parent, replay, earlier, overwrite, progress, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a finished bake has renamed it already


def _bake(items, out, config, queries, parent, replay, earlier, overwrite, progress, tmp: Path):
    """The recipe: check → load → inputs → teacher → evaluate the parent → train → evaluate the
    baked student → write. Each step is one function below, in this order."""
    started = time.perf_counter()
    config = config or BakeConfig()
    items, earlier = _check_items(items, earlier)
    parent = check_parent(parent)
    out = check_out(out, overwrite)
    timings: dict[str, float] = {}
    kit = _load(config, parent, items, earlier, progress, timings)
    t = time.perf_counter()  # sampling_s counts drawing the inputs too
    inputs = _draw_inputs(kit, queries, replay)
    teacher = _sample_teacher(kit, inputs, replay, parent)
    timings["teacher_sampling_s"] = time.perf_counter() - t
    eval_examples, control_examples = _held_out_rows(kit, inputs, teacher.held_out)
    timings["sampling_s"] = time.perf_counter() - t
    before = _evaluate(kit, eval_examples, control_examples, timings, "parent")
    half_dirs, stats = _train(kit, teacher.examples, tmp, timings)
    after = _evaluate(kit, eval_examples, control_examples, timings, "baked", before.recall_student)
    kit.ui.close()
    metrics = _metrics(kit, inputs, teacher, stats, before, after, len(eval_examples)) | timings
    return _write(kit, tmp, out, parent, half_dirs, metrics, started)


def _check_items(items, earlier) -> tuple[tuple[PromptItem, ...], tuple[PromptItem, ...]]:
    items, earlier = tuple(items), tuple(earlier)
    if not items:
        raise BakeError("nothing to bake: give at least one prompt item")
    if any(it.kind not in CONTEXT_KINDS for it in earlier):
        raise BakeError("earlier items are re-taught in context: only news and facts can be given")
    return items, earlier


@dataclass
class _Kit:
    """What every step of a bake works with: the model and tokenizer, the prompt items, the
    precision, the seeded random sources, and the progress display."""

    config: BakeConfig
    items: tuple[PromptItem, ...]
    earlier: tuple[PromptItem, ...]
    model: Any
    tokenizer: Any
    device: torch.device
    precision: Any  # baking.hardware.Precision
    peak_flops: float
    generator: torch.Generator
    rng: random.Random
    ui: "_Progress"
    num_params: int
    shape: ModelShape
    eval_task: int | str | None = None  # the progress display's "evaluating" task

    @property
    def bf16(self) -> bool:
        return self.precision.bf16

    def teacher_ids(self, q: Query) -> list[int]:  # a query's context may index the earlier items too
        return encode(self.tokenizer, teacher_messages(self.items + self.earlier, q))

    def student_ids(self, q: Query) -> list[int]:
        return encode(self.tokenizer, student_messages(q))

    def sample(self, prompts: list[list[int]], topk: int | None, label: str, max_new: int | None = None) -> list[Sampled]:
        task = self.ui.task(f"sampling {label}", len(prompts))
        return sample(
            self.model, prompts, eos_id=self.tokenizer.eos_token_id, pad_id=self.tokenizer.pad_token_id,
            max_new_tokens=max_new or self.config.max_new_tokens, temperature=self.config.temperature,
            topk=topk, generator=self.generator, batch_size=self.config.sample_batch_size, bf16=self.bf16,
            on_batch=lambda n: (self.ui.advance(task, n), fault_point("sampling")),
        )

    def kl(self, examples: list[Example]) -> float:
        return mean_kl(self.model, examples, self.tokenizer.pad_token_id, self.device, self.bf16)

    def logprobs(self, examples: list[Example]) -> list[float]:
        return target_logprobs(self.model, examples, self.tokenizer.pad_token_id, self.device, self.bf16)


def _load(config: BakeConfig, parent: Path | None, items, earlier, progress: bool | Path,
          timings: dict[str, float]) -> _Kit:
    """1. Seeds and precision, then the model: bf16 weights when bf16 is native (the LoRA
    weights stay fp32), with the parent adapter (or a fresh LoRA)."""
    device = resolve_device(config.device)
    precision = choose_precision(device, config.dtype)  # bf16 only where native and faster
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    ui = _Progress(progress)
    # The reference rate for peak_share and the estimate: a matmul in the dtype training uses,
    # measured here (well under a second) so it shares threads and machine load.
    peak_flops = matmul_flops(device, precision.dtype)
    t = time.perf_counter()
    model, tokenizer = _load_base(config, device, precision.bf16)
    model = _with_lora(model, config, parent)
    _lora_dtype(model, torch.bfloat16 if precision.bf16 else torch.float32)
    num_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    shape = ModelShape.of(model.get_base_model())
    timings["load_s"] = time.perf_counter() - t
    return _Kit(config, items, earlier, model, tokenizer, device, precision, peak_flops, generator, rng, ui,
                num_params, shape)


@dataclass
class _Inputs:
    """The user inputs x of a bake, by what they are for."""

    train: list[Query]  # taught from the prompted teacher
    eval: list[Query]  # held out: fidelity
    control: list[Query]  # unrelated, held out: locality
    locality: list[Query]  # taught toward the base model or the un-prompted parent (locality_anchor)
    plans: list  # multi-turn conversations (baking.conversations)
    estimate: Any  # baking.cost.BakeEstimate


def _draw_inputs(kit: _Kit, queries: QuerySource | None, replay: Sequence[str | Query]) -> _Inputs:
    """2. Inputs x: held-out first (disjoint split), then training ones, then the bake's
    expected cost, then the questions the model writes itself."""
    config, items, rng = kit.config, kit.items, kit.rng
    source = queries or DefaultQuerySource(config.queries_per_fact, config.facts_per_item, config.coverage_directions)
    eval_queries = source.draw(items, config.num_eval_queries, rng, held_out=True)
    train_queries = source.draw(items, config.num_queries, rng, held_out=False)
    train_queries += _earlier_inputs(kit.earlier, len(items), config, rng)
    locality = _locality_inputs(items, config, rng)
    plans = conversations.plan(items, config, rng)
    control_queries = [Query.single(q, (), "control") for q in control_questions(config.num_control_queries)]
    estimate = _estimate(items, config, kit.shape, kit.precision.dtype, kit.peak_flops, train_queries,
                         eval_queries + control_queries, list(replay) + locality, plans, kit.teacher_ids,
                         kit.student_ids)
    kit.ui.note("estimate", estimate.as_dict(), f"estimate: {estimate.line()}")
    train_queries += _model_written_questions(items, config, kit.tokenizer, kit.sample)
    if not train_queries or not eval_queries:
        raise BakeError("the query source returned no inputs for these items")
    return _Inputs(train_queries, eval_queries, control_queries, locality, plans, estimate)


@dataclass
class _Teacher:
    """The teacher's trajectories, sampled once: training examples and the held-out samples."""

    examples: list[Example]
    held_out: list[Sampled]  # eval inputs, then control inputs
    replay_queries: list[Query]
    anchored: list[Query]  # locality inputs whose teacher is the base model
    talks: list[Example]  # multi-turn examples


def _sample_teacher(kit: _Kit, inputs: _Inputs, replay: Sequence[str | Query], parent: Path | None) -> _Teacher:
    """3. Teacher trajectories, once; log-probs are kept so training never re-runs the teacher.
    Every input decodes in the same wide batches (one wide batch is far cheaper per token on a
    CPU than several narrow ones), whatever its teacher."""
    config = kit.config
    topk = config.topk if config.loss == "topk" else None
    repeated = [q for q in inputs.train for _ in range(_samples_per(q, config))]
    # Control inputs: unrelated generic requests with no item context. Their teacher is the
    # parent with only the system-prompt items, so a news bake should leave them unchanged.
    evaluated = inputs.eval + inputs.control
    # Replay inputs' teacher is the parent without the new prompt: the same model with other prompts.
    replay_queries = [r if isinstance(r, Query) else Query.single(r, (), "replay") for r in replay]
    # Locality inputs anchored to the base model (config.locality_anchor) are sampled apart,
    # with the parent adapter off, so each bake pulls them back to base, not to a moved parent;
    # but never where the lineage holds a persona or instruction, which base would wear away.
    to_base = parent is not None and config.locality_anchor == "base" and not _lineage_has_system(parent)
    anchored = list(inputs.locality) if to_base else []
    replay_queries += [] if to_base else list(inputs.locality)
    # The conversations' replies, each to its user turn alone, by their plan's writer.
    replies = [(kit.teacher_ids if p.writer == "teacher" else kit.student_ids)(q)
               for p in inputs.plans for q in p.reply_queries()]
    prompts = ([kit.teacher_ids(q) for q in repeated + evaluated] + [kit.student_ids(q) for q in replay_queries]
               + replies)
    sampled = iter(kit.sample(prompts, topk, "teacher"))
    first_turns = [next(sampled) for _ in repeated]
    held_out = [next(sampled) for _ in evaluated]
    replayed = [next(sampled) for _ in replay_queries]
    examples = [Example(kit.student_ids(q), s) for q, s in zip(repeated, first_turns)]
    examples += [Example(kit.student_ids(q), s) for q, s in zip(replay_queries, replayed)]
    if anchored:
        with kit.model.disable_adapter():
            base_rows = kit.sample([kit.student_ids(q) for q in anchored], topk, "locality (base)")
        examples += [Example(kit.student_ids(q), s) for q, s in zip(anchored, base_rows)]
    reply_texts = [[kit.tokenizer.decode(next(sampled).tokens, skip_special_tokens=True).strip() for _ in p.users]
                   for p in inputs.plans]
    # Multi-turn: the teacher's rows at every assistant turn, teacher-forced with the prompt.
    talks = conversations.examples(kit.model, kit.tokenizer, kit.items, inputs.plans, reply_texts, topk=topk,
                                   device=kit.device, bf16=kit.bf16)
    return _Teacher(examples + talks, held_out, replay_queries, anchored, talks)


def _held_out_rows(kit: _Kit, inputs: _Inputs, held_out: list[Sampled]) -> tuple[list[Example], list[Example]]:
    """The held-out samples' full-vocabulary teacher rows, from one teacher-forced pass (fidelity
    is measured on the full KL), as (eval, control) examples for the un-prompted student."""
    evaluated = inputs.eval + inputs.control
    forced = teacher_rows(kit.model, [Example(kit.teacher_ids(q), s) for q, s in zip(evaluated, held_out)],
                          kit.tokenizer.pad_token_id, kit.device, kit.bf16)
    forced = [Example(kit.student_ids(q), ex.teacher) for q, ex in zip(evaluated, forced)]
    return forced[: len(inputs.eval)], forced[len(inputs.eval) :]


@dataclass
class _Measured:
    """How far the un-prompted model is from the prompted teacher (before or after training)."""

    kl: float  # KL(prompted || model) per token on the held-out inputs
    locality_kl: float  # KL(control teacher || model) per token on unrelated inputs
    recall: list[float]  # the new facts' log-likelihood, un-prompted
    recall_teacher: list[float]  # ... prompted (the teacher); measured before training only
    recall_student: list[Example]  # the un-prompted recall probes, re-measured after training


def _evaluate(kit: _Kit, eval_examples: list[Example], control_examples: list[Example], timings: dict[str, float],
              label: str, recall_student: list[Example] | None = None) -> _Measured:
    """4. (label "parent") and 6. (label "baked"): KL on held-out and control inputs, and the new
    facts' recall probes; the parent's pass also measures the prompted teacher's recall."""
    t = time.perf_counter()
    if recall_student is None:
        kit.eval_task = kit.ui.task("evaluating", 2)
    kl = kit.kl(eval_examples)
    locality = kit.kl(control_examples)
    recall_teacher: list[float] = []
    if recall_student is None:
        probes_teacher, recall_student = _recall_probes(kit.items, kit.config, kit.tokenizer)
        recall_teacher = kit.logprobs(probes_teacher)
    recall = kit.logprobs(recall_student)
    kit.ui.advance(kit.eval_task, 1, label)
    timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - t
    return _Measured(kl, locality, recall, recall_teacher, recall_student)


def _train(kit: _Kit, examples: list[Example], tmp: Path, timings: dict[str, float]) -> tuple[dict[float, Path], Any]:
    """5. Train the LoRA student, writing half-bake snapshots into the temp folder as training
    passes them. Returns the snapshots' folders (relative to the adapter) and the train stats."""
    config = kit.config
    shutil.rmtree(tmp, ignore_errors=True)
    steps_per_epoch = -(-len(examples) // config.batch_size)
    total_steps = config.max_steps or max(config.epochs * steps_per_epoch, config.min_steps)
    snapshot_steps = {max(1, round(f * total_steps)): f for f in config.half_bake_fractions}
    half_dirs = {f: Path("half_bakes") / f"f{f:.2f}" for f in config.half_bake_fractions}
    task = kit.ui.task("training", total_steps)
    stats = train(
        kit.model, examples, pad_id=kit.tokenizer.pad_token_id, epochs=config.epochs, max_steps=total_steps,
        batch_size=config.batch_size, lr=config.lr, lora_plus_ratio=config.lora_plus_ratio,
        warmup_fraction=config.warmup_fraction, grad_clip=config.grad_clip, device=kit.device, bf16=kit.bf16,
        generator=kit.generator, shape=kit.shape,
        snapshots={s: tmp / half_dirs[f] for s, f in snapshot_steps.items()},
        on_step=lambda step, total, loss: (kit.ui.advance(task, 1, f"loss {loss:.3f}"), fault_point("training")),
    )
    timings["training_s"] = stats.seconds
    timings |= {f"{phase}_s": seconds for phase, seconds in stats.phases.items()}
    return half_dirs, stats


def _metrics(kit: _Kit, inputs: _Inputs, teacher: _Teacher, stats: Any, before: _Measured, after: _Measured,
             num_eval: int) -> dict[str, Any]:
    """7. What bake.json records of the bake (the timings are added after these)."""
    config, items, examples = kit.config, kit.items, teacher.examples
    sources = Counter(q.source for q in inputs.train + teacher.replay_queries + teacher.anchored)
    return {
        "kl_base": before.kl,
        "kl_baked": after.kl,
        "fidelity": 1 - after.kl / before.kl if before.kl > 0 else float("nan"),
        # KL(control teacher || model) per token on unrelated inputs, after and before.
        "locality_kl": after.locality_kl,
        "locality_kl_parent": before.locality_kl,
        **_fact_recall(before.recall_teacher, before.recall, after.recall),
        "num_trajectories": len(examples),
        # Coverage: facts found per news/fact item and the training inputs drawn per direction.
        "facts_per_item": [len(facts_of(it.text, config.facts_per_item)) for it in items if it.kind in CONTEXT_KINDS],
        "queries_per_fact": config.queries_per_fact,
        # The modules actually adapted: a continued bake keeps its parent's, whatever the config.
        "target_modules": sorted(kit.model.peft_config["default"].target_modules),
        "inputs_by_source": dict(sorted(sources.items())) | ({"conversation": len(teacher.talks)} if teacher.talks else {}),
        "locality_anchor": "base" if teacher.anchored else ("parent" if inputs.locality else None),
        "num_conversations": len(teacher.talks),  # those trained on (a template that rewrites turns skips them)
        "conversation_turns": max((len(p.users) for p in inputs.plans), default=0),
        "num_eval_trajectories": num_eval,
        "teacher_tokens": int(sum(len(ex.positions) for ex in examples)),
        "train_steps": stats.steps,
        "train_tokens": stats.tokens,
        "train_tokens_per_s": stats.tokens / max(stats.seconds, 1e-9),
        "num_params": kit.num_params,
        # The matmul rate in the training dtype, and the share of it training reached: FLOPs
        # actually run (baking.cost: 4·N_body per forwarded token, 4·d·V per loss position).
        "peak_flops": kit.peak_flops,
        "peak_dtype": kit.precision.dtype,
        "train_flops": stats.flops,
        "peak_share": stats.flops / max(stats.seconds, 1e-9) / kit.peak_flops,
        "loss_first": stats.losses[0],
        "loss_last": stats.losses[-1],
        "dtype": kit.precision.dtype,
        "dtype_reason": kit.precision.reason,
        "cpu_isa": cpu_isa() if kit.device.type == "cpu" else None,
        "device": str(kit.device),
        "estimate_s": inputs.estimate.seconds,
        "estimate_phases_s": inputs.estimate.phases,
    }


def _write(kit: _Kit, tmp: Path, out: Path, parent: Path | None, half_dirs: dict[float, Path],
           metrics: dict[str, Any], started: float) -> AdapterVersion:
    """8. Write atomically: the adapter and ``bake.json`` into the temp folder, then rename it."""
    t = time.perf_counter()
    kit.model.save_pretrained(tmp)
    fault_point("writing")  # weights on disk, folder incomplete (no bake.json) and not renamed
    _vllm_compatible(tmp, kit.config)
    metrics["save_s"] = time.perf_counter() - t
    metrics["wall_s"] = time.perf_counter() - started
    record = {
        "config": kit.config.model_dump(),
        "parent": str(parent.resolve()) if parent else None,
        "items": [item.model_dump() for item in kit.items],
        # Earlier items re-taught here (their ids where they have them), for provenance.
        "replayed_items": [item.id or item.text[:60] for item in kit.earlier],
        "seed": kit.config.seed,
        "metrics": metrics,
        "half_bakes": {str(f): str(p) for f, p in half_dirs.items()},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / BAKE_JSON).write_text(json.dumps(record, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return AdapterVersion(path=out, parent=parent, items=kit.items, metrics=metrics,
                          half_bakes={f: out / p for f, p in half_dirs.items()})


def _load_base(config: BakeConfig, device: torch.device, bf16: bool):
    from baking.model import load_model

    model, tokenizer = load_model(config.model, device=str(device), dtype=torch.bfloat16 if bf16 else torch.float32)
    # Eager attention: on CPU its backward is several times faster than SDPA's flash kernel
    # for the short (< 512 token) sequences a bake trains on.
    if device.type == "cpu":
        model.set_attn_implementation("eager")
    return model, tokenizer


def _with_lora(model, config: BakeConfig, parent: Path | None):
    from peft import LoraConfig, PeftModel, get_peft_model

    if parent is not None:
        parent_cfg = json.loads((parent / ADAPTER_CONFIG).read_text())
        if parent_cfg.get("r") != config.lora_rank:
            raise BakeError(
                f"parent adapter {parent} has rank {parent_cfg.get('r')}, config asks "
                f"{config.lora_rank}; a continued bake keeps the parent's rank"
            )
        model = PeftModel.from_pretrained(
            model, str(parent), is_trainable=True, autocast_adapter_dtype=False
        )
    else:
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            target_modules=list(config.target_modules),
            lora_dropout=0.0,
            bias="none",  # vLLM serves neither LoRA biases, DoRA nor modules_to_save
            use_dora=False,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora, autocast_adapter_dtype=False)
    return model


def _lora_dtype(model, dtype: torch.dtype) -> None:
    """Give the LoRA weights the base model's dtype, so no layer casts its input (PEFT would
    cast each bf16 activation to an fp32 adapter's dtype and back). Training keeps fp32
    master copies for the optimizer (see baking.train)."""
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data = p.data.to(dtype)


def _estimate(items, config, shape, dtype, flops, train_queries, evaluated, replay, plans, teacher_ids, student_ids):
    """The bake's expected wall time here, from its inputs' token counts (baking.cost)."""
    context_items = sum(1 for it in items if it.kind in CONTEXT_KINDS)
    questions = 2 * config.model_questions_per_item * context_items
    written = [Query.single("What happened?", (0,), "model-written")] * (config.model_questions_per_item * context_items)
    trains = [q for q in train_queries + written for _ in range(_samples_per(q, config))]
    replays = [Query.single(r, (), "replay") if isinstance(r, str) else r for r in replay]
    replies = [q for p in plans for q in p.reply_queries()]
    # A conversation: each turn costs about a first turn's prompt (the template's header counted
    # every turn: a slight overestimate) plus a full reply; the loss is on the replies.
    turn = lambda q: len(student_ids(q)) + config.max_new_tokens  # noqa: E731
    talks = [(sum(turn(q) for q in p.reply_queries()), len(p.users) * config.max_new_tokens) for p in plans]
    question_len = len(teacher_ids(Query.single("x" * 40, (0,) if context_items else (), "q"))) + 40
    return estimate_bake(
        shape, dtype=dtype, flops_per_s=flops,
        sampled_prompts=([len(teacher_ids(q)) for q in trains + evaluated + replies]
                         + [len(student_ids(q)) for q in replays]),
        max_new_tokens=config.max_new_tokens,
        question_prompts=[question_len] * questions,
        train_prompts=[len(student_ids(q)) for q in trains + replays],
        conversations=talks,
        epochs_or_steps=(config.epochs, config.max_steps),
        min_steps=config.min_steps,
        batch_size=config.batch_size,
        eval_prompts=[len(student_ids(q)) for q in evaluated],
    )


def _samples_per(query: Query, config: BakeConfig) -> int:
    """Teacher samples per training input: news/fact inputs are many and distinct, so one each
    (distinct questions taught more than repeated answers to fewer: scenarios/quickstart.yaml);
    persona and generic inputs get ``trajectories_per_query``."""
    return 1 if query.context else config.trajectories_per_query


def _lineage_has_system(parent: Path) -> bool:
    """Whether ``parent`` or any adapter it was baked from holds a persona or instruction,
    from the chain of bake records; True where a record is missing or unreadable (unknown)."""
    seen: set[Path] = set()
    at: Path | None = parent
    while at is not None and at.resolve() not in seen:
        seen.add(at.resolve())
        try:
            record = json.loads((at / "bake.json").read_text())
        except (OSError, ValueError):
            return True
        if any(item.get("kind") in SYSTEM_KINDS for item in record.get("items", [])):
            return True
        at = Path(record["parent"]) if record.get("parent") else None
    return False


def _locality_inputs(items, config: BakeConfig, rng: random.Random) -> list[Query]:
    """Inputs a news/fact bake should not change, trained toward the base model or the parent
    without the new prompt (``locality_anchor``): generic requests, general-knowledge questions, and questions about
    other (made-up, never baked) news, taken in turn, ``locality_per_item`` per new item. The
    news questions have the forms the new facts are asked in (and open and quiz questions), so
    the student learns that only the new facts moved, not how it answers any news question. A
    persona or instruction bake is meant to change them all."""
    news_items = sum(1 for it in items if it.kind in CONTEXT_KINDS)
    if any(it.kind in SYSTEM_KINDS for it in items) or not news_items:
        return []
    generic = split_pool(generic_queries(), held_out=False)  # the held-out split holds the controls
    # Other news is asked in the bake's own directions (what the new facts are trained on),
    # plus open wh-questions and quizzes (how news is asked about in use).
    directions = list(dict.fromkeys([*config.coverage_directions, "wh", "quiz"]))
    news = interleave([[q for _, q in coverage_questions(text, 2, config.facts_per_item, rng, directions=directions)]
                       for text in other_news()])
    lanes = [rng.sample(lane, len(lane)) for lane in (generic, list(general_knowledge()), news)]
    picks = interleave(lanes)[: config.locality_per_item * news_items]
    return [Query.single(q, (), "locality") for q in picks]


def _earlier_inputs(earlier, offset: int, config: BakeConfig, rng: random.Random) -> list[Query]:
    """``replay_per_fact`` inputs per fact of each earlier item, asked as new items are
    (baking.coverage); the context index points past the new items, so the teacher sees the
    earlier item itself. The draw follows ``rng``, so each bake asks other wordings."""
    queries = []
    for j, item in enumerate(earlier if config.replay_per_fact else ()):
        by_fact = questions_by_fact(item.text, config.replay_per_fact, config.facts_per_item, rng,
                                    directions=config.coverage_directions)
        queries += [Query.single(q, (offset + j,), "replay-item") for _, q in interleave(by_fact)]
    return queries


def _model_written_questions(items, config, tokenizer, run_teacher) -> list[Query]:
    """Questions the model writes about each news/fact item, with the item in context; those
    the item cannot answer (:func:`baking.coverage.answerable`) are dropped."""
    context_items = [i for i, it in enumerate(items) if it.kind in CONTEXT_KINDS]
    if not context_items or config.model_questions_per_item == 0:
        return []
    prompts, owners = [], []
    for i in context_items:
        for _ in range(2 * config.model_questions_per_item):  # half of the drafts are unusable
            prompts.append(encode(tokenizer, question_writing_prompt(items[i].text)))
            owners.append(i)
    drafts = run_teacher(prompts, 1, "questions", max_new=32)
    found: dict[int, list[str]] = {i: [] for i in context_items}
    for i, draft in zip(owners, drafts):
        question = parse_model_question(tokenizer.decode(draft.tokens, skip_special_tokens=True))
        if (question and question not in found[i] and len(found[i]) < config.model_questions_per_item
                and answerable(question, items[i].text)):
            found[i].append(question)
    return [Query.single(q, (i,), "model-written") for i, qs in found.items() for q in qs]


def _recall_probes(items, config: BakeConfig, tokenizer) -> tuple[list[Example], list[Example]]:
    """Every new fact's recall probe (:func:`baking.coverage.recall_probe`), prompted (the
    item in context, as the teacher) and un-prompted (as the student): the answer span is the
    target after the question and the answer's lead-in."""
    prompted, alone = [], []
    for i, item in enumerate(items):
        for fact in facts_of(item.text, config.facts_per_item) if item.kind in CONTEXT_KINDS else []:
            question, head, answer = recall_probe(fact)
            query = Query.single(question, (i,), "recall")
            lead = tokenizer.encode(head, add_special_tokens=False) if head else []
            span = Sampled(torch.tensor(tokenizer.encode(answer, add_special_tokens=False)), torch.empty(0), None)
            prompted.append(Example(encode(tokenizer, teacher_messages(items, query)) + lead, span))
            alone.append(Example(encode(tokenizer, student_messages(query)) + lead, span))
    return prompted, alone


def _fact_recall(teacher: list[float], parent: list[float], baked: list[float]) -> dict[str, float | None]:
    """How much of the prompt's effect on the new facts' log-likelihood the bake captured:
    sum(baked - parent) / sum(teacher - parent) over the facts' recall probes, in the same
    shape as fidelity (1 is all of it, 0 none). Unlike the KL fidelity it is measured on the
    facts only, not on the wording of sampled answers, whose style a parent that has already
    baked news shares with its teacher. None when there are no facts or the prompt raises
    their likelihood by less than ``MIN_FACT_GAIN`` nats each on average: a share of almost
    nothing is noise (bf16 log-likelihoods of a multi-token span differ by a few hundredths)."""
    gain = sum(t - p for t, p in zip(teacher, parent))
    captured = sum(b - p for b, p in zip(baked, parent))
    n = max(len(teacher), 1)
    measurable = bool(teacher) and gain / n >= MIN_FACT_GAIN
    return {"fact_recall": captured / gain if measurable else None,
            "fact_gain_teacher": gain / n if teacher else None,  # nats per fact
            "fact_gain_baked": captured / n if teacher else None,
            "num_facts": len(teacher)}


def _vllm_compatible(folder: Path, config: BakeConfig) -> None:
    """Refuse to write an adapter vLLM would not load."""
    cfg = json.loads((folder / ADAPTER_CONFIG).read_text())
    problems = []
    if cfg.get("r", 0) > config.max_lora_rank:
        problems.append(f"rank {cfg.get('r')} > max_lora_rank {config.max_lora_rank}")
    if cfg.get("modules_to_save"):
        problems.append(f"modules_to_save={cfg['modules_to_save']}")
    if cfg.get("use_dora"):
        problems.append("DoRA")
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias={cfg['bias']}")
    if problems:
        raise BakeError(f"adapter in {folder} is not servable by vLLM: {', '.join(problems)}")


class _Progress:
    """Progress for sampling and training: a rich display (``True``), a JSON file another
    process can render (a path: {label: [done, total, info]} plus notes under ``_``-keys,
    rewritten atomically at most twice a second), or nothing (``False``)."""

    def __init__(self, enabled: bool | Path) -> None:
        self.bar = None
        self.file = Path(enabled) if isinstance(enabled, (str, Path)) else None
        self.state: dict[str, list] = {}
        self.written = 0.0
        if enabled is True:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.bar.start()

    def task(self, label: str, total: int) -> int | str | None:
        if self.file is not None:
            self.state[label] = [0, total, ""]
            self._write(force=True)
            return label
        return self.bar.add_task(label, total=total, info="") if self.bar else None

    def advance(self, task: int | str | None, n: int, info: str = "") -> None:
        if self.file is not None and task in self.state:
            self.state[task][0] += n
            self.state[task][2] = info
            self._write(force=self.state[task][0] >= self.state[task][1])
        elif self.bar is not None and task is not None:
            self.bar.update(task, advance=n, info=info)

    def _write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.written < 0.5:
            return
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.file)
        self.written = time.monotonic()

    def note(self, key: str, value: dict, line: str) -> None:
        """A record for watchers (``_<key>`` in the file) and a line on the rich display."""
        if self.file is not None:
            self.state[f"_{key}"] = value
            self._write(force=True)
        elif self.bar is not None:
            self.bar.console.print(line)

    def close(self) -> None:
        if self.file is not None:
            self._write(force=True)
        if self.bar is not None:
            self.bar.stop()
