"""Prices: what one call costs, from a versioned price table finance can check.

The table ships in the repo (``chargeback/data/prices.json``: Azure OpenAI list prices per
deployment type, Global Standard, Data Zone Standard, Regional Standard, Global Batch and Data
Zone Batch, with the date they were taken and the Azure meter each one comes from; rebuilt by
``python -m chargeback prices update``). A file named by the app setting
``CHARGEBACK_PRICES_FILE`` replaces it whole, so the prices in force are always exactly one file.
A file holds either ``deploymentTypes`` (deployment type -> ``models``) or, the older form, one
``models`` table for one ``deploymentType`` (default GlobalStandard).

Which deployment type a call is billed at comes from ``CHARGEBACK_DEPLOYMENT_TYPES`` (deployment
name -> Azure's deployment SKU name); a deployment it does not name is Global Standard. The names
are the SKU names of "Azure OpenAI deployment types" (learn.microsoft.com/azure/ai-foundry/openai/
how-to/deployment-types): GlobalStandard, DataZoneStandard, Standard (regional), GlobalBatch,
DataZoneBatch, and the provisioned ones GlobalProvisionedManaged, DataZoneProvisionedManaged,
ProvisionedManaged, which bill by the hour like ``CHARGEBACK_PROVISIONED_DEPLOYMENTS``. A model
without a price for its deployment type is unpriced (cost 0, ``Priced=false``), never priced at
another type's price. Each event says which table (``PriceVersion``) and deployment type
(``DeploymentType``) its cost used. JSON always; YAML (``.yaml``/``.yml``) only where PyYAML is
importable, which the Function App is not (``requirements.txt`` does not install it).

A call's cost, per million tokens::

    (prompt - cached) * input + cached * cachedInput + completion * output

The API's usage already counts cached tokens inside the prompt tokens
(``prompt_tokens_details.cached_tokens``, ``input_tokens_details.cached_tokens``) and reasoning
tokens inside the completion tokens (``completion_tokens_details.reasoning_tokens``,
``output_tokens_details.reasoning_tokens``): reasoning bills as output and is not added again.

A dated model name prices as its family: the longest model name of the table that the name
starts with, followed by nothing or a version date only (``gpt-4o-mini-2024-07-18`` is
``gpt-4o-mini``; ``gpt-4-0613`` is ``gpt-4``). A name that is no family plus a date
(``gpt-4o-mini`` with only ``gpt-4o`` in the table) is unknown rather than priced as its
neighbour: it costs 0 with ``Priced=false``, in every table, never silently.

A deployment listed in ``CHARGEBACK_PROVISIONED_DEPLOYMENTS`` is paid by the hour, not per
token: its calls carry their tokens, ``Cost`` 0 and ``Billing=provisioned``; the queries share
the PTU bill out by tokens (``queries/ptu-share-out.kql``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator

from chargeback.billing.documents import StrictModel, load_document, validation_problems
from chargeback.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chargeback.settings import Settings
    from chargeback.tokens import TokenCounts

__all__ = [
    "DEFAULT_DEPLOYMENT_TYPE",
    "DEPLOYMENT_TYPES",
    "SHIPPED_PRICES",
    "ModelPrice",
    "PriceTable",
    "Pricing",
    "load_price_table",
]

log = logging.getLogger("chargeback")

SHIPPED_PRICES = "chargeback/data/prices.json"
PER_MILLION = 1_000_000.0

#: Azure's deployment SKU names billed per token, and those billed by the hour (provisioned).
TOKEN_DEPLOYMENT_TYPES = (
    "GlobalStandard",
    "DataZoneStandard",
    "Standard",
    "GlobalBatch",
    "DataZoneBatch",
)
PROVISIONED_DEPLOYMENT_TYPES = (
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
    "ProvisionedManaged",
)
DEPLOYMENT_TYPES = TOKEN_DEPLOYMENT_TYPES + PROVISIONED_DEPLOYMENT_TYPES
#: A deployment the setting does not name.
DEFAULT_DEPLOYMENT_TYPE = "GlobalStandard"

# What may follow a model family in a dated model name: nothing, or a version date
# ("-2024-08-06", or Azure's older "-0613" form).
_VERSION_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{4})?")


# --- The price file -------------------------------------------------------------------------


class _PriceRow(StrictModel):
    input: float = Field(ge=0, allow_inf_nan=False)
    cached_input: float | None = Field(default=None, alias="cachedInput", ge=0, allow_inf_nan=False)
    output: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    #: The Azure meter names each price was read from, so finance can check them.
    meters: dict[str, str] | None = None
    #: Where the row's prices come from.
    source: str | None = None
    note: str | None = None


class _DeploymentTypePrices(StrictModel):
    models: dict[str, _PriceRow] = Field(min_length=1)


class _PriceFile(StrictModel):
    version: str = Field(min_length=1, max_length=128)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    taken: date
    unit: str = "1M tokens"
    source: str | None = None
    deployment_type: str = Field(default=DEFAULT_DEPLOYMENT_TYPE, alias="deploymentType")
    notes: str | None = None
    reference_region: str | None = Field(default=None, alias="referenceRegion")
    missing: list[str] | None = None
    models: dict[str, _PriceRow] | None = None
    deployment_types: dict[str, _DeploymentTypePrices] | None = Field(
        default=None, alias="deploymentTypes"
    )

    @field_validator("deployment_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TOKEN_DEPLOYMENT_TYPES:
            raise ValueError(f"must be one of {', '.join(TOKEN_DEPLOYMENT_TYPES)}")
        return value

    @field_validator("deployment_types")
    @classmethod
    def _known_types(
        cls, value: dict[str, _DeploymentTypePrices] | None
    ) -> dict[str, _DeploymentTypePrices] | None:
        for name in value or {}:
            if name not in TOKEN_DEPLOYMENT_TYPES:
                raise ValueError(f"{name!r} is not one of {', '.join(TOKEN_DEPLOYMENT_TYPES)}")
        return value

    def tables(self) -> dict[str, dict[str, _PriceRow]]:
        """Deployment type -> model rows, whichever form the file has."""
        tables = {name: prices.models for name, prices in (self.deployment_types or {}).items()}
        if self.models:
            tables.setdefault(self.deployment_type, {}).update(self.models)
        return tables

    @field_validator("unit")
    @classmethod
    def _per_million(cls, value: str) -> str:
        if value.replace(" ", "").lower() != "1mtokens":
            raise ValueError("prices must be per million tokens (unit: '1M tokens')")
        return value


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one model family, per million tokens."""

    family: str
    input: float
    cached_input: float
    output: float

    def cost(self, counts: TokenCounts) -> float:
        cached = min(counts.cached, counts.prompt)
        return (
            (counts.prompt - cached) * self.input
            + cached * self.cached_input
            + counts.completion * self.output
        ) / PER_MILLION


