"""What a fresh Function process pays: cold start and peak memory, each measured in a new
interpreter that imports ``function_app`` and runs the Function's own processor
(`chargeback.runtime.default_processor`: the Application Insights sink delivering to the
benchmark's endpoint, Blob Storage dead letters at an address nothing listens on, never
written to by these batches)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "child_env",
    "cold_start_child",
    "cold_start_in_fresh_process",
    "memory_child",
    "memory_in_fresh_process",
]


def _project_root() -> Path:
    return Path(__file__).resolve().parents[3]


def child_env(connection: str | None = None) -> dict[str, str]:
    """The environment of a child process: this project importable, the exporter's reports
    about itself off, and the Function's settings pointing at ``connection``."""
    env = dict(os.environ)
    root = str(_project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The exporter's own telemetry about itself would call Microsoft endpoints.
    env["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] = "true"
    env["APPLICATIONINSIGHTS_SDKSTATS_DISABLED"] = "true"
    env["APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED"] = "true"
    if connection is not None:
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection
        env["DeadLetterStorage"] = _NOWHERE_STORAGE
    return env


#: The Azurite development account at a port nothing listens on: the Function's dead-letter
#: client is built, and these batches write no dead letter.
_NOWHERE_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


def _quiet_child() -> None:
    from chargeback.tools.bench.measure import quiet

    quiet()


def _read_batch(path: str) -> list[Any]:
    from chargeback.tools.bench.measure import as_raw

    with open(path, "rb") as lines:
        return as_raw([line.rstrip(b"\n") for line in lines])


# --- Cold start -----------------------------------------------------------------------------

_COLD = (
    "import time; _t0 = time.perf_counter()\n"
    "import function_app\n"
    "_t1 = time.perf_counter()\n"
    "from chargeback.tools.bench.processes import cold_start_child\n"
    "cold_start_child(__import__('sys').argv[1], _t1 - _t0)\n"
)


def cold_start_child(path: str, import_seconds: float) -> None:
    """In a fresh process that has just imported ``function_app``: build the Function's
    processor, process and deliver the first batch, and print the timings as JSON."""
    _quiet_child()
    start = time.perf_counter()
    messages = _read_batch(path)
    from chargeback.runtime import process_batch

    report = process_batch(messages)
    done = time.time()
    result = {
        "done": done,
        "import_s": import_seconds,
        "batch_s": time.perf_counter() - start,
        "emitted": report.emitted,
    }
    sys.stdout.write(json.dumps(result) + "\n")


def cold_start_in_fresh_process(
    first_batch: list[bytes], runs: int, connection: str
) -> dict[str, Any]:
    """Cold start as measured before the Functions runtime harness: a new interpreter imports
    ``function_app`` and runs the Function's processor on a first batch, delivered to
    ``connection`` (encodings load on the first estimate, so that cost is in); wall time from
    spawning the process to the batch's end; medians of ``runs``. The runtime's own indexing
    and invocation are not in it."""
    env = child_env(connection)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "first-batch.jsonl"
        path.write_bytes(b"".join(body + b"\n" for body in first_batch))
        results = []
        for _ in range(max(1, runs)):
            spawned = time.time()
            done = subprocess.run(
                [sys.executable, "-c", _COLD, str(path)],
                capture_output=True,
                check=True,
                cwd=_project_root(),
                env=env,
            )
            result = json.loads(done.stdout.decode().strip().splitlines()[-1])
            result["total_s"] = result["done"] - spawned
            results.append(result)
    totals = [r["total_s"] for r in results]
    return {
        "total_s": statistics.median(totals),
        "all_s": totals,
        "import_s": statistics.median(r["import_s"] for r in results),
        "batch_s": statistics.median(r["batch_s"] for r in results),
        "emitted": results[0]["emitted"],
        "messages": len(first_batch),
    }


# --- Peak memory ----------------------------------------------------------------------------

_MEMORY = (
    "import function_app\n"
    "from chargeback.tools.bench.processes import memory_child\n"
    "memory_child(__import__('sys').argv[1])\n"
)


def _rss_mb() -> float:
    """The peak resident set of this process so far, in MB.

    Linux: ``VmHWM`` of /proc/self/status, this process's own high-water mark (``ru_maxrss``
    keeps the parent's across fork and exec). Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def memory_child(path: str) -> None:
    """In a fresh process: the Function's processor on one batch of large messages, delivered;
    print the peak resident set, and the Python heap's peak for a second batch."""
    import tracemalloc

    _quiet_child()
    from chargeback.runtime import default_processor

    messages = _read_batch(path)
    before = _rss_mb()
    processor = default_processor()
    report = processor.process_batch(messages)
    after = _rss_mb()
    # Again, Python's heap alone, now that the encodings are loaded: what the batch itself holds.
    tracemalloc.start()
    processor.process_batch(messages)
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "before_mb": before,
        "peak_mb": after,
        "heap_peak_mb": heap_peak / 2**20,
        "emitted": report.emitted,
        "input_mb": sum(len(m.body) for m in messages) / 2**20,
    }
    sys.stdout.write(json.dumps(result) + "\n")


def memory_in_fresh_process(bodies: list[bytes], connection: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large-batch.jsonl"
        path.write_bytes(b"".join(body + b"\n" for body in bodies))
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY, str(path)],
            capture_output=True,
            check=True,
            cwd=_project_root(),
            env=child_env(connection),
        )
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
