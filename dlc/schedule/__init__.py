"""Scheduling: the rule registry, the precedence (user > tuned > hand > fallback), explain rows."""

from . import fallback as _fallback  # noqa: F401  (registers the fallback rules)
from .apply import KernelReport, TunedLookup, schedule_module, untuned_schedule
from .registry import REGISTRY, Rule, load_builtin_rules, load_rules_from_dir, rule

__all__ = [
    "REGISTRY", "KernelReport", "Rule", "TunedLookup", "load_builtin_rules", "load_rules_from_dir", "rule",
    "schedule_module", "untuned_schedule",
]
