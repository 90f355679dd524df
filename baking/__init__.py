"""Prompt Baking as a library: turn prompts into LoRA adapters.

    from baking import bake, BakeConfig, PromptItem
    version = bake([PromptItem(kind="persona", text="You are a pirate.")], "adapters/pirate")
"""

from baking.baker import AdapterVersion, BakeError, bake
from baking.config import BakeConfig, PromptItem
from baking.scale import scale_adapter

__all__ = ["AdapterVersion", "BakeConfig", "BakeError", "PromptItem", "bake", "scale_adapter"]
