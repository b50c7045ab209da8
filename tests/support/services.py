"""Real services for the tests, started and stopped here: Azurite (npm) for Blob Storage."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

AZURITE = Path(__file__).resolve().parents[1] / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account; it exists only inside the emulator.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Azurite:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{DEV_ACCOUNT};"
        )


@contextmanager
def start_azurite(workdir: Path) -> Iterator[Azurite]:
    if not AZURITE.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci --prefix tests/azurite`")
    port = free_port()
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",  # it otherwise sends usage data to Microsoft (its --help)
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = AzuriteOutput(process)
    try:
        output.wait_until_listening()
        yield Azurite(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # Azurite sometimes waits on open connections
            process.kill()
            process.wait()
        output.join()


class AzuriteOutput:
    """Reads Azurite's output to its end, so that its pipe never fills, and notes when Azurite
    says it listens (azurite/dist/src/blob/main.js prints the line once its server is up)."""

    #: azurite-blob (blob/main.js) and the all-in-one azurite (azurite.js) word it differently.
    READY = (
        b"Azurite Blob service successfully listens on",
        b"Azurite Blob service is successfully listening at",
    )
    #: Not a speed budget: only a guard against a hang (Azurite neither listening nor exiting).
    HANG_GUARD_SECONDS = 600

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._lines: list[bytes] = []
        self._listening = False
        self._settled = threading.Event()  # listening, or the output ended
        self._thread = threading.Thread(target=self._read, name="azurite-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)
            if line.startswith(self.READY):
                self._listening = True
                self._settled.set()
        self._settled.set()

    def wait_until_listening(self) -> None:
        """However long a busy machine takes: Azurite either listens or exits (the guard only
        catches a hang that would otherwise stall the whole suite)."""
        if not self._settled.wait(self.HANG_GUARD_SECONDS):
            self._process.kill()
            raise RuntimeError("Azurite neither listened nor exited: stopped")
        if not self._listening:
            said = b"".join(self._lines).decode(errors="replace")
            raise RuntimeError(f"Azurite exited ({self._process.wait()}) before listening: {said}")

    def join(self) -> None:
        self._thread.join()
