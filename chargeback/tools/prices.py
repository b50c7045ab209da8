"""``python -m chargeback prices update``: rebuild the price table from the Azure Retail Prices API.

The API (learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices) answers
``GET https://prices.azure.com/api/retail/prices?$filter=...`` with pages of JSON,
``{"BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items": [...], "NextPageLink",
"Count"}``; each item has ``currencyCode``, ``retailPrice``, ``unitPrice``, ``armRegionName``,
``effectiveStartDate``, ``meterName``, ``productName``, ``skuName``, ``serviceName``,
``unitOfMeasure`` ("1K", "1M") and ``type`` ("Consumption", "Reservation", ...). Azure OpenAI's
token meters are under ``productName`` "Azure OpenAI ..." (``serviceName`` "Foundry Models",
formerly "Cognitive Services").

The table names the meter of every price it holds (``meters``), so an update reads exactly those
meters again: the newest ``Consumption`` price in effect, per million tokens, in the reference
region (``referenceRegion``, default eastus: Regional and Data Zone prices differ by region; a
Global meter has one price). A meter the answer lacks keeps its old price and is reported; a
model Azure starts selling is added to the table by hand, with its meters. Offline, nothing
changes: the shipped table stays as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

__all__ = ["API", "SHIPPED", "add_parser", "read_pages", "update_table"]

API = "https://prices.azure.com/api/retail/prices"
#: The table the package ships, and the one an update rewrites by default.
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "prices.json"
FILTER = "productName eq 'Azure OpenAI' or startswith(productName, 'Azure OpenAI')"
PER_MILLION = {"1M": 1.0, "1K": 1000.0}
DEFAULT_REGION = "eastus"
_MAX_PAGES = 500  # the Azure OpenAI meters fill a few dozen pages; a loop must end


def read_pages(text: str) -> list[dict[str, Any]]:
    """Pages of an API answer saved to a file: one page, a JSON array of pages, or one per line."""
    text = text.strip()
    if text.startswith("["):
        pages = json.loads(text)
    elif "\n{" in text:
        pages = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        pages = [json.loads(text)]
    if not isinstance(pages, list) or not all(
        isinstance(page, dict) and isinstance(page.get("Items"), list) for page in pages
    ):
        raise ValueError("not the Retail Prices API's answer: each page needs an 'Items' list")
    return [dict(page) for page in pages]


def fetch_pages(url: str = API, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """Every page of the API's answer for the Azure OpenAI meters, following NextPageLink."""
    query = urllib.parse.urlencode({"$filter": FILTER})
    link: str | None = f"{url}?{query}"
    for _ in range(_MAX_PAGES):
        if not link:
            return
        with urllib.request.urlopen(link, timeout=timeout) as response:
            page = json.load(response)
        yield page
        link = page.get("NextPageLink")


def _prices(
    items: Iterable[dict[str, Any]], region: str, currency: str, today: date
) -> dict[str, tuple[float, str]]:
    """meterName -> (price per million tokens, effective date): the reference region's price
    (else any region's: a Global meter's), the newest in effect."""
    best: dict[str, tuple[bool, str, float]] = {}
    for item in items:
        if item.get("type", "Consumption") != "Consumption":
            continue
        if item.get("currencyCode", currency) != currency:
            continue
        factor = PER_MILLION.get(str(item.get("unitOfMeasure", "")))
        meter, start = item.get("meterName"), str(item.get("effectiveStartDate", ""))[:10]
        if factor is None or not meter or start > today.isoformat():
            continue
        here = item.get("armRegionName") == region
        key = (here, start)
        if meter not in best or key > best[meter][:2]:
            best[meter] = (here, start, float(item["retailPrice"]) * factor)
    return {meter: (round(price, 10), start) for meter, (_, start, price) in best.items()}


def update_table(
    table: dict[str, Any],
    items: Iterable[dict[str, Any]],
    *,
    taken: date,
    source: str,
) -> tuple[dict[str, Any], list[str]]:
    """The table with every meter's price read again; and the meters the answer lacked."""
    region = table.get("referenceRegion") or DEFAULT_REGION
    prices = _prices(items, region, table.get("currency", "USD"), taken)
    missing: list[str] = []
    out = json.loads(json.dumps(table))
    for kind, block in out.get("deploymentTypes", {}).items():
        for family, row in block["models"].items():
            found = False
            for direction, meter in (row.get("meters") or {}).items():
                if meter in prices:
                    row[direction], found = prices[meter][0], True
                else:
                    missing.append(f"{kind} {family} {direction}: {meter}")
            if found:
                row["source"] = source
    out["version"] = f"azure-openai-{taken.isoformat()}"
    out["taken"] = taken.isoformat()
    return out, missing


def add_parser(commands: Any) -> None:
    prices = commands.add_parser(
        "prices",
        help="prices update: rebuild the price table from the Azure Retail Prices API",
        description="Maintain the shipped price table (chargeback/data/prices.json).",
    )
    actions = prices.add_subparsers(dest="action", required=True, metavar="ACTION")
    update = actions.add_parser(
        "update",
        help="read the table's meters again",
        description="Read every meter the table names again from the Azure Retail Prices API "
        "(or a saved answer); a meter the answer lacks keeps its price and is reported.",
    )
    update.add_argument("--from", dest="source", type=Path, help="a saved API answer")
    update.add_argument("--out", type=Path, default=SHIPPED, help=f"where to write ({SHIPPED})")
    update.add_argument("--api", default=API, help=argparse.SUPPRESS)  # tests: a closed port
    update.set_defaults(run=run_update)


def run_update(args: argparse.Namespace) -> int:
    """``prices update [--from FILE] [--out FILE]``; returns the exit status."""
    table = json.loads(SHIPPED.read_text(encoding="utf-8"))
    today = datetime.now(UTC).date()
    try:
        if args.source is not None:
            pages = read_pages(args.source.read_text(encoding="utf-8"))
            label = f"Azure Retail Prices API answer saved in {args.source.name}"
        else:
            pages = list(fetch_pages(args.api))
            label = f"Azure Retail Prices API, {API}, fetched {today.isoformat()}"
    except (OSError, TimeoutError) as exc:  # URLError is an OSError
        sys.stderr.write(f"prices update: cannot read the prices ({exc}); the table stays\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"prices update: {exc}; the table stays\n")
        return 2
    items = [item for page in pages for item in page["Items"]]
    updated, missing = update_table(table, items, taken=today, source=label)
    for meter in missing:
        sys.stderr.write(f"prices update: no price for meter {meter}; old price kept\n")
    args.out.write_text(render(updated), encoding="utf-8")
    sys.stderr.write(f"prices update: wrote {args.out} ({len(items)} items read)\n")
    return 0


def render(table: dict[str, Any]) -> str:
    """The table as JSON, one model a line, so a price change is a one-line diff."""
    head = {k: v for k, v in table.items() if k != "deploymentTypes"}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append('  "deploymentTypes": {')
    kinds = list(table.get("deploymentTypes", {}).items())
    for i, (kind, block) in enumerate(kinds):
        lines.append(f'    {json.dumps(kind)}: {{"models": {{')
        models = list(block["models"].items())
        for j, (family, row) in enumerate(models):
            comma = "," if j < len(models) - 1 else ""
            lines.append(
                f"      {json.dumps(family)}: {json.dumps(row, ensure_ascii=False)}{comma}"
            )
        lines.append("    }}" + ("," if i < len(kinds) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
