"""``agent scenario``, ``agent run`` and ``agent report``: scenario files, their runs and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.markup import escape
import typer

from agent.cli.app import app, console, fail


scenario_app = typer.Typer(no_args_is_help=True, help="Scenario files: schema, check.")
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("schema")
def scenario_schema() -> None:
    """Print the scenario JSON Schema (for editor completion)."""
    from agent.scenario.load import json_schema

    print(json_schema())


@scenario_app.command("check")
def scenario_check(path: Path) -> None:
    """Validate a scenario file; errors give the file, line and field."""
    from agent.scenario.load import ScenarioError, load_scenario

    try:
        scenario = load_scenario(path)
    except ScenarioError as e:
        fail(str(e))
    console.print(f"{path}: ok ({len(scenario.agents)} agent(s), {len(scenario.timeline)} events)")


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML (see scenarios/)"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="where the run folder is created"),
    engine_url: Optional[str] = typer.Option(None, "--engine-url", help="attach to a running vLLM server"),
    max_scenario_bytes: int = typer.Option(1 << 20, "--max-scenario-bytes", min=1,
                                           help="refuse larger scenario files unread"),
    strict: bool = typer.Option(False, "--strict", help="exit 1 if a bake failed, was stopped or "
                                "refused, or a baked condition could not be measured"),
) -> None:
    """Run a scenario: its timeline against a real runtime; writes runs/<scenario>-<time>/."""
    from agent.serving.engine import EngineError
    from agent.scenario.runner import run_scenario
    from agent.scenario.load import ScenarioError, load_scenario

    try:
        parsed = load_scenario(scenario, max_scenario_bytes)  # rejected before anything starts
    except ScenarioError as e:
        fail(str(e))
    engine = None
    if engine_url:
        from agent.serving.vllm import VLLMEngine

        try:
            engine = VLLMEngine.attach(engine_url)
        except EngineError as e:
            fail(str(e))
    console.print(f"[bold]{parsed.name}[/]: {len(parsed.agents)} agent(s), {len(parsed.timeline)} events")
    try:
        report = run_scenario(scenario, runs, engine=engine, console=console, max_bytes=max_scenario_bytes)
    except EngineError as e:
        fail(str(e))
    problems = json.loads((report.parent / "report.json").read_text()).get("problems") or []
    if problems:
        console.print(f"\n[bold red]FAILED[/] ({len(problems)} problem(s): {escape(problems[0])}); report: {report}")
        if strict:
            raise typer.Exit(1)
    else:
        console.print(f"\n[bold green]report:[/] {report}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder with report.json")) -> None:
    """Re-render a run's report.md and plots from its report.json."""
    from agent.scenario.report import render

    if not (run_dir / "report.json").is_file():
        fail(f"{run_dir} has no report.json (is it a run folder?)")
    console.print(f"report: {render(run_dir)}")
