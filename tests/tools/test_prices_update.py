"""``python -m chargeback prices update``: the price table rebuilt from the Azure Retail Prices
API's answer (learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices).

No answer could be recorded here (no network). tests/data/prices/retail-prices-answer.json is
built by hand in the documented format: pages of ``{"BillingCurrency", "CustomerEntityId",
"CustomerEntityType", "Items", "NextPageLink", "Count"}``, each item with the documented fields
(``currencyCode``, ``retailPrice``, ``unitPrice``, ``armRegionName``, ``effectiveStartDate``,
``meterName``, ``productName``, ``skuName``, ``serviceName``, ``unitOfMeasure``, ``type`` ...),
holding the meter names and prices of the shipped table's snapshot (Azure Retail Prices API,
2026-08-11, as bundled in azure-genai-prices 0.2.0), plus items an update must not take: a
reservation, a price not yet in effect, another region's Regional price.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

from chargeback.billing.pricing import load_price_table
from chargeback.tools.prices import read_pages, update_table

ROOT = Path(__file__).resolve().parents[2]
ANSWER = Path(__file__).resolve().parents[1] / "data" / "prices" / "retail-prices-answer.json"
SHIPPED = ROOT / "chargeback" / "data" / "prices.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "chargeback", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def small_table() -> dict[str, Any]:
    shipped: dict[str, Any] = json.loads(SHIPPED.read_text())
    keep = {"gpt-4o", "gpt-35-turbo", "text-embedding-ada-002"}
    shipped["deploymentTypes"] = {
        kind: {"models": {k: v for k, v in block["models"].items() if k in keep}}
        for kind, block in shipped["deploymentTypes"].items()
    }
    return shipped


def test_an_update_reads_each_meter_in_the_reference_region_newest_price_in_effect() -> None:
    pages = read_pages(ANSWER.read_text())
    assert len(pages) == 2 and pages[0]["NextPageLink"]
    items = [item for page in pages for item in page["Items"]]
    table = small_table()
    updated, missing = update_table(table, items, taken=date(2026, 8, 11), source="test answer")
    models = updated["deploymentTypes"]
    # eastus's Regional price, not westeurope's; 1K-token meters turned into per million.
    assert models["Standard"]["models"]["gpt-4o"]["input"] == 2.75
    assert models["Standard"]["models"]["gpt-35-turbo"]["input"] == 0.55
    assert models["GlobalStandard"]["models"]["text-embedding-ada-002"]["input"] == 0.1
    # The reservation and the price effective after the day taken are not taken.
    assert models["GlobalStandard"]["models"]["gpt-4o"]["output"] == 10.0
    assert models["GlobalStandard"]["models"]["gpt-4o"]["source"] == "test answer"
    assert updated["version"] == "azure-openai-2026-08-11"
    # The one meter the answer lacks keeps its price and is named.
    assert missing == ["DataZoneBatch gpt-4o output: gpt 4o 0806 Batch Outp Data Zone Tokens"]
    assert models["DataZoneBatch"]["models"]["gpt-4o"]["output"] == 5.5


def test_the_command_writes_a_table_the_processor_loads(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    result = run("prices", "update", "--from", str(ANSWER), "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = load_price_table(out)
    price = table.price_of("gpt-4o-2024-08-06", "DataZoneStandard")
    assert price is not None and (price.input, price.output) == (2.75, 11.0)
    assert "no price for meter" in result.stderr  # the snapshot's other meters are reported


def test_offline_the_shipped_table_stays(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    before = SHIPPED.read_bytes()
    result = run("prices", "update", "--api", "http://127.0.0.1:9/", "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "the table stays" in result.stderr
    assert not out.exists() and SHIPPED.read_bytes() == before


def test_an_answer_in_another_format_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"value": []}')
    result = run("prices", "update", "--from", str(bad), "--out", str(tmp_path / "o.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "prices update: not the Retail Prices API's answer: each page needs an 'Items' list;"
        " the table stays"
    )
