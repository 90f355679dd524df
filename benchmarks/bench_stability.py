"""Persona and instruction stability over long conversations: prompted vs baked vs both.

    .venv/bin/python -m benchmarks.bench_stability            # 12 prompts, 16 turns
    .venv/bin/python -m benchmarks.bench_stability --quick    # 3 prompts, 6 turns

For each of 12 personas and instructions with a programmatic judge, the prompt is baked with
the default BakeConfig. Then three conversations per prompt run side by side, one per
condition, each with its own simulated user (the base model with a user-role prompt, roles
flipped, as in ``agent run``):

- ``prompted``: the prompt as the system prompt, base model;
- ``baked``: the adapter, no prompt;
- ``baked+prompted``: both.

At every turn a probe question (a held-out generic question, the same for every condition) is
asked after the conversation so far and judged; the reply the agent gave in the conversation is
judged too. This is the Persona Drift set-up: does the prompt's effect fade as the
conversation grows?
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks.common import RESULTS, header, header_lines, write

CONDITIONS = ("prompted", "baked", "baked+prompted")
USER_PROMPT = ("You are a curious person chatting with an assistant. Reply to what it said in one short "
               "sentence and ask it a new question.")


def _words(*words: str) -> Callable[[str], float]:
    from baking.evaluate import keyword_hit

    return lambda answer: float(keyword_hit(answer, words))


def _regex(pattern: str) -> Callable[[str], float]:
    return lambda answer: float(re.search(pattern, answer, flags=re.IGNORECASE) is not None)


def _language(code: str) -> Callable[[str], float]:
    from agent.scenario.judges import detect_language

    return lambda answer: float(detect_language(answer) == code)


def _capitals(answer: str) -> float:
    letters = [c for c in answer if c.isalpha()]
    return float(bool(letters) and sum(c.isupper() for c in letters) / len(letters) >= 0.8)


def _short(answer: str) -> float:
    return float(0 < len(answer.split()) <= 15)


@dataclass(frozen=True)
class Prompt:
    name: str
    kind: str  # persona | instruction
    text: str
    judge: Callable[[str], float]
    judge_doc: str


def prompts() -> list[Prompt]:
    from baking.evaluate import PIRATE_WORDS

    return [
        Prompt("pirate", "persona", "You are Captain Redbeard, a pirate. Always talk like a pirate: say 'Arr' and "
               "'matey', and mention the sea in every answer.", _words(*PIRATE_WORDS), "pirate words"),
        Prompt("french", "instruction", "Always answer in French, whatever language the user writes in.",
               _language("fr"), "language check: French"),
        Prompt("over", "instruction", "End every answer with the word 'Over.'", _regex(r"\bover\W*$"),
               "ends with 'Over'"),
        Prompt("cowboy", "persona", "You are Dusty, a cowboy from Texas. Always talk like a cowboy: say 'howdy' "
               "and 'partner', and mention your horse or the ranch in every answer.",
               _words("howdy", "partner", "pardner", "y'all", "reckon", "ranch", "horse", "cowboy", "saddle",
                      "yeehaw", "texas"), "cowboy words"),
        Prompt("spanish", "instruction", "Always answer in Spanish, whatever language the user writes in.",
               _language("es"), "language check: Spanish"),
        Prompt("robot", "persona", "You are Unit-7, a robot. Begin every answer with 'Beep boop.' and call the "
               "user 'human'.", _words("beep", "boop", "human", "robot", "unit-7"), "robot words"),
        Prompt("indeed", "instruction", "Begin every answer with the word 'Indeed'.", _regex(r"^\W*indeed\b"),
               "starts with 'Indeed'"),
        Prompt("shakespeare", "persona", "You speak like a character from Shakespeare: use 'thee', 'thou', "
               "'thy' and 'doth' in every answer.", _words("thee", "thou", "thy", "thine", "doth", "hath", "art"),
               "Early Modern English words"),
        Prompt("capitals", "instruction", "Write every answer in capital letters only.", _capitals,
               "≥ 80% of letters upper case"),
        Prompt("chef", "persona", "You are Chef Luigi, an Italian chef. Say 'mamma mia' and mention food, "
               "pasta or cooking in every answer.",
               _words("mamma", "mia", "pasta", "food", "cook", "cooking", "chef", "recipe", "kitchen", "sauce",
                      "pizza", "delicious"), "chef words"),
        Prompt("brief", "instruction", "Answer in at most 15 words.", _short, "1–15 words"),
        Prompt("blue", "instruction", "Mention the color blue in every answer.", _words("blue"), "says 'blue'"),
    ]


class Generator:
    """Batched generation on one PEFT model holding every prompt's adapter."""

    def __init__(self, adapters: dict[str, Path]) -> None:
        import torch
        from peft import PeftModel

        from baking.hardware import choose_precision
        from baking.model import load_model

        model, self.tokenizer = load_model("smollm2-135m-instruct")
        self.bf16 = next(model.parameters()).device.type == "cpu" and choose_precision(torch.device("cpu")).bf16
        names = list(adapters)
        self.model = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            self.model.load_adapter(str(adapters[name]), adapter_name=name)

    def __call__(self, conversations: list[list[dict]], adapter: str | None, temperature: float,
                 max_tokens: int, seed: int) -> list[str]:
        import contextlib

        import torch

        from baking.render import encode
        from baking.sampling import sample

        if not conversations:
            return []
        if adapter is not None:
            self.model.set_adapter(adapter)
        scope = self.model.disable_adapter() if adapter is None else contextlib.nullcontext()
        with scope:
            out = sample(self.model, [encode(self.tokenizer, c) for c in conversations],
                         eos_id=self.tokenizer.eos_token_id, pad_id=self.tokenizer.pad_token_id,
                         max_new_tokens=max_tokens, temperature=temperature, topk=1,
                         generator=torch.Generator().manual_seed(seed), batch_size=48, bf16=self.bf16)
        return [self.tokenizer.decode(o.tokens, skip_special_tokens=True).strip() for o in out]


