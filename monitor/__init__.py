"""dli-batch-monitor: watches Huawei Cloud DLI Spark batch jobs and reports their state changes.

This module holds the version only; everything else lives in submodules.
"""

__version__ = "0.1.0"
