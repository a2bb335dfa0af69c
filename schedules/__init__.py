"""dlc's hand-written schedule rules, one package per target kind (installed as ``dlc._builtin.schedules``)."""
