"""``demo``: the samples replayed offline through the real exporter into the local store, and the
chargeback tables the queries give."""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from chargeback.billing.pricing import load_price_table
from chargeback.errors import TransientError
from chargeback.settings import Settings, get_settings
from chargeback.tools.query import declared_parameters
from chargeback.tools.replay import DEFAULT_DB, DEFAULT_DEAD_LETTERS, local_sink, replay_file

__all__ = ["DEMO_PARAMETERS", "DEMO_QUERIES", "add_parser"]

#: The tables the demo ends with, as ``query`` prints them: cost per business unit, then per
#: application, both with the provisioned deployment's bill shared out by tokens.
DEMO_QUERIES = ("cost-by-business-unit.kql", "chargeback-by-application.kql")
#: The demo's provisioned (PTU) deployment and its monthly bill: an example amount, e.g.
#: 15 PTU for 730 hours at 1.00 a PTU-hour.
DEMO_PROVISIONED = frozenset({"gpt-4o"})
DEMO_PARAMETERS: dict[str, Any] = {"PtuMonthlyCost": 10950.0}

# The exporter otherwise reports its own usage to Microsoft endpoints; the demo is offline.
_OFFLINE = (
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
)


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="replay samples/ offline and print the chargeback",
        description="Replay the sample gateway messages offline, through the real exporter, into "
        f"a fresh local store ({DEFAULT_DB}, which query and report then read), and print the "
        "chargeback tables.",
    )
    demo.add_argument("--samples", default="samples")
    demo.add_argument("--queries", default="queries")
    demo.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"default: {DEFAULT_DB}")
    demo.add_argument("--dead-letters", type=Path, default=DEFAULT_DEAD_LETTERS)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chargeback.local.figures import money
    from chargeback.local.kql import run_kql

    for name in _OFFLINE:
        os.environ.setdefault(name, "true")
    args.db.unlink(missing_ok=True)
    settings = _demo_settings(get_settings(), Path(args.samples))
    prices = load_price_table(settings.prices_file)
    samples = sorted(Path(args.samples).glob("*.jsonl"))
    print(f"Replaying {len(samples)} sample files through the real exporter into {args.db}")
    print(
        f"  identity map {settings.identity_map_file}; provisioned deployments "
        f"{', '.join(sorted(settings.provisioned_deployments)) or 'none'}; "
        f"PTU bill {money(DEMO_PARAMETERS['PtuMonthlyCost'])} {prices.currency} a month"
    )
    with ExitStack() as stack:
        sink = local_sink(args.db, settings, stack)
        for sample in samples:
            try:
                report = replay_file(
                    str(sample),
                    settings,
                    sink,
                    dead_letters=args.dead_letters,
                    retries=2,
                    stack=stack,
                )
            except TransientError as exc:
                print(f"demo stopped: {exc}")
                return 2
            print(f"  {sample.name}: {report.summary()}")
    for name in DEMO_QUERIES:
        text = (Path(args.queries) / name).read_text(encoding="utf-8")
        result = run_kql(args.db, text, declared_parameters(text, DEMO_PARAMETERS))
        print(f"\n# {name}")
        print(result.table())
    return 0


def _demo_settings(settings: Settings, samples: Path) -> Settings:
    """The sample identity map and a provisioned deployment, unless the environment sets them."""
    update: dict[str, Any] = {}
    if settings.identity_map_file is None and (samples / "identity-map.json").is_file():
        update["identity_map_file"] = samples / "identity-map.json"
        if "appKey" not in settings.identity_order:  # the sample maps a legacy masked key
            update["identity_order"] = (*settings.identity_order, "appKey")
    if "CHARGEBACK_PROVISIONED_DEPLOYMENTS" not in os.environ:
        update["provisioned_deployments"] = DEMO_PROVISIONED
    return settings.model_copy(update=update)
