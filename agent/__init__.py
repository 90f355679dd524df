"""promptbake's runtime: config, the `agent` CLI, serving engines, scheduler and reports."""
