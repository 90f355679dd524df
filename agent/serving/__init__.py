"""Serving: the engine protocol and its errors (``engine``), vLLM (``vllm``, with its managed
process in ``process`` and its CPU LoRA plugin in ``vllm_lora_cpu``), an in-process
transformers engine (``hf``), and the agents' OpenAI-compatible endpoint (``server``).

May import ``baking``, ``memory`` and, for the endpoint only, ``agent.runtime``; never
``agent.scenario`` (tests/unit/test_layout.py checks it).
"""
