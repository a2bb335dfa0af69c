"""Tuning: MetaSchedule + XGBoost over the kernels ``dlc compile`` builds, into a target-aware database.

    tasks.py       the kernels, taken from the compile pipeline right after ``fuse``
    driver.py      the tuning loop (baseline, resume, search, SIGINT), ``tune()``
    measure.py     builders and runners (local, cuda via nvcc), one-off measurements
    rpc.py         measuring through TVM's RPC tracker, with every step bounded by a timeout
    database.py    the database: TVM's JSON files, one folder per target key, lock + atomic appends
    lookup.py      the compile-time ``tuned`` lookup over the shipped and the user's databases
    dbtools.py     ``dlc db stats|list|merge|prune|export``
    report.py      progress bar, results table, tuning-curve PNG
    provenance.py  who tuned what, how, beside the records
"""

from .database import TuningDatabase
from .driver import TaskResult, TuneConfig, TuneReport, tune
from .lookup import TunedRecords, open_tuning_records
from .rpc import RPCSettings

__all__ = ["RPCSettings", "TaskResult", "TuneConfig", "TuneReport", "TunedRecords", "TuningDatabase",
           "open_tuning_records", "tune"]
