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

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from chargeback.local.store import LocalStore  # noqa: E402
from chargeback.settings import Settings, load_settings  # noqa: E402
from tests.support.chargeback_events import fill  # noqa: E402
from tests.support.messages import load_records  # noqa: E402
from tests.support.services import Azurite, start_azurite  # noqa: E402

DATA = Path(__file__).parent / "data"


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
