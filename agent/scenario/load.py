"""Reading a scenario file: ``load_scenario`` validates the YAML against the schema and reports
a problem as ``file:line: field: reason`` (``ScenarioError``); ``json_schema`` for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.scenario.schema import Scenario


class ScenarioError(ValueError):
    """A scenario that cannot run; the message gives file:line: field: reason."""


def json_schema() -> str:
    return json.dumps(Scenario.model_json_schema(), indent=2)


def _document_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union tags (``timeline.3.probe.judge`` -> ``timeline.3.judge``)."""
    path: list[Any] = []
    for i, key in enumerate(loc):
        after_event = i >= 2 and loc[i - 2] == "timeline" and isinstance(loc[i - 1], int)
        if after_event and key in _EVENT_TYPES:
            continue
        if isinstance(key, str) and key in ("str", "FeedItem"):  # members of `items` unions
            continue
        path.append(key)
    return tuple(path)


def _line_of(node: yaml.Node, path: tuple[Any, ...]) -> int:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == str(key)), None)
            if found is None:
                # An unknown key (extra field): point at the key itself.
                found = next((k for k, _ in node.value if k.value == str(key)), None)
                if found is None:
                    break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


MAX_SCENARIO_BYTES = 1 << 20  # 1 MiB of YAML is far beyond any hand-written timeline


def load_scenario(path: Path | str, max_bytes: int = MAX_SCENARIO_BYTES) -> Scenario:
    """Parse and validate ``path``; a ScenarioError names the file, line and field. A file over
    ``max_bytes`` is refused before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ScenarioError(f"{path}: {size} bytes is over the {max_bytes}-byte limit for a scenario "
                                "(agent run --max-scenario-bytes); put long feeds in feed files")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror}") from e
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise ScenarioError(f"{path}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, dict) or root is None:
        raise ScenarioError(f"{path}:1: a scenario is a mapping with name, agents and timeline")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        problem = e.errors()[0]
        loc = _document_path(tuple(problem["loc"]))
        message = problem["msg"].removeprefix("Value error, ")
        if message.startswith("timeline.") and ": unknown " in message:  # from _known_agents
            where, message = message.split(": ", 1)
            loc = ("timeline", int(where.split(".")[1]), where.split(".")[2])
        field = ".".join(str(p) for p in loc) or "(top level)"
        raise ScenarioError(f"{path}:{_line_of(root, loc)}: {field}: {message}") from e
    _check_feed_files(scenario, path, root)
    return scenario


def _check_feed_files(scenario: Scenario, path: Path, root) -> None:
    """Read every feed file now (relative to the scenario's folder, as the run reads them), so
    a missing file or a bad line is refused before anything starts, not after vLLM is up."""
    import xml.etree.ElementTree as ET

    from tools.registry import read_headlines

    for i, event in enumerate(scenario.timeline):
        if getattr(event, "type", None) != "feed" or event.file is None:
            continue
        feed = path.parent / event.file
        where = f"{path}:{_line_of(root, ('timeline', i, 'file'))}: timeline.{i}.file"
        try:
            if not read_headlines(feed) and not feed.is_dir():
                raise ValueError(f"{feed} has no headlines")
        except FileNotFoundError:
            raise ScenarioError(f"{where}: {feed} does not exist") from None
        except OSError as e:
            raise ScenarioError(f"{where}: cannot read {feed}: {e.strerror or e}") from e
        except ET.ParseError as e:
            raise ScenarioError(f"{where}: {feed} is not JSONL, RSS or Atom: {e}") from e
        except (ValueError, UnicodeDecodeError) as e:
            raise ScenarioError(f"{where}: {e}") from e


_EVENT_TYPES = {"feed", "say", "ask", "probe", "bake", "wait_for_bake", "scale", "tool", "checkpoint"}