@dataclass(frozen=True)
class PriceTable:
    version: str
    currency: str
    taken: date
    source: str | None
    #: Deployment type -> model family -> prices.
    types: Mapping[str, Mapping[str, ModelPrice]]

    @property
    def models(self) -> Mapping[str, ModelPrice]:
        """The Global Standard prices (or the only deployment type the file has)."""
        if DEFAULT_DEPLOYMENT_TYPE in self.types or len(self.types) != 1:
            return self.types.get(DEFAULT_DEPLOYMENT_TYPE, {})
        return next(iter(self.types.values()))

    def family_of(
        self, model: str | None, deployment_type: str = DEFAULT_DEPLOYMENT_TYPE
    ) -> str | None:
        """The table's model family for a (dated) model name, or None."""
        if not model:
            return None
        name = model.strip().lower()
        if "/" in name:  # "openai/gpt-4o" and other provider-prefixed names
            name = name.rsplit("/", 1)[1]
        best: str | None = None
        for family in self.types.get(deployment_type, {}):
            if (
                name.startswith(family)
                and (best is None or len(family) > len(best))
                and _VERSION_SUFFIX.fullmatch(name, len(family))
            ):
                best = family
        return best

    def price_of(
        self, model: str | None, deployment_type: str = DEFAULT_DEPLOYMENT_TYPE
    ) -> ModelPrice | None:
        family = self.family_of(model, deployment_type)
        return None if family is None else self.types[deployment_type][family]


