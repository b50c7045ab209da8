"""Shared fixtures. The services the tests need (the local store, Azurite) are real and are
started here; nothing reaches outside this machine."""

from __future__ import annotations

import os

# Before the exporter is imported anywhere: it otherwise calls out to Microsoft endpoints.
for _name in (
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
):
    os.environ[_name] = "true"

import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from chargeback.local.store import LocalStore  # noqa: E402
from chargeback.settings import Settings, load_settings  # noqa: E402
from tests.support.chargeback_events import fill  # noqa: E402
from tests.support.messages import load_records  # noqa: E402
from tests.support.services import Azurite, start_azurite  # noqa: E402

DATA = Path(__file__).parent / "data"

# Issue 12: Hypothesis has two clocks, a 200 ms deadline per example and the too_slow health
# check; on a busy machine they fail a property for being slow, not for being false. Both are
# off for every property test (a test's own @settings inherits this profile). Hypothesis docs,
# "settings" (deadline, suppress_health_check, settings profiles):
# https://hypothesis.readthedocs.io/en/latest/settings.html
hypothesis_settings.register_profile(
    "any-speed", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("any-speed")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.duckdb") as store:
        yield store


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixed chargeback event set (tests/chargeback_events.py), sent through the real
    exporter into a local store, for the query pack and the report."""
    path = tmp_path_factory.mktemp("chargeback") / "store.duckdb"
    with LocalStore(path) as local:
        fill(local)
    yield path


@pytest.fixture(scope="session")
def records() -> list[dict[str, Any]]:
    """Every recorded exchange of ../shared/corpus, copied into tests/data."""
    return load_records()


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Issue 12: a thread still running when Python exits is ended by pthread_exit the moment it
    takes the GIL back; inside native code (DuckDB) that aborts the process ("terminate called
    without an active exception"). So every thread a test or a fixture starts must have ended
    by now: the run fails, naming each one and where it is."""
    frames = sys._current_frames()
    left = [t for t in threading.enumerate() if t is not threading.main_thread()]
    for thread in left:
        frame = frames.get(thread.ident or 0)
        where = "".join(traceback.format_stack(frame)[-4:]) if frame else ""
        sys.stderr.write(f"\nthread left running at the end of the tests: {thread!r}\n{where}")
    if left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
