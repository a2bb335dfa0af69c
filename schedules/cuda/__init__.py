"""Hand-written rules for NVIDIA GPUs. Every module here is imported by
``dlc.schedule.load_builtin_rules("cuda")``; modules starting with ``_`` are helpers, not rules."""
