"""Shipped MetaSchedule tuning records, one folder per target key (see dlc.target.target_key)."""
