"""Scenarios and evaluation (``agent run scenario.yaml``): the YAML schema (``schema``), the
runner that plays a timeline (``runner``, with its event handlers), the judges that score
answers (``judges``) and the report (``report``).

May import ``agent.runtime``, ``agent.serving``, the agent loop, ``baking``, ``memory`` and
``tools``; nothing imports it but the CLI and the tests.
"""
