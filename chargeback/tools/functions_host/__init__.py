"""The Function run inside the real Azure Functions Python runtime (azure-functions-runtime),
driven as the Functions host drives it: a worker process, our own FunctionRpc messages
(FunctionRpc.proto, compiled at first use), Event Hubs batches as the host sends them.

See host.py (the host's side), worker.py (the worker process), eventhub.py (the trigger's
input and metadata) and coldstart.py (cold start through the runtime).
"""

from .coldstart import ColdStart, measure_cold_start
from .eventhub import EventHubBatch, invocation_request
from .host import REPO_ROOT, FunctionsHost, LoadedFunction, WorkerFault, app_environment
from .protos import protos

__all__ = [
    "REPO_ROOT",
    "ColdStart",
    "EventHubBatch",
    "FunctionsHost",
    "LoadedFunction",
    "WorkerFault",
    "app_environment",
    "invocation_request",
    "measure_cold_start",
    "protos",
]
