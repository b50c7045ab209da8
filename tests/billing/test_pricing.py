"""The price table: shipped and checked, overridable by file, families by longest prefix, the
cost formula, unknown models and provisioned deployments; and the event's price dimensions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from chargeback.billing.pricing import Pricing, load_price_table
from chargeback.errors import ConfigurationError
from chargeback.settings import load_settings
from chargeback.tokens import TokenCounts

TEST_PRICES = Path(__file__).resolve().parents[1] / "data" / "queries" / "prices.json"


def test_the_shipped_table_loads_with_its_date_source_and_currency() -> None:
    table = load_price_table()
    assert table.currency == "USD"
    assert table.taken == date(2026, 8, 11)
    assert table.version == "azure-openai-2026-08-11"
    assert table.source and "prices.azure.com" in table.source
    gpt4o = table.models["gpt-4o"]
    assert (gpt4o.input, gpt4o.cached_input, gpt4o.output) == (2.5, 1.25, 10.0)
    # No cached-input meter: cached input bills as input.
    assert table.models["gpt-4"].cached_input == table.models["gpt-4"].input == 30.0


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("gpt-5.4", "gpt-5.4"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        # Not a family plus a date: unknown, never priced as a neighbour.
        ("gpt-4-1106-preview", None),
        ("gpt-4o-realtime-preview-2024-12-17", None),
        ("gpt-4omni", None),
        ("mystery-model-1", None),
        ("", None),
        (None, None),
    ],
)
def test_a_dated_model_prices_as_its_longest_known_family(
    model: str | None, family: str | None
) -> None:
    assert load_price_table().family_of(model) == family


def test_a_family_missing_from_the_table_is_unknown_not_its_neighbour(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "version": "v",
                "currency": "USD",
                "taken": "2026-01-01",
                "models": {"gpt-4o": {"input": 1, "output": 2}},
            }
        )
    )
    assert load_price_table(path).family_of("gpt-4o-mini-2024-07-18") is None


def test_cost_bills_cached_input_apart_and_reasoning_once_as_output() -> None:
    pricing = Pricing(load_price_table(TEST_PRICES))
    # gpt-4o: 2 / cached 1 / output 8 per million. 1000 prompt of which 400 cached; 500
    # completion of which 300 reasoning (already inside the completion tokens).
    counts = TokenCounts(prompt=1000, completion=500, total=1500, cached=400, reasoning=300)
    dims, cost = pricing.charge("gpt-4o-2024-08-06", "gpt-4o", counts)
    assert cost == {"Cost": pytest.approx((600 * 2 + 400 * 1 + 500 * 8) / 1e6, abs=1e-15)}
    assert dims == {
        "Currency": "EUR",
        "PriceVersion": "test-prices-1",
        "Billing": "paygo",
        "Priced": "true",
        "DeploymentType": "GlobalStandard",
    }


def test_cached_tokens_never_exceed_the_prompt() -> None:
    pricing = Pricing(load_price_table(TEST_PRICES))
    _, cost = pricing.charge("gpt-4o", None, TokenCounts(100, 0, 100, cached=500))
    assert cost["Cost"] == pytest.approx(100 * 1.0 / 1e6)


def test_an_unknown_model_costs_zero_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    pricing = Pricing(load_price_table(TEST_PRICES))
    for _ in range(3):
        dims, cost = pricing.charge("mystery-model-1", "mystery", TokenCounts(10, 10, 20))
    assert (dict(dims), dict(cost)) == (
        {
            "Currency": "EUR",
            "PriceVersion": "test-prices-1",
            "Billing": "paygo",
            "Priced": "false",
            "DeploymentType": "GlobalStandard",
        },
        {"Cost": 0.0},
    )
    assert pricing.charge(None, None, TokenCounts(1, 1, 2))[0]["Priced"] == "false"
    warnings = [r.getMessage() for r in caplog.records if "mystery-model-1" in r.getMessage()]
    assert len(warnings) == 1  # once per model and processor, not per call


def test_a_provisioned_deployment_costs_zero_with_billing_provisioned() -> None:
    pricing = Pricing(load_price_table(TEST_PRICES), frozenset({"PTU-gpt-4o"}))
    dims, cost = pricing.charge("gpt-4o-2024-08-06", "ptu-gpt-4o", TokenCounts(1000, 10, 1010))
    assert dict(dims)["Billing"] == "provisioned"
    assert dict(dims)["Priced"] == "true"
    assert dict(cost) == {"Cost": 0.0}


def test_the_processor_loads_the_file_named_by_the_setting() -> None:
    pricing = Pricing.from_settings(load_settings(prices_file=TEST_PRICES))
    assert pricing.table.version == "test-prices-1"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ("[]", "must be an object"),
        ('{"currency": "USD", "taken": "2026-01-01", "models": {"a": {"input": 1}}}', "version"),
        (
            '{"version": "v", "currency": "usd", "taken": "2026-01-01", "models": {"a": {"input": 1}}}',
            "currency",
        ),
        (
            '{"version": "v", "currency": "USD", "taken": "someday", "models": {"a": {"input": 1}}}',
            "taken",
        ),
        ('{"version": "v", "currency": "USD", "taken": "2026-01-01", "models": {}}', "models"),
        (
            '{"version": "v", "currency": "USD", "taken": "2026-01-01", "models": {"a": {"input": -1}}}',
            "models.a.input",
        ),
        (
            '{"version": "v", "currency": "USD", "taken": "2026-01-01", "models": {"a": {"input": 1, "ouptut": 2}}}',
            "ouptut",
        ),
        (
            '{"version": "v", "currency": "USD", "taken": "2026-01-01", "unit": "1K tokens", "models": {"a": {"input": 1}}}',
            "per million",
        ),
        (
            '{"version": "v", "currency": "USD", "taken": "2026-01-01", "models": {"A": {"input": 1}, "a": {"input": 2}}}',
            "listed twice",
        ),
    ],
)
def test_a_malformed_price_file_fails_fast_naming_the_setting(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as raised:
        load_price_table(path)
    assert "CHARGEBACK_PRICES_FILE" in str(raised.value)
    assert problem in str(raised.value)


def test_a_missing_price_file_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"CHARGEBACK_PRICES_FILE.*cannot read"):
        load_price_table(tmp_path / "nope.json")


def test_a_yaml_price_file_is_read_when_pyyaml_is_there(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: y1\ncurrency: USD\ntaken: 2026-01-01\nmodels:\n  gpt-4o: {input: 1, output: 2}\n"
    )
    assert load_price_table(path).models["gpt-4o"].output == 2.0


# --- Deployment types (issue 15) ------------------------------------------------------------

SHIPPED = Path(__file__).resolve().parents[2] / "chargeback" / "data" / "prices.json"
TOKEN_TYPES = ("GlobalStandard", "DataZoneStandard", "Standard", "GlobalBatch", "DataZoneBatch")


def test_the_shipped_table_prices_every_deployment_type_with_a_meter_and_a_source() -> None:
    document = json.loads(SHIPPED.read_text())
    assert set(document["deploymentTypes"]) == set(TOKEN_TYPES)
    for kind, block in document["deploymentTypes"].items():
        assert len(block["models"]) >= 20, kind
        for family, row in block["models"].items():
            assert row["source"], (kind, family)
            # Every price names its Azure meter; no listed model is priced at 0.
            assert set(row["meters"]) >= {"input"}, (kind, family)
            assert {k for k in ("input", "cachedInput", "output") if k in row} == set(row["meters"])
            assert all(row[k] > 0 for k in row["meters"]), (kind, family)


@pytest.mark.parametrize(
    ("kind", "model", "expected"),
    [
        # Per million tokens, from the meters the table names (gpt-4o 0806, eastus).
        ("GlobalStandard", "gpt-4o-2024-08-06", (2.5, 1.25, 10.0)),
        ("DataZoneStandard", "gpt-4o-2024-08-06", (2.75, 1.375, 11.0)),
        ("Standard", "gpt-4o-2024-08-06", (2.75, 1.375, 11.0)),
        ("GlobalBatch", "gpt-4o-2024-08-06", (1.25, 1.25, 5.0)),
        ("DataZoneBatch", "gpt-4o-2024-08-06", (1.375, 1.375, 5.5)),
        # The Azure-Samples model: the name Azure answers with, billed as version 0125.
        ("GlobalStandard", "gpt-35-turbo", (0.5, 0.5, 1.5)),
        ("Standard", "gpt-35-turbo", (0.55, 0.55, 1.65)),
        ("Standard", "gpt-35-turbo-0613", (1.5, 1.5, 2.0)),
        ("Standard", "gpt-4-0613", (30.0, 30.0, 60.0)),
        ("DataZoneStandard", "text-embedding-ada-002", (0.11, 0.11, 0.0)),
    ],
)
def test_each_deployment_type_is_priced_at_its_own_meter(
    kind: str, model: str, expected: tuple[float, float, float]
) -> None:
    pricing = Pricing(load_price_table(), deployment_types={"dep": kind})
    dims, cost = pricing.charge(model, "dep", TokenCounts(1_000_000, 1_000_000, 2_000_000))
    assert (dims["DeploymentType"], dims["Priced"]) == (kind, "true")
    price = pricing.price_of(model, kind)
    assert price is not None
    assert (price.input, price.cached_input, price.output) == pytest.approx(expected)
    assert cost["Cost"] == pytest.approx(expected[0] + expected[2])


def test_a_deployment_not_named_is_global_standard_and_names_are_case_blind() -> None:
    pricing = Pricing(load_price_table(), deployment_types={"EU-Chat": "DataZoneStandard"})
    counts = TokenCounts(1_000_000, 0, 1_000_000)
    assert pricing.charge("gpt-4o", "eu-chat", counts)[0]["DeploymentType"] == "DataZoneStandard"
    assert pricing.charge("gpt-4o", "other", counts)[0]["DeploymentType"] == "GlobalStandard"
    assert pricing.charge("gpt-4o", None, counts)[1]["Cost"] == pytest.approx(2.5)


def test_a_type_the_model_is_not_sold_at_is_unpriced_never_another_types_price() -> None:
    # gpt-4 (0613) has no Data Zone meter.
    pricing = Pricing(load_price_table(), deployment_types={"dz": "DataZoneStandard"})
    dims, cost = pricing.charge("gpt-4-0613", "dz", TokenCounts(100, 100, 200))
    assert (dims["Priced"], dims["DeploymentType"], cost["Cost"]) == (
        "false",
        "DataZoneStandard",
        0.0,
    )


def test_a_provisioned_sku_bills_by_the_hour_like_the_provisioned_list() -> None:
    pricing = Pricing(
        load_price_table(),
        frozenset({"ptu-b"}),
        deployment_types={"ptu-a": "DataZoneProvisionedManaged"},
    )
    a, cost_a = pricing.charge("gpt-4o", "ptu-a", TokenCounts(10, 10, 20))
    b, _ = pricing.charge("gpt-4o", "ptu-b", TokenCounts(10, 10, 20))
    assert (a["Billing"], a["DeploymentType"], cost_a["Cost"]) == (
        "provisioned",
        "DataZoneProvisionedManaged",
        0.0,
    )
    assert (b["Billing"], b["DeploymentType"]) == ("provisioned", "Provisioned")


def test_the_setting_maps_deployments_to_known_types_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEBACK_DEPLOYMENT_TYPES", '{"eu-chat": "DataZoneStandard"}')
    assert load_settings().deployment_types == {"eu-chat": "DataZoneStandard"}
    monkeypatch.setenv("CHARGEBACK_DEPLOYMENT_TYPES", '{"eu-chat": "DataZone"}')
    with pytest.raises(ConfigurationError, match="app setting CHARGEBACK_DEPLOYMENT_TYPES"):
        load_settings()


def test_an_older_single_type_file_still_loads_for_its_type(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "version": "dz-only",
                "currency": "EUR",
                "taken": "2026-01-01",
                "deploymentType": "DataZoneStandard",
                "models": {"gpt-4o": {"input": 3, "output": 12}},
            }
        )
    )
    table = load_price_table(path)
    assert table.price_of("gpt-4o", "DataZoneStandard") is not None
    assert table.price_of("gpt-4o", "GlobalStandard") is None
