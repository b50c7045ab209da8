"""Settings load once and fail fast, naming the app setting to fix."""

from __future__ import annotations

import pytest

from chargeback.errors import ConfigurationError
from chargeback.settings import load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.deployment_models == {}
    assert settings.identity_order == ("appId", "subscriptionId", "productId")


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEBACK_DEPLOYMENT_MODELS", '{"chat": "gpt-4o-2024-08-06"}')
    monkeypatch.setenv("CHARGEBACK_IDENTITY_ORDER", "subscriptionId, appId")
    monkeypatch.setenv("CHARGEBACK_PROVISIONED_DEPLOYMENTS", "ptu-a,ptu-b")
    monkeypatch.setenv("CHARGEBACK_PRICES_FILE", "")  # empty means unset
    settings = load_settings()
    assert settings.deployment_models == {"chat": "gpt-4o-2024-08-06"}
    assert settings.identity_order == ("subscriptionId", "appId")
    assert settings.provisioned_deployments == frozenset({"ptu-a", "ptu-b"})
    assert settings.prices_file is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CHARGEBACK_DEPLOYMENT_MODELS", "{oops", "app setting CHARGEBACK_DEPLOYMENT_MODELS"),
        ("CHARGEBACK_MAX_MESSAGE_BYTES", "-1", "app setting CHARGEBACK_MAX_MESSAGE_BYTES"),
        ("CHARGEBACK_IDENTITY_ORDER", "appId,team", "app setting CHARGEBACK_IDENTITY_ORDER"),
        ("CHARGEBACK_IMAGE_URL_POLICY", "medium", "app setting CHARGEBACK_IMAGE_URL_POLICY"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=says):
        load_settings()
