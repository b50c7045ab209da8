"""Prices: what one call costs, from a versioned price table finance can check.

The table ships in the repo (``chargeback/data/prices.json``: Azure OpenAI Global Standard list
prices, with the date they were taken and the Azure meter each one comes from). A file named by
the app setting ``CHARGEBACK_PRICES_FILE`` replaces it whole, so the prices in force are always
exactly one file. JSON always; YAML (``.yaml``/``.yml``) only where PyYAML is importable, which
the Function App is not (``requirements.txt`` does not install it).

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
    "SHIPPED_PRICES",
    "ModelPrice",
    "PriceTable",
    "Pricing",
    "load_price_table",
]

log = logging.getLogger("chargeback")

SHIPPED_PRICES = "chargeback/data/prices.json"
PER_MILLION = 1_000_000.0

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
    note: str | None = None


class _PriceFile(StrictModel):
    version: str = Field(min_length=1, max_length=128)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    taken: date
    unit: str = "1M tokens"
    source: str | None = None
    deployment_type: str | None = Field(default=None, alias="deploymentType")
    notes: str | None = None
    models: dict[str, _PriceRow] = Field(min_length=1)

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
    models: Mapping[str, ModelPrice]

    def family_of(self, model: str | None) -> str | None:
        """The table's model family for a (dated) model name, or None."""
        if not model:
            return None
        name = model.strip().lower()
        if "/" in name:  # "openai/gpt-4o" and other provider-prefixed names
            name = name.rsplit("/", 1)[1]
        best: str | None = None
        for family in self.models:
            if (
                name.startswith(family)
                and (best is None or len(family) > len(best))
                and _VERSION_SUFFIX.fullmatch(name, len(family))
            ):
                best = family
        return best

    def price_of(self, model: str | None) -> ModelPrice | None:
        family = self.family_of(model)
        return None if family is None else self.models[family]


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
    models: dict[str, ModelPrice] = {}
    for name, row in parsed.models.items():
        family = name.strip().lower()
        if not family or family in models:
            raise ConfigurationError(f"{where}: model {name!r} is empty or listed twice")
        cached = row.input if row.cached_input is None else row.cached_input
        models[family] = ModelPrice(family, row.input, cached, row.output)
    return PriceTable(parsed.version, parsed.currency, parsed.taken, parsed.source, models)


# --- Pricing calls --------------------------------------------------------------------------


class Pricing:
    """Prices calls for one processor: the table and the provisioned deployments, loaded once;
    model lookups cached, so the per-message work is a dict lookup and a few multiplications."""

    def __init__(self, table: PriceTable, provisioned: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.provisioned = frozenset(name.lower() for name in provisioned)
        self._prices: dict[str | None, ModelPrice | None] = {}
        common = {"Currency": table.currency, "PriceVersion": table.version}
        self._provisioned_dims = {**common, "Billing": "provisioned", "Priced": "true"}
        self._unpriced_dims = {**common, "Billing": "paygo", "Priced": "false"}
        self._priced_dims = {**common, "Billing": "paygo", "Priced": "true"}
        self._zero = {"Cost": 0.0}

    @classmethod
    def from_settings(cls, settings: Settings) -> Pricing:
        return cls(load_price_table(settings.prices_file), settings.provisioned_deployments)

    def price_of(self, model: str | None) -> ModelPrice | None:
        try:
            return self._prices[model]
        except KeyError:
            price = self._prices[model] = self.table.price_of(model)
            if price is None:
                log.warning(
                    "chargeback: no price for model %r in price table %s: its calls cost 0"
                    " with Priced=false",
                    model,
                    self.table.version,
                )
            return price

    def charge(
        self, model: str | None, deployment: str | None, counts: TokenCounts
    ) -> tuple[Mapping[str, str], Mapping[str, float]]:
        """The event's price dimensions and its ``Cost`` measurement. The mappings returned
        may be shared between calls: do not change them."""
        if deployment and deployment.lower() in self.provisioned:
            return self._provisioned_dims, self._zero
        price = self.price_of(model)
        if price is None:
            return self._unpriced_dims, self._zero
        cost = price.cost(counts)
        if not math.isfinite(cost):  # counts are bounded, but never emit a NaN as money
            return self._unpriced_dims, self._zero
        return self._priced_dims, {"Cost": cost}
