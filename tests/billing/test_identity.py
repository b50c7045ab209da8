"""Who pays: the identity order, the map file, the gateway's businessUnit as a fallback, the
explicit unassigned bucket, masked keys only; and the dimensions on real events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargeback.billing.identity import PayerResolver, load_identity_map
from chargeback.emit import MemorySink
from chargeback.emit.deadletter import MemoryDeadLetters
from chargeback.errors import ConfigurationError
from chargeback.gateway import GatewayCall, parse_gateway_message
from chargeback.pipeline import Processor
from chargeback.receive import RawMessage
from chargeback.settings import load_settings

SAMPLE_MAP = Path(__file__).resolve().parents[2] / "samples" / "identity-map.json"


def call(**fields: Any) -> GatewayCall:
    return GatewayCall(
        shape="v1", request_id="r", timestamp=datetime(2026, 11, 1, tzinfo=UTC), **fields
    )


@pytest.fixture
def resolver() -> PayerResolver:
    return PayerResolver(
        load_identity_map(SAMPLE_MAP), ("appId", "subscriptionId", "productId", "appKey")
    )


def test_the_first_identity_in_the_order_that_the_map_knows_decides(
    resolver: PayerResolver,
) -> None:
    finance = call(
        app_id="0b7e0a8c-finance-bot",
        subscription_id="mkt-writer-91cc",
        product_id="research",
        subscription_name="Finance chatbot",
    )
    assert dict(resolver.dimensions(finance)) == {
        "Application": "Finance chatbot",
        "BusinessUnit": "finance",
        "CostCenter": "CC-1001",
        "IdentitySource": "appId",
    }
    by_subscription = PayerResolver(
        resolver.map, ("subscriptionId", "appId", "productId", "appKey")
    )
    assert by_subscription.payer(finance).business_unit == "marketing"
    assert by_subscription.payer(finance).source == "subscriptionId"


def test_a_product_entry_sets_the_cost_center_and_keeps_the_callers_own_name(
    resolver: PayerResolver,
) -> None:
    payer = resolver.payer(
        call(
            subscription_id="rnd-agent-20aa",
            subscription_name="Research agent",
            product_id="research",
        )
    )
    assert (payer.application, payer.business_unit, payer.cost_center, payer.source) == (
        "Research agent",
        "research",
        "CC-3150",
        "productId",
    )


def test_the_map_wins_over_the_gateway_and_the_gateway_word_stays_visible(
    resolver: PayerResolver,
) -> None:
    dims = resolver.dimensions(call(app_id="0b7e0a8c-finance-bot", business_unit="marketing"))
    assert dims["BusinessUnit"] == "finance"
    assert dims["GatewayBusinessUnit"] == "marketing"


def test_an_unmapped_caller_falls_back_to_the_gateway_business_unit(
    resolver: PayerResolver,
) -> None:
    dims = resolver.dimensions(call(subscription_id="other", business_unit="legal"))
    assert dict(dims) == {
        "Application": "other",
        "BusinessUnit": "legal",
        "CostCenter": "CC-4200",
        "IdentitySource": "gateway",
    }


def test_an_unmapped_caller_without_a_business_unit_is_unassigned_never_dropped(
    resolver: PayerResolver,
) -> None:
    assert dict(resolver.dimensions(call(app_key="hrkey-01XXXX"))) == {
        "Application": "hrkey-01XXXX",
        "BusinessUnit": "unassigned",
        "CostCenter": "unassigned",
        "IdentitySource": "unassigned",
    }
    assert resolver.payer(call()).application == "unassigned"


def test_a_masked_key_can_be_mapped(resolver: PayerResolver) -> None:
    payer = resolver.payer(call(app_key="legal-keXXXX"))
    assert (payer.business_unit, payer.source) == ("legal", "appKey")


def test_map_entries_the_identity_order_leaves_out_fail_fast() -> None:
    with pytest.raises(
        ConfigurationError,
        match="CHARGEBACK_IDENTITY_ORDER=appId,subscriptionId,productId leaves out appKey",
    ):
        PayerResolver.from_settings(load_settings(identity_map_file=SAMPLE_MAP))


def test_no_map_means_gateway_or_unassigned() -> None:
    resolver = PayerResolver(load_identity_map(None))
    assert resolver.payer(call(app_id="x", business_unit="finance")).source == "gateway"
    assert resolver.payer(call(app_id="x")).source == "unassigned"


def test_dimensions_are_worked_out_once_per_caller(resolver: PayerResolver) -> None:
    first = resolver.dimensions(call(app_id="0b7e0a8c-finance-bot"))
    assert resolver.dimensions(call(app_id="0b7e0a8c-finance-bot")) is first


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{oops", "not JSON"),
        ('["a"]', "must be an object"),
        ('{"appId": {"x": {"costCenter": "CC"}}}', "businessUnit"),
        ('{"appId": {"x": {"businessUnit": "f", "colour": "red"}}}', "colour"),
        ('{"subscriptions": {}}', "subscriptions"),
        ('{"appKey": {"legal-key-fedcba9876": {"businessUnit": "legal"}}}', "never a whole key"),
    ],
)
def test_a_malformed_map_fails_fast_naming_the_setting(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as raised:
        load_identity_map(path)
    assert "CHARGEBACK_IDENTITY_MAP_FILE" in str(raised.value)
    assert problem in str(raised.value)
    assert "fedcba9876" not in str(raised.value)


def test_the_identity_order_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEBACK_IDENTITY_ORDER", "productId, appId")
    assert load_settings().identity_order == ("productId", "appId")
    monkeypatch.setenv("CHARGEBACK_IDENTITY_ORDER", "appId,userName")
    with pytest.raises(ConfigurationError, match="CHARGEBACK_IDENTITY_ORDER"):
        load_settings()
    monkeypatch.setenv("CHARGEBACK_IDENTITY_ORDER", "appId,appId")
    with pytest.raises(ConfigurationError, match="listed twice"):
        load_settings()


def test_events_carry_who_pays_and_what_it_costs() -> None:
    settings = load_settings(
        identity_map_file=SAMPLE_MAP,
        identity_order=("appId", "subscriptionId", "productId", "appKey"),
    )
    sink = MemorySink()
    processor = Processor(settings, sink, MemoryDeadLetters())
    message = {
        "version": 1,
        "requestId": "r-1",
        "timestamp": "2026-11-02T10:00:00Z",
        "method": "POST",
        "url": "https://gw/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        "statusCode": 200,
        "appId": "0b7e0a8c-finance-bot",
        "subscriptionId": "fin-chatbot-7f3a",
        "model": "gpt-4o-2024-08-06",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
    }
    report = processor.process_batch([RawMessage(json.dumps(message).encode())])
    assert report.emitted == 1
    event = sink.events[0]
    assert {
        k: event.dimensions[k]
        for k in (
            "Application",
            "BusinessUnit",
            "CostCenter",
            "IdentitySource",
            "Billing",
            "Priced",
            "Currency",
            "PriceVersion",
        )
    } == {
        "Application": "Finance chatbot",
        "BusinessUnit": "finance",
        "CostCenter": "CC-1001",
        "IdentitySource": "appId",
        "Billing": "paygo",
        "Priced": "true",
        "Currency": "USD",
        "PriceVersion": "azure-openai-2026-08-11",
    }
    assert event.measurements["Cost"] == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)


def test_a_credential_shaped_identity_in_the_map_matches_it_as_it_arrives(
    tmp_path: Path,
) -> None:
    """An app id written without dashes is 32 hex digits, the shape of a key: it arrives masked
    (gateway/masking.py), and the map's entry for it is masked the same way on load."""
    app = "0b7e0a8c5f3b4a2e9c7d1b2e3f4a5b6c"
    path = tmp_path / "map.json"
    path.write_text(
        json.dumps({"appId": {app: {"application": "Ledger", "businessUnit": "finance"}}})
    )
    resolver = PayerResolver(load_identity_map(path))
    message = {
        "version": 1,
        "requestId": "r-1",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "url": "https://gw/openai/deployments/gpt-4o/chat/completions",
        "statusCode": 200,
        "appId": app,
    }
    arrived = parse_gateway_message(RawMessage(json.dumps(message).encode()), max_bytes=10**6)
    assert arrived.app_id == "0b7e0a8cXXXX"
    assert resolver.payer(arrived).application == "Ledger"
    assert resolver.payer(arrived).source == "appId"
