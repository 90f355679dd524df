"""promptbake's agent: the agent loop and its front ends, over three sub-packages by job.

- ``agent/`` itself: the agent loop (``loop``), its LangChain chat model (``langchain_model``),
  the interactive chat (``chat``) and the ``agent`` CLI (``cli``). They may import every
  sub-package below.
- ``agent.serving``: serving engines (the :class:`~agent.serving.engine.Engine` protocol, vLLM,
  transformers) and the agents' OpenAI-compatible endpoint.
- ``agent.runtime``: the runtime's config, the serving runtime (swaps, rollback, forget), the
  bake scheduler, the worker process and its gate.
- ``agent.scenario``: scenarios (``agent run scenario.yaml``): schema, runner, judges, reports.
"""
