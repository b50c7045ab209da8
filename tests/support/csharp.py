"""Compile and run a C# program with Mono (Debian's ``mono-mcs``, installed by ``make csharp``):
what a .NET expression really prints, for tests that read it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HINT = (
    "Mono's C# compiler is needed to run .NET's own formatting: `make csharp` "
    "(Debian package mono-mcs)"
)


def run_csharp(source: str, workdir: Path) -> str:
    """Standard output of ``source``'s ``Main``, compiled with ``mcs`` and run with ``mono``."""
    compiler, runtime = shutil.which("mcs"), shutil.which("mono")
    if compiler is None or runtime is None:
        pytest.fail(HINT)
    program = workdir / "program.exe"
    (workdir / "program.cs").write_text(source, encoding="utf-8")
    built = subprocess.run(
        [compiler, "-nologo", f"-out:{program}", str(workdir / "program.cs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    ran = subprocess.run(
        [runtime, str(program)], capture_output=True, text=True, check=False, encoding="utf-8"
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout
