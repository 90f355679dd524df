"""Half-baking, re-prompting and Prompt Pursuit, measured on the same prompts.

    .venv/bin/python -m benchmarks.bench_pursuit            # 4 prompts, 3 pursuit rounds
    .venv/bin/python -m benchmarks.bench_pursuit --quick    # 1 prompt, 2 rounds

For each prompt (personas and instructions with programmatic judges, from bench_stability):

- **Half-bake.** The adapter's strength curve: lora_B × s for s in 0 … 1.5 (``scale_adapter``),
  and the snapshots saved at 25/50/75% of training.
- **Re-prompt.** The baked model with its prompt in context again (baked+prompted), against
  the prompted base model.
- **Prompt Pursuit.** Round r bakes the same prompt on top of round r−1's adapter; the teacher
  is that adapter with the prompt in context, so each round distils the re-prompted model.

Each model answers the same held-out questions with no prompt (except the prompted rows),
greedy, and the prompt's judge scores the answers.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.common import RESULTS, header, header_lines, write

SCALES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
FRACTIONS = (0.25, 0.5, 0.75)
PROMPT_NAMES = ("pirate", "french", "cowboy", "over")


class Judged:
    """Greedy answers to held-out questions from the base model and any adapter, judged."""

    def __init__(self, questions: list[str]) -> None:
        from baking.model import load_model

        self.model, self.tokenizer = load_model("smollm2-135m-instruct")
        self.questions = questions
        self.peft = None
        self.count = 0

    def rate(self, judge, adapter: Path | None, system: str | None) -> float:
        import contextlib

        from peft import PeftModel

        from baking.evaluate import generate

        conversations = [([{"role": "system", "content": system}] if system else [])
                         + [{"role": "user", "content": q}] for q in self.questions]
        if adapter is None:
            scope = self.peft.disable_adapter() if self.peft is not None else contextlib.nullcontext()
            model = self.peft or self.model
        else:
            name = f"a{self.count}"
            self.count += 1
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, str(adapter), adapter_name=name)
            else:
                self.peft.load_adapter(str(adapter), adapter_name=name)
            self.peft.set_adapter(name)
            scope, model = contextlib.nullcontext(), self.peft
        with scope:
            answers = generate(model, self.tokenizer, conversations, max_new_tokens=48)
        if adapter is not None and len(self.peft.peft_config) > 1:
            self.peft.delete_adapter(name)  # keep one loaded: the PEFT wrapper needs an adapter
        return statistics.mean(judge(a) for a in answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--prompts", nargs="+", default=list(PROMPT_NAMES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_pursuit"))
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.rounds, args.questions = args.prompts[:1], 2, 24

    from baking import BakeConfig, PromptItem, bake, scale_adapter
    from baking.evaluate import held_out_questions
    from benchmarks.bench_stability import prompts

    summary = header("bench_pursuit") | {"questions": args.questions, "rounds": args.rounds, "prompts": {}}
    judged = Judged(held_out_questions(args.questions))
    chosen = {p.name: p for p in prompts() if p.name in args.prompts}
    for name, p in chosen.items():
        items = [PromptItem(kind=p.kind, text=p.text)]
        row = {"judge": p.judge_doc, "base": judged.rate(p.judge, None, None),
               "prompted": judged.rate(p.judge, None, p.text), "rounds": [], "scale": {}, "snapshots": {}}
        parent = None
        for r in range(1, args.rounds + 1):
            out = args.workdir / name / f"round{r}"
            config = BakeConfig(seed=args.seed, device=args.device,
                                half_bake_fractions=list(FRACTIONS) if r == 1 else [])
            version = bake(items, out, config, parent=parent, overwrite=True, progress=False)
            row["rounds"].append({"round": r, "fidelity": version.fidelity, "wall_s": version.metrics["wall_s"],
                                  "baked": judged.rate(p.judge, out, None),
                                  "baked+prompted": judged.rate(p.judge, out, p.text)})
            print(f"{name} round {r}: {row['rounds'][-1]}", flush=True)
            if r == 1:
                for s in SCALES:
                    scaled = scale_adapter(out, s, args.workdir / name / f"scale{s:.2f}")
                    row["scale"][f"{s:.2f}"] = judged.rate(p.judge, scaled, None)
                for f, path in version.half_bakes.items():
                    row["snapshots"][f"{f:.2f}"] = judged.rate(p.judge, path, None)
                row["snapshots"]["1.00"] = row["rounds"][0]["baked"]
            parent = out
        summary["prompts"][name] = row
    name = "pursuit" + ("_quick" if args.quick else "")
    plot(summary, RESULTS / f"{name}.png")
    print(write(name, summary, render(summary, name)).read_text())


def mean_over(s: dict, get) -> float:
    return statistics.mean(get(row) for row in s["prompts"].values())


def render(s: dict, name: str) -> str:
    ps = s["prompts"]
    names = list(ps)
    lines = ["# Half-baking, re-prompting and Prompt Pursuit", "", *header_lines(s),
             f"Judge scores of greedy answers to {s['questions']} held-out questions, no prompt unless the row says "
             "prompted. Mean is over the prompts.", "",
             "## Strength curve (round-1 adapter, lora_B × s) and half-bake snapshots", "",
             "| s | " + " | ".join(names) + " | mean |", "|---|" + "---|" * (len(names) + 1)]
    for s_ in next(iter(ps.values()))["scale"]:
        lines.append(f"| scale {s_} | " + " | ".join(f"{ps[n]['scale'][s_]:.2f}" for n in names)
                     + f" | {mean_over(s, lambda r: r['scale'][s_]):.2f} |")
    for f in next(iter(ps.values()))["snapshots"]:
        lines.append(f"| snapshot at {f} of training | " + " | ".join(f"{ps[n]['snapshots'][f]:.2f}" for n in names)
                     + f" | {mean_over(s, lambda r: r['snapshots'][f]):.2f} |")
    lines += ["", "## Re-prompting and Prompt Pursuit", "", "| model | " + " | ".join(names) + " | mean |",
              "|---|" + "---|" * (len(names) + 1)]
    for label, get in (("base", lambda r: r["base"]), ("prompted", lambda r: r["prompted"])):
        lines.append(f"| {label} | " + " | ".join(f"{get(ps[n]):.2f}" for n in names) + f" | {mean_over(s, get):.2f} |")
    for i in range(s["rounds"]):
        for cond in ("baked", "baked+prompted"):
            get = lambda r, i=i, cond=cond: r["rounds"][i][cond]  # noqa: E731
            lines.append(f"| round {i + 1}: {cond} | " + " | ".join(f"{get(ps[n]):.2f}" for n in names)
                         + f" | {mean_over(s, get):.2f} |")
    gain = mean_over(s, lambda r: r["rounds"][0]["baked+prompted"] - r["prompted"])
    lines += ["", f"Re-prompt gain (round 1 baked+prompted − prompted): {gain:+.2f}.",
              "Pursuit gain per round (baked, round r − round r−1): " + ", ".join(
                  f"round {i + 1}: {mean_over(s, lambda r, i=i: r['rounds'][i]['baked'] - r['rounds'][i - 1]['baked']):+.2f}"
                  for i in range(1, s["rounds"])) + ".",
              "Fidelity per round (each against its own teacher): " + ", ".join(
                  f"round {i + 1}: {mean_over(s, lambda r, i=i: r['rounds'][i]['fidelity']):.3f}" for i in range(s["rounds"]))
              + ".", "", f"![pursuit]({name}.png)", ""]
    return "\n".join(lines)


def plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for n, row in s["prompts"].items():
        xs = [float(k) for k in row["scale"]]
        left.plot(xs, list(row["scale"].values()), marker="o", label=f"{n}: scale")
        left.plot([float(k) for k in row["snapshots"]], list(row["snapshots"].values()), marker="x", linestyle="--",
                  label=f"{n}: snapshot (x = training fraction)")
        left.axhline(row["prompted"], linestyle=":", color=left.lines[-1].get_color())
    left.set_xlabel("adapter scale s / fraction of training")
    left.set_ylabel("judge score")
    left.set_title("Strength curve (dotted: prompted base)")
    left.legend(fontsize=7)
    rounds = range(1, s["rounds"] + 1)
    for cond, style in (("baked", "-"), ("baked+prompted", "--")):
        ys = [mean_over(s, lambda r, i=i: r["rounds"][i - 1][cond]) for i in rounds]
        right.plot(list(rounds), ys, marker="o", linestyle=style, label=cond)
        for x, y in zip(rounds, ys):
            right.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    right.axhline(mean_over(s, lambda r: r["prompted"]), color="grey", linestyle=":", label="prompted base")
    right.set_xticks(list(rounds))
    right.set_xlabel("Prompt Pursuit round")
    right.set_ylabel("judge score, mean over prompts")
    right.set_title("Re-prompting and Prompt Pursuit")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