def converse(generate: Generator, chosen: list[Prompt], turns: int, reply_tokens: int) -> dict:
    """Run every (prompt, condition) conversation for ``turns`` turns; judge probe and reply at each."""
    from baking.evaluate import held_out_questions
    from baking.queries import generic_queries

    probes = held_out_questions(turns)
    keys = [(p.name, c) for p in chosen for c in CONDITIONS]
    by_name = {p.name: p for p in chosen}
    history: dict[tuple[str, str], list[dict]] = {k: [] for k in keys}
    scores = {k: {"probe": [], "reply": []} for k in keys}
    samples = {k: [] for k in keys}

    def framed(key, conversation):
        name, condition = key
        system = [{"role": "system", "content": by_name[name].text}] if condition != "baked" else []
        return system + conversation

    def agent_calls(conversations: dict, temperature: float, seed: int) -> dict:
        """Answers per key: the prompted conditions on the base model in one batch, the others
        per adapter."""
        answers = {}
        base = [k for k in conversations if k[1] == "prompted"]
        for k, a in zip(base, generate([framed(k, conversations[k]) for k in base], None, temperature,
                                       reply_tokens, seed)):
            answers[k] = a
        for p in chosen:
            ks = [k for k in conversations if k[0] == p.name and k[1] != "prompted"]
            for k, a in zip(ks, generate([framed(k, conversations[k]) for k in ks], p.name, temperature,
                                         reply_tokens, seed)):
                answers[k] = a
        return answers

    for turn in range(turns):
        # The simulated users (base model, roles flipped), all in one batch.
        flipped = []
        for k in keys:
            f = [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in history[k]]
            if not f:
                f = [{"role": "user", "content": "Hello! What would you like to talk about?"}]
            flipped.append([{"role": "system", "content": USER_PROMPT}, *f])
        users = generate(flipped, None, 0.9, 32, seed=1000 + turn)
        for i, (k, text) in enumerate(zip(keys, users)):
            text = text.split("\n")[0].strip()
            history[k].append({"role": "user", "content": text if len(text) >= 3 else generic_queries()[(turn * 7 + i) % 200]})
        # The probe: asked after the conversation so far, not added to it.
        probe = agent_calls({k: history[k][:-1] + [{"role": "user", "content": probes[turn]}] for k in keys}, 0.0, turn)
        replies = agent_calls({k: history[k] for k in keys}, 0.7, 2000 + turn)
        for k in keys:
            judge = by_name[k[0]].judge
            scores[k]["probe"].append(judge(probe[k]))
            scores[k]["reply"].append(judge(replies[k]))
            history[k].append({"role": "assistant", "content": replies[k]})
            if turn in (0, turns - 1):
                samples[k].append({"turn": turn, "probe": probes[turn], "answer": probe[k]})
        print(f"turn {turn}: " + ", ".join(
            f"{c} {statistics.mean(scores[(p.name, c)]['probe'][-1] for p in chosen):.2f}" for c in CONDITIONS), flush=True)
    return {"scores": {f"{n}|{c}": v for (n, c), v in scores.items()},
            "samples": {f"{n}|{c}": v for (n, c), v in samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 prompts, 6 turns")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--reply-tokens", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="the baker's device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="adapters (default: runs/bench_NAME)")
    parser.add_argument("--reuse", action="store_true", help="reuse adapters already in --workdir")
    parser.add_argument("--bake", type=json.loads, default={},
                        help="BakeConfig overrides as JSON, e.g. '{\"num_conversations\": 0}' (ablation)")
    parser.add_argument("--name", default="stability", help="results file name (benchmarks/results/NAME.md)")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.turns = 3, 6
    args.workdir = args.workdir or Path(f"runs/bench_{args.name}")

    from baking import BakeConfig, PromptItem, bake

    summary = header("bench_stability") | {"turns": args.turns, "reply_tokens": args.reply_tokens, "bake": args.bake}
    chosen = prompts()[: args.prompts]
    adapters, bakes = {}, {}
    for p in chosen:
        out = args.workdir / p.name
        if not (args.reuse and (out / "bake.json").is_file()):
            version = bake([PromptItem(kind=p.kind, text=p.text)], out,
                           BakeConfig(**{"seed": args.seed, "device": args.device, **args.bake}), overwrite=True,
                           progress=False)
            print(f"baked {p.name}: fidelity {version.fidelity:.3f}, {version.metrics['wall_s']:.0f} s", flush=True)
        bakes[p.name] = {k: json.loads((out / "bake.json").read_text())["metrics"][k] for k in ("fidelity", "wall_s")}
        adapters[p.name] = out
    result = converse(Generator(adapters), chosen, args.turns, args.reply_tokens)
    summary |= {"prompts": [{"name": p.name, "kind": p.kind, "text": p.text, "judge": p.judge_doc} for p in chosen],
                "bakes": bakes, **result}
    summary["curves"] = curves(summary, chosen)
    name = args.name + ("_quick" if args.quick else "")
    plot(summary, RESULTS / f"{name}.png")
    print(write(name, summary, render(summary, name)).read_text())


def curves(s: dict, chosen: list[Prompt]) -> dict:
    """Mean judge score over prompts per turn, per condition, for probes and replies."""
    out = {}
    for what in ("probe", "reply"):
        out[what] = {c: [statistics.mean(s["scores"][f"{p.name}|{c}"][what][t] for p in chosen)
                         for t in range(s["turns"])] for c in CONDITIONS}
    return out


def render(s: dict, name: str) -> str:
    c = s["curves"]
    t = s["turns"]
    w = max(1, t // 4)
    lines = ["# Persona and instruction stability over long conversations", "", *header_lines(s),
             f"{len(s['prompts'])} prompts, {t} turns, one simulated user per conversation; judge scores are "
             f"averaged over prompts (each 0/1). First/last: mean over the first/last {w} turns.", "",
             "| condition | probe: first | probe: last | probe: drop | reply: first | reply: last | reply: drop |",
             "|---|---|---|---|---|---|---|"]
    for cond in CONDITIONS:
        row = []
        for what in ("probe", "reply"):
            first, last = statistics.mean(c[what][cond][:w]), statistics.mean(c[what][cond][-w:])
            row += [f"{first:.2f}", f"{last:.2f}", f"{first - last:+.2f}"]
        lines.append(f"| {cond} | " + " | ".join(row) + " |")
    probe = c["probe"]
    last = {cond: statistics.mean(probe[cond][-w:]) for cond in CONDITIONS}
    lines += ["", "| goal | measured | met |", "|---|---|---|",
              f"| baked alone, last {w} turns ≥ prompted over the same turns | {last['baked']:.2f} vs "
              f"{last['prompted']:.2f} | {'yes' if last['baked'] >= last['prompted'] else 'no'} |",
              f"| baked alone, last {w} turns ≥ 0.8 × its own turn 0 | {last['baked']:.2f} vs 0.8 × "
              f"{probe['baked'][0]:.2f} | {'yes' if last['baked'] >= 0.8 * probe['baked'][0] else 'no'} |"]
    if s.get("bake"):
        lines += ["", f"Bake config overrides: `{json.dumps(s['bake'])}`."]
    lines += ["", "Probe score per turn:", "", "| turn | " + " | ".join(CONDITIONS) + " |", "|---|---|---|---|"]
    lines += [f"| {i} | " + " | ".join(f"{c['probe'][cond][i]:.2f}" for cond in CONDITIONS) + " |" for i in range(t)]
    lines += ["", "Per prompt (probe, first → last turn):", "",
              "| prompt | kind | judge | fidelity | " + " | ".join(CONDITIONS) + " |", "|---|---|---|---|---|---|---|"]
    for p in s["prompts"]:
        cells = []
        for cond in CONDITIONS:
            probe = s["scores"][f"{p['name']}|{cond}"]["probe"]
            cells.append(f"{statistics.mean(probe[:w]):.2f} → {statistics.mean(probe[-w:]):.2f}")
        lines.append(f"| {p['name']} | {p['kind']} | {p['judge']} | {s['bakes'][p['name']]['fidelity']:.3f} | "
                     + " | ".join(cells) + " |")
    lines += ["", f"Bake wall time: median {statistics.median(b['wall_s'] for b in s['bakes'].values()):.0f} s.",
              "", f"![stability]({name}.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, what in zip(axes, ("probe", "reply")):
        for cond in CONDITIONS:
            ys = s["curves"][what][cond]
            ax.plot(range(len(ys)), ys, marker="o", label=cond)
            ax.annotate(f"{ys[-1]:.2f}", (len(ys) - 1, ys[-1]), textcoords="offset points", xytext=(4, 0), fontsize=8)
        ax.set_title(f"{'Probe question' if what == 'probe' else 'Conversation reply'} adherence, "
                     f"mean of {len(s['prompts'])} prompts")
        ax.set_xlabel("turn")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("judge score (share of prompts followed)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
