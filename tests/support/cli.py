"""``python -m chargeback ...`` run as a user runs it: a fresh process, the repository on the
path, no Application Insights connection string inherited from the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str,
    cwd: Path = ROOT,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    hang_guard: float = 600,
) -> subprocess.CompletedProcess[str]:
    """The command's exit status, standard output and standard error. ``hang_guard`` is not a
    speed budget: only a stop for a command that never ends."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONNECTION")
    }
    environment.update(env or {}, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "chargeback", *args],
        input=stdin.decode() if isinstance(stdin, bytes) else stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=hang_guard,
        check=False,
    )
