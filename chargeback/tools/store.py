"""``store``: the local ingestion endpoint, for a Function under ``func start`` or any exporter."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from chargeback.errors import UserError
from chargeback.tools.replay import DEFAULT_DB

__all__ = ["DEFAULT_PORT", "add_parser"]

#: The port `local.settings.sample.json` points the Function at.
DEFAULT_PORT = 8765


def add_parser(commands: Any) -> None:
    store = commands.add_parser(
        "store",
        help="serve the local ingestion endpoint",
        description="Serve an Application Insights-compatible ingestion endpoint on localhost that "
        "writes into the local store; prints the connection string to use.",
    )
    store.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"local store (default: {DEFAULT_DB})"
    )
    store.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    store.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from chargeback.local.store import LocalStore

    store = LocalStore(args.db, port=args.port)
    try:
        store.start()
    except OSError as exc:
        raise UserError(
            f"cannot listen on port {args.port}: {exc.strerror or exc} (choose another with --port)"
        ) from None
    try:
        print(f"local store on http://127.0.0.1:{store.port}/ writing {args.db}")
        print(f"APPLICATIONINSIGHTS_CONNECTION_STRING={store.connection_string}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        store.stop()
