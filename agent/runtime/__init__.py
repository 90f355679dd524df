"""The runtime: its config (``config``), which engine it opens and at which LoRA rank
(``engine``), the serving runtime that swaps adapters in (``runtime``), the bake scheduler
(``scheduler``), the bake worker process and ``spawn_worker`` (``worker``), and the gate that
judges a candidate adapter and checks a folder before it is loaded (``gate``).

May import ``agent.serving``, ``baking`` and ``memory``; never ``agent.scenario``
(tests/unit/test_layout.py checks it).
"""