def load_price_table(path: Path | None = None) -> PriceTable:
    """The file named by CHARGEBACK_PRICES_FILE, else the shipped table. Checked whole:
    a malformed file raises `ConfigurationError` naming the setting and the problem."""
    if path is None:
        where = f"shipped price table {SHIPPED_PRICES}"
        text = resources.files("chargeback").joinpath("data/prices.json").read_text("utf-8")
        document: Any = json.loads(text)
    else:
        where = f"app setting CHARGEBACK_PRICES_FILE={path}"
        document = load_document(path, "CHARGEBACK_PRICES_FILE")
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where}: the price file must be an object with 'models'")
    try:
        parsed = _PriceFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: {validation_problems(exc)}") from None
    tables = parsed.tables()
    if not tables:
        raise ConfigurationError(f"{where}: the price file has no 'models' nor 'deploymentTypes'")
    types = {name: _models(where, rows) for name, rows in tables.items()}
    return PriceTable(parsed.version, parsed.currency, parsed.taken, parsed.source, types)


def _models(where: str, rows: Mapping[str, _PriceRow]) -> dict[str, ModelPrice]:
    models: dict[str, ModelPrice] = {}
    for name, row in rows.items():
        family = name.strip().lower()
        if not family or family in models:
            raise ConfigurationError(f"{where}: model {name!r} is empty or listed twice")
        cached = row.input if row.cached_input is None else row.cached_input
        models[family] = ModelPrice(family, row.input, cached, row.output)
    return models


# --- Pricing calls --------------------------------------------------------------------------


class Pricing:
    """Prices calls for one processor: the table, the deployment types and the provisioned
    deployments, loaded once; model lookups cached, so the per-message work is a dict lookup
    and a few multiplications."""

    def __init__(
        self,
        table: PriceTable,
        provisioned: frozenset[str] = frozenset(),
        deployment_types: Mapping[str, str] | None = None,
    ) -> None:
        self.table = table
        types = {name.lower(): kind for name, kind in (deployment_types or {}).items()}
        self.provisioned = frozenset(name.lower() for name in provisioned) | {
            name for name, kind in types.items() if kind in PROVISIONED_DEPLOYMENT_TYPES
        }
        self.deployment_types = types
        self._prices: dict[tuple[str | None, str], ModelPrice | None] = {}
        self._dims: dict[tuple[str, str, str], dict[str, str]] = {}
        self._zero = {"Cost": 0.0}

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricing:
        return cls(
            load_price_table(settings.prices_file),
            settings.provisioned_deployments,
            settings.deployment_types,
        )

    def _dimensions(self, kind: str, billing: str, priced: str) -> Mapping[str, str]:
        """The price dimensions, one shared mapping per combination."""
        key = (kind, billing, priced)
        if key not in self._dims:
            self._dims[key] = {
                "Currency": self.table.currency,
                "PriceVersion": self.table.version,
                "Billing": billing,
                "Priced": priced,
                "DeploymentType": kind,
            }
        return self._dims[key]

    def deployment_type(self, deployment: str | None) -> str:
        """The deployment's type: the setting's, else Global Standard."""
        if not deployment:
            return DEFAULT_DEPLOYMENT_TYPE
        return self.deployment_types.get(deployment.lower(), DEFAULT_DEPLOYMENT_TYPE)

    def price_of(
        self, model: str | None, deployment_type: str = DEFAULT_DEPLOYMENT_TYPE
    ) -> ModelPrice | None:
        try:
            return self._prices[model, deployment_type]
        except KeyError:
            price = self.table.price_of(model, deployment_type)
            self._prices[model, deployment_type] = price
            if price is None:
                log.warning(
                    "chargeback: no %s price for model %r in price table %s: its calls cost 0"
                    " with Priced=false",
                    deployment_type,
                    model,
                    self.table.version,
                )
            return price

    def charge(
        self, model: str | None, deployment: str | None, counts: TokenCounts
    ) -> tuple[Mapping[str, str], Mapping[str, float]]:
        """The event's price dimensions and its ``Cost`` measurement. The mappings returned
        may be shared between calls: do not change them."""
        kind = self.deployment_type(deployment)
        if deployment and deployment.lower() in self.provisioned:
            # Listed as provisioned without its provisioned SKU name: "Provisioned".
            if kind not in PROVISIONED_DEPLOYMENT_TYPES:
                kind = "Provisioned"
            return self._dimensions(kind, "provisioned", "true"), self._zero
        price = self.price_of(model, kind)
        if price is None:
            return self._dimensions(kind, "paygo", "false"), self._zero
        cost = price.cost(counts)
        if not math.isfinite(cost):  # counts are bounded, but never emit a NaN as money
            return self._dimensions(kind, "paygo", "false"), self._zero
        return self._dimensions(kind, "paygo", "true"), {"Cost": cost}
