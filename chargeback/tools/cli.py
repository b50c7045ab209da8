"""``python -m chargeback``: the command line of CONTRACTS §3.

One parser tree: each command's module adds its own subparser (`add_parser`) and the function
that runs it. A user's mistake is raised as `UserError` (or `ConfigurationError` for an app
setting) and printed here as one line; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from chargeback.errors import ConfigurationError, UserError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from chargeback.tools import accuracy, demo, prices, query, replay, send, store
    from chargeback.tools.bench import command as bench

    parser = argparse.ArgumentParser(
        prog="python -m chargeback", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (replay, query, store, demo, send, accuracy, bench, prices):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _quiet_logs(args.debug)
    try:
        return int(args.run(args))
    except (UserError, ConfigurationError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"{args.command}: {exc}\n")
        return 2


def _quiet_logs(debug: bool) -> None:
    """Each command reports what happened itself (outcomes, errors as one line). The
    processor's log and the Azure SDK's warnings (the exporter's retries and its "missing a
    valid region" on a local endpoint, the credential chain's attempts) are for --debug."""
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        return
    for name in ("chargeback", "azure", "opentelemetry"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
