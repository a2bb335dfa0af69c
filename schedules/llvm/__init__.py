"""Hand-written rules for x86 CPUs (AVX-512 first). Every module here is imported by
``dlc.schedule.load_builtin_rules("llvm")``; modules starting with ``_`` are helpers, not rules."""
