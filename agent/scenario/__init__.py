"""Scenarios and evaluation (``agent run scenario.yaml``): the YAML schema (``schema``) and
reading a file against it (``load``); the runner that plays a timeline (``runner``), its event
handlers by family (``talk``: feed, say, tool; ``measure``: ask, probe, scale, checkpoint;
``bakes``: bake, wait_for_bake) and its per-agent state (``state``); the judges that score
answers (``judges``) and the report (``report``).

May import ``agent.runtime``, ``agent.serving``, the agent loop, ``baking``, ``memory`` and
``tools``; nothing in ``agent`` imports it but the CLI (the benchmarks and tests use it too).
"""
