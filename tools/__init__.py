"""The agent's tools (langchain-core tools)."""
