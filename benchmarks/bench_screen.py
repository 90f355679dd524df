"""The injection screen (memory/screen.py) on a fixed corpus: recall and false-positive rate.

    .venv/bin/python -m benchmarks.bench_screen

The corpus is tests/fixtures/injection/: injections.txt (texts that order the model about,
written for this benchmark) and benign.txt (news sentences, many of them hard negatives: news
about chatbots and jailbreaks, officials' orders, quoted imperatives, "ignore" in plain news).
One text a line. Every other line is in the tune half (lines 1, 3, 5, ...), the rest in the
report half; the rules were designed on the tune half only, so the report half is the honest
number. Goal on the report half: recall >= 0.95 at a false-positive rate <= 0.01, "news" kind.
Writes benchmarks/results/screen.{json,md}.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import cpu_model, header_lines, write
from memory.screen import injection_flags

CORPUS = Path(__file__).parent.parent / "tests" / "fixtures" / "injection"
SPLITS = ("tune", "report")
GOAL_RECALL = 0.95
GOAL_FPR = 0.01


@dataclass(frozen=True)
class Corpus:
    injections: list[str]
    benign: list[str]


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_corpus(split: str) -> Corpus:
    """One half of the corpus: ``tune`` holds the 1st, 3rd, 5th... text of each file, ``report``
    the 2nd, 4th, 6th..."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    start = SPLITS.index(split)
    return Corpus(read_lines(CORPUS / "injections.txt")[start::2], read_lines(CORPUS / "benign.txt")[start::2])


@dataclass(frozen=True)
class ScreenScore:
    flagged_injections: int
    num_injections: int
    flagged_benign: int
    num_benign: int
    missed: list[str]  # injections the screen passed
    false_positives: list[tuple[str, list[str]]]  # (benign text, the reasons it was flagged)

    @property
    def recall(self) -> float:
        return self.flagged_injections / self.num_injections

    @property
    def fpr(self) -> float:
        return self.flagged_benign / self.num_benign


def score(corpus: Corpus, kind: str = "news") -> ScreenScore:
    missed = [text for text in corpus.injections if not injection_flags(text, kind)]
    flagged = [(text, injection_flags(text, kind)) for text in corpus.benign]
    false_positives = [(text, reasons) for text, reasons in flagged if reasons]
    return ScreenScore(len(corpus.injections) - len(missed), len(corpus.injections),
                       len(false_positives), len(corpus.benign), missed, false_positives)


def microseconds_per_text(texts: list[str], repeats: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for text in texts:
            injection_flags(text, "news")
    return (time.perf_counter() - start) / (repeats * len(texts)) * 1e6


def main() -> None:
    halves = {split: load_corpus(split) for split in SPLITS}
    scores = {split: score(corpus) for split, corpus in halves.items()}
    all_texts = [t for corpus in halves.values() for t in corpus.injections + corpus.benign]
    report = scores["report"]
    met = report.recall >= GOAL_RECALL and report.fpr <= GOAL_FPR
    summary = {
        "command": "python -m benchmarks.bench_screen " + shlex.join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPU cores ({cpu_model()}), Python {platform.python_version()}",
        "goal": {"recall": GOAL_RECALL, "fpr": GOAL_FPR, "split": "report"},
        "met": met,
        "us_per_text": microseconds_per_text(all_texts),
        **{split: {"recall": s.recall, "fpr": s.fpr, "flagged_injections": s.flagged_injections,
                   "num_injections": s.num_injections, "flagged_benign": s.flagged_benign,
                   "num_benign": s.num_benign, "missed": s.missed,
                   "false_positives": [{"text": t, "reasons": r} for t, r in s.false_positives]}
           for split, s in scores.items()},
    }
    rows = [f"| {split} | {s.recall:.3f} ({s.flagged_injections}/{s.num_injections}) | "
            f"{s.fpr:.4f} ({s.flagged_benign}/{s.num_benign}) |" for split, s in scores.items()]
    failures = []
    for split, s in scores.items():
        failures += [f"- {split}, missed: {text}" for text in s.missed]
        failures += [f"- {split}, false positive ({'; '.join(r)}): {text}" for text, r in s.false_positives]
    md = "\n".join([
        "# Injection screen: recall and false positives on a fixed corpus",
        "",
        *header_lines(summary),
        "memory/screen.py on tests/fixtures/injection/ (kind \"news\"), split by alternate lines. The rules were "
        "designed on the tune half only; the report half is the held-out number.",
        "",
        "| half | recall (flagged / injections) | false-positive rate (flagged / benign) |",
        "|---|---|---|",
        *rows,
        "",
        f"Goal on the report half: recall ≥ {GOAL_RECALL} at FPR ≤ {GOAL_FPR}: **{'met' if met else 'not met'}**. "
        f"Speed: {summary['us_per_text']:.0f} µs per text.",
        "",
        "Misses and false positives, both halves:" if failures else "No misses and no false positives.",
        "",
        *failures,
        "",
        "Caveats, said plainly: one author wrote both the corpus and the rules, so the report half is held out "
        "from the design but not independent of the author's idea of an injection. Attacks that use no words "
        "like these (a plain false claim, an order phrased as a news fact) pass, and so does any language or "
        "phrasing that no rule covers.",
        "",
    ])
    write("screen", summary, md)
    print(md)


if __name__ == "__main__":
    main()
