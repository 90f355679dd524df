"""Assemble benchmarks/RESULTS.md: the hand-written summary, then every committed result file.

    .venv/bin/python -m benchmarks.build_results

Each result file in benchmarks/results/ already carries its command, date and machine; this
only puts them in one document, in the order below, with headings one level down.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
ORDER = (
    "news", "ablation", "stability", "stability_no_conversations", "fidelity", "pursuit",  # learning quality
    "persona_bake", "persona_bake_avx2", "emulation",  # cost of a bake, by machine class
    "reference", "swap_latency", "vllm_cpu", "vllm_cpu_beside", "context_vs_baked", "scaling", "load",  # cost
    "screen",  # guarantees
)


def main() -> None:
    parts = [(HERE / "SUMMARY.md").read_text().rstrip() + "\n"]
    for name in ORDER:
        path = HERE / "results" / f"{name}.md"
        quick = HERE / "results" / f"{name}_quick.md"
        if not path.is_file() and not quick.is_file():
            parts.append(f"## {name}\n\nNot run yet: no `results/{name}.md`.\n")
            continue
        text = path.read_text() if path.is_file() else quick.read_text().replace(
            "\n", "\n\n**Only the `--quick` mode has been run for this table.**\n", 1)
        # One level down, and image links relative to RESULTS.md.
        lines = [("#" + line if line.startswith("#") else line) for line in text.splitlines()]
        parts.append("\n".join(lines).replace("](", "](results/").replace("](results/http", "](http") + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
