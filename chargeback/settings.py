"""The one typed settings object, read from app settings (environment variables).

Loaded once per process by :func:`get_settings`. A wrong value fails fast with a message that
names the app setting to fix. Every setting read here is listed in `local.settings.sample.json`
and set by the Bicep in `infra/`; `tests/test_settings.py` checks that.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from chargeback.errors import ConfigurationError

__all__ = ["Settings", "get_settings"]

# The exporter's own check (azure/monitor/opentelemetry/exporter/_connection_string_parser.py).
_GUID = re.compile("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Settings(BaseSettings):
    """App settings of the processor. Names are the environment variables Azure sets."""

    # An app setting left empty (as in local.settings.sample.json) means "not set".
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, env_ignore_empty=True
    )

    # --- Where events go -------------------------------------------------------------------
    applicationinsights_connection_string: str | None = Field(
        default=None, validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING"
    )
    # "Authorization=AAD;ClientId=<client id>": send with a managed identity (local auth off).
    applicationinsights_authentication_string: str | None = Field(
        default=None, validation_alias="APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
    )
    # Turns on the Functions worker's own OpenTelemetry integration; when true events go through
    # its provider rather than a second one, without confirmed delivery (README, Reliability).
    worker_telemetry_enabled: bool = Field(
        default=False, validation_alias="PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
    )
    cloud_role_name: str = Field(
        default="chargeback-processor", validation_alias="CHARGEBACK_CLOUD_ROLE_NAME"
    )
    # Seconds the exporter may spend on one flush before the batch is retried.
    export_timeout_seconds: float = Field(
        default=30.0, gt=0, validation_alias="CHARGEBACK_EXPORT_TIMEOUT_SECONDS"
    )

    # --- How tokens are worked out ----------------------------------------------------------
    # Deployment name -> model name, for deployments not named after their model.
    deployment_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="CHARGEBACK_DEPLOYMENT_MODELS"
    )
    # An image given by URL has no known size offline: bill it as this detail level.
    image_url_policy: Literal["high", "low", "skip"] = Field(
        default="high", validation_alias="CHARGEBACK_IMAGE_URL_POLICY"
    )
    # Model-name prefix -> tokenizer file for a family with no OpenAI encoding (Llama, Mistral,
    # ...): a Hugging Face tokenizer.json, or a tiktoken ranks file (optionally
    # {"path": ..., "split": "cl100k_base"}); without one such calls count with o200k_base times
    # the family's factor, flagged tokenizer-approximate (chargeback/tokens/families.py).
    tokenizers: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, validation_alias="CHARGEBACK_TOKENIZERS"
    )
    # Model-name prefixes whose calls are dead-lettered (unknown-model) when their tokens must
    # be estimated, rather than billed on an approximation.
    unestimated_models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="CHARGEBACK_UNESTIMATED_MODELS"
    )

    # --- Who pays and what it costs ---------------------------------------------------------
    prices_file: Path | None = Field(default=None, validation_alias="CHARGEBACK_PRICES_FILE")
    identity_map_file: Path | None = Field(
        default=None, validation_alias="CHARGEBACK_IDENTITY_MAP_FILE"
    )
    # Which caller identity decides who pays, first match in the identity map wins
    # (chargeback/identity.py); appKey, the masked key of the legacy message shapes, is opt-in.
    identity_order: Annotated[
        tuple[Literal["appId", "subscriptionId", "productId", "appKey"], ...], NoDecode
    ] = Field(
        default=("appId", "subscriptionId", "productId"),
        validation_alias="CHARGEBACK_IDENTITY_ORDER",
    )
    provisioned_deployments: Annotated[frozenset[str], NoDecode] = Field(
        default_factory=frozenset, validation_alias="CHARGEBACK_PROVISIONED_DEPLOYMENTS"
    )
    # Deployment name -> Azure deployment SKU name (GlobalStandard, DataZoneStandard, Standard,
    # GlobalBatch, DataZoneBatch, or a provisioned one): which prices its calls bill at. A
    # deployment not named here is GlobalStandard (chargeback/billing/pricing.py).
    deployment_types: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="CHARGEBACK_DEPLOYMENT_TYPES"
    )

    # --- Limits -------------------------------------------------------------------------------
    max_message_bytes: int = Field(
        default=1_048_576, gt=0, validation_alias="CHARGEBACK_MAX_MESSAGE_BYTES"
    )

    # --- Dead letters -----------------------------------------------------------------------
    deadletter_container: str = Field(
        default="chargeback-deadletter", validation_alias="CHARGEBACK_DEADLETTER_CONTAINER"
    )
    # A connection string (Azurite, local) ...
    deadletter_connection_string: str | None = Field(
        default=None, validation_alias="DeadLetterStorage"
    )
    # ... or, in Azure, the blob endpoint reached with the managed identity.
    deadletter_service_uri: str | None = Field(
        default=None, validation_alias="DeadLetterStorage__serviceUri"
    )
    deadletter_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DeadLetterStorage__clientId", "AZURE_CLIENT_ID"),
    )

    @field_validator("deployment_models", "deployment_types", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON object: {exc}") from None
        return value

    @field_validator("applicationinsights_connection_string")
    @classmethod
    def _connection_string(cls, value: str | None) -> str | None:
        """Checked as the exporter will check it on the first batch (its connection-string
        parser: `key=value` pairs, a GUID instrumentation key), so a wrong value fails here,
        named, instead of failing every batch. The value is never echoed: it may be secret."""
        if value is None:
            return None
        pairs = [part.split("=") for part in value.split(";")]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("not a connection string of key=value pairs separated by ';'")
        fields = {key.strip().lower(): item.strip() for key, item in pairs}
        if not _GUID.match(fields.get("instrumentationkey", "")):
            raise ValueError("InstrumentationKey=<a GUID> is missing or not a GUID")
        endpoint = fields.get("ingestionendpoint")
        if endpoint is not None and not endpoint.startswith(("https://", "http://")):
            raise ValueError("IngestionEndpoint is not an http(s) URL")
        return value

    @field_validator("deployment_types")
    @classmethod
    def _known_deployment_types(cls, value: dict[str, str]) -> dict[str, str]:
        from chargeback.billing.pricing import DEPLOYMENT_TYPES

        for deployment, kind in value.items():
            if kind not in DEPLOYMENT_TYPES:
                known = ", ".join(DEPLOYMENT_TYPES)
                raise ValueError(f"deployment {deployment!r}: {kind!r} is not one of {known}")
        return value

    @field_validator("tokenizers", mode="before")
    @classmethod
    def _tokenizer_files(cls, value: Any) -> Any:
        from chargeback.tokens.families import parse_tokenizers_setting

        return parse_tokenizers_setting(value)

    @field_validator(
        "identity_order", "provisioned_deployments", "unestimated_models", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("identity_order")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an identity is listed twice")
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; a bad value names the app setting to fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"app setting {err['loc'][0]}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
