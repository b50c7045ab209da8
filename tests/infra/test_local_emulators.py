"""Issue 11, point 4: the local emulators of infra/local start as docs/deploy.md says.

- Azurite is started by compose with the command line its image runs plus the flag the pinned
  azure-storage-blob needs; the same command line runs here with the real Azurite (npm) and
  the pinned SDK writes a blob through it (and, without the flag, cannot).
- Config.json follows the Event Hubs emulator's published configuration schema
  (Azure/azure-event-hubs-emulator-installer, EventHub-Emulator/Schema/Config-schema.json):
  one namespace "emulatorNs1" of type "EventHub", 1 to 10 hubs each with a Name and a
  PartitionCount that is a *string*, 1 to 20 consumer groups none named "$default", and a
  LoggingConfig Type among "File", "Console", "File,Console", "Console,File".
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient

from tests.support.services import AZURITE, DEV_ACCOUNT, DEV_KEY, AzuriteOutput, free_port

LOCAL = Path(__file__).resolve().parents[2] / "infra" / "local"
AZURITE_ALL = AZURITE.with_name("azurite")  # every service, as in the image


def azurite_command() -> list[str]:
    compose = yaml.safe_load((LOCAL / "compose.yaml").read_text())
    command: list[str] = compose["services"]["azurite"]["command"]
    return command


def test_compose_runs_the_azurite_image_command_with_the_api_version_check_off() -> None:
    # Azure/Azurite's Dockerfile: CMD ["azurite", "-l", "/data", "--blobHost", "0.0.0.0",
    # "--queueHost", "0.0.0.0", "--tableHost", "0.0.0.0"]. Replacing the command drops it, so it
    # is repeated (without 0.0.0.0 the services would listen inside the container only).
    assert azurite_command() == [
        "azurite", "-l", "/data", "--blobHost", "0.0.0.0", "--queueHost", "0.0.0.0",
        "--tableHost", "0.0.0.0", "--skipApiVersionCheck",
    ]  # fmt: skip


@contextmanager
def azurite_as_composed(folder: Path, command: list[str]) -> Iterator[int]:
    """The compose command line on this machine: the same flags, with a folder of ours for
    /data, loopback for 0.0.0.0 and free ports. Yields the blob port."""
    ports = {"--blobHost": free_port(), "--queueHost": free_port(), "--tableHost": free_port()}
    args = ["--silent"]
    words = iter(command[1:])
    for word in words:
        if word == "-l":
            next(words)
            args += ["-l", str(folder)]
        elif word in ports:
            next(words)
            args += [word, "127.0.0.1", word.replace("Host", "Port"), str(ports[word])]
        else:
            args.append(word)
    process = subprocess.Popen(
        [str(AZURITE_ALL), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = AzuriteOutput(process)
    try:
        output.wait_until_listening()
        yield ports["--blobHost"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.join()


def write_a_blob(port: int) -> None:
    service = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )
    container = service.get_container_client("chargeback-deadletter")
    container.create_container()
    container.upload_blob("probe", b"dead letter")
    assert container.download_blob("probe").readall() == b"dead letter"


@pytest.mark.skipif(not AZURITE_ALL.exists(), reason="npm ci --prefix tests/azurite")
def test_the_pinned_storage_sdk_writes_through_azurite_started_as_composed(tmp_path: Path) -> None:
    with azurite_as_composed(tmp_path / "with", azurite_command()) as port:
        write_a_blob(port)
    # And the flag is why: without it, Azurite refuses the SDK's API version.
    without = [word for word in azurite_command() if word != "--skipApiVersionCheck"]
    with (
        azurite_as_composed(tmp_path / "without", without) as port,
        pytest.raises(HttpResponseError, match="API version"),
    ):
        write_a_blob(port)


# --- The Event Hubs emulator's configuration -------------------------------------------------


def schema_problems(config: dict[str, Any]) -> list[str]:
    """What in ``config`` breaks the emulator's Config-schema.json (its types, enums, counts
    and required keys)."""
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    user = config.get("UserConfig")
    need(isinstance(user, dict), "UserConfig: an object is required")
    if not isinstance(user, dict):
        return problems
    namespaces = user.get("NamespaceConfig")
    need(isinstance(namespaces, list) and len(namespaces) == 1, "NamespaceConfig: one namespace")
    for ns in namespaces if isinstance(namespaces, list) else []:
        need(ns.get("Type") == "EventHub", "namespace Type: EventHub")
        need(ns.get("Name") == "emulatorNs1", "namespace Name: emulatorNs1")
        hubs = ns.get("Entities")
        need(isinstance(hubs, list) and 1 <= len(hubs) <= 10, "Entities: 1 to 10 hubs")
        for hub in hubs if isinstance(hubs, list) else []:
            need(isinstance(hub.get("Name"), str), "hub Name: a string")
            count = hub.get("PartitionCount")
            need(isinstance(count, str) and count.isdigit(), f"PartitionCount {count!r}: a string")
            groups = hub.get("ConsumerGroups", [])
            need(isinstance(groups, list) and 1 <= len(groups) <= 20, "ConsumerGroups: 1 to 20")
            for group in groups if isinstance(groups, list) else []:
                name = group.get("Name")
                need(isinstance(name, str) and name != "$default", f"consumer group {name!r}")
    logging = user.get("LoggingConfig")
    need(
        isinstance(logging, dict)
        and logging.get("Type") in ("File", "Console", "File,Console", "Console,File"),
        "LoggingConfig Type",
    )
    return problems


def test_the_emulator_config_follows_its_published_schema() -> None:
    config = json.loads((LOCAL / "Config.json").read_text())
    assert schema_problems(config) == []
    # The checker does catch a wrong type: a number where the schema wants a string.
    config["UserConfig"]["NamespaceConfig"][0]["Entities"][0]["PartitionCount"] = 4
    assert schema_problems(config) == ["PartitionCount 4: a string"]
