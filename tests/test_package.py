"""The package as a caller and as Azure see it: the public API is pinned, and the files that
`func azure functionapp publish` / `azd deploy` upload (everything `.funcignore` leaves in) hold
the Function and nothing that runs only on a workstation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pathspec

import chargeback

ROOT = Path(__file__).resolve().parents[1]

#: What a caller of the library needs (issue 13). A change here is a change of the public API.
PUBLIC = [
    "EVENT_NAME",
    "AzureMonitorSink",
    "BadMessage",
    "BatchReport",
    "BlobDeadLetters",
    "ChargebackError",
    "ChargebackEvent",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterSink",
    "DeadLetterUnavailable",
    "DirectoryDeadLetters",
    "EventSink",
    "ImplausibleUsage",
    "JsonlSink",
    "MalformedMessage",
    "MemoryDeadLetters",
    "MemorySink",
    "MessageTooLarge",
    "Outcome",
    "Pricing",
    "Processor",
    "RawMessage",
    "Settings",
    "TelemetryNotAccepted",
    "TokenCounts",
    "TransientError",
    "UnidentifiableMessage",
    "UnknownModel",
    "UserError",
    "get_encoding",
    "get_settings",
    "load_settings",
    "partition_id",
    "process_batch",
    "run_batches",
]


def test_the_public_api_is_pinned() -> None:
    assert chargeback.__all__ == PUBLIC
    assert all(getattr(chargeback, name) is not None for name in PUBLIC)


def test_the_error_tree_is_whole_in_the_public_api() -> None:
    errors = {
        name
        for name in PUBLIC
        if isinstance(getattr(chargeback, name), type)
        and issubclass(getattr(chargeback, name), chargeback.ChargebackError)
    }
    for name in errors:
        assert name in (chargeback.errors.__doc__ or ""), f"{name} is missing from the tree"


def deployed_files() -> list[Path]:
    """The repository's files that the deployment uploads: the files git knows (tracked, or new
    and not ignored) that `.funcignore` leaves in (Core Tools and azd read it with gitignore
    rules; pathspec's gitignore spec is those)."""
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ignore = pathspec.PathSpec.from_lines(
        "gitignore", (ROOT / ".funcignore").read_text().splitlines()
    )
    return [ROOT / name for name in tracked if not ignore.match_file(name)]


def test_the_deployment_holds_the_function_and_not_the_workstation_tools() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in deployed_files()}
    assert {"function_app.py", "host.json", "requirements.txt"} <= names
    assert "chargeback/pipeline.py" in names
    assert not {
        name for name in names if name.startswith(("chargeback/local/", "chargeback/tools/"))
    }
    assert not {name for name in names if name.startswith(("tests/", "infra/", "samples/"))}


def test_the_deployed_function_imports_without_workstation_dependencies(tmp_path: Path) -> None:
    """Deploy to a folder, then import `function_app` from there alone, as the worker does: it
    loads, and pulls in neither the local stack's nor the tools' dependencies."""
    for path in deployed_files():
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    check = (
        "import sys, function_app\n"
        "assert function_app.app.get_functions(), 'no function indexed'\n"
        "optional = ('duckdb', 'duckdb_kql', 'azure.eventhub', 'tqdm', 'yaml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in optional"
        " or m.startswith('azure.eventhub') or m.startswith(('chargeback.local', 'chargeback.tools'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n{check}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
