"""The runtime: its config (``config``), the serving runtime that swaps adapters in
(``runtime``), the bake scheduler (``scheduler``), the bake worker process (``worker``) and the
gate that judges a candidate adapter (``gate``).

May import ``agent.serving``, ``baking`` and ``memory``; never ``agent.scenario``.
"""
