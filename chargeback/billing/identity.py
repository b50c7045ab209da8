"""Who pays: each call's application, business unit and cost center.

The caller's identities are tried in the order of the app setting ``CHARGEBACK_IDENTITY_ORDER``
(default ``appId,subscriptionId,productId``; add ``appKey`` to map the legacy shapes' keys)
against the identity map named by ``CHARGEBACK_IDENTITY_MAP_FILE`` (JSON; YAML only where PyYAML
is importable, which the Function App is not). The first identity the map knows decides.
Precedence, highest first:

1. the map's entry for the first identity in that order that has one (``IdentitySource`` is
   ``appId``, ``subscriptionId``, ``productId`` or ``appKey``);
2. the ``businessUnit`` the gateway message carried (``IdentitySource=gateway``): the APIM
   policy's value is a fallback, never an override, because the map is the list finance
   reviews, while the policy's value is set per API or even read from a request header;
3. ``unassigned`` (``IdentitySource=unassigned``): an unmapped caller is charged to an explicit
   bucket and never dropped.

The application is the entry's ``application`` name, else the caller's own name: APIM
subscription name, subscription id, Entra ID app id, masked key, product, else ``unassigned``.
The cost center is the entry's, else its business unit's (``businessUnits`` section), else
``unassigned``.

Map file::

    {
      "businessUnits": {"finance": {"costCenter": "CC-1001"}},
      "appId": {"0b7e0a8c-...": {"application": "Finance chatbot", "businessUnit": "finance"}},
      "subscriptionId": {"mkt-writer-91cc": {"businessUnit": "marketing", "costCenter": "CC-2040"}},
      "productId": {"research": {"businessUnit": "research"}},
      "appKey": {"legal-keXXXX": {"application": "Legal assistant", "businessUnit": "legal"}}
    }

``appKey`` entries are masked keys exactly as the ``AppKey`` dimension shows them (first 8
characters, then ``XXXX``): a whole key is refused (CONTRACTS §2, keys are never stored whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator

from chargeback.billing.documents import StrictModel, load_document, validation_problems
from chargeback.errors import ConfigurationError
from chargeback.gateway import mask_identity, mask_key

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from chargeback.gateway import GatewayCall
    from chargeback.settings import Settings

__all__ = [
    "UNASSIGNED",
    "IdentityKind",
    "IdentityMap",
    "Payer",
    "PayerResolver",
    "load_identity_map",
]

IdentityKind = Literal["appId", "subscriptionId", "productId", "appKey"]
IDENTITY_KINDS: tuple[IdentityKind, ...] = ("appId", "subscriptionId", "productId", "appKey")
DEFAULT_ORDER: tuple[IdentityKind, ...] = ("appId", "subscriptionId", "productId")
UNASSIGNED = "unassigned"
_SETTING = "CHARGEBACK_IDENTITY_MAP_FILE"
_CACHE_LIMIT = 8192


# --- The map file ---------------------------------------------------------------------------


class _Entry(StrictModel):
    business_unit: str = Field(alias="businessUnit", min_length=1, max_length=256)
    cost_center: str | None = Field(default=None, alias="costCenter", min_length=1, max_length=256)
    application: str | None = Field(default=None, min_length=1, max_length=256)
    note: str | None = None


class _BusinessUnit(StrictModel):
    cost_center: str | None = Field(default=None, alias="costCenter", min_length=1, max_length=256)
    name: str | None = None
    note: str | None = None


class _MapFile(StrictModel):
    version: int = 1
    description: str | None = None
    business_units: dict[str, _BusinessUnit] = Field(default_factory=dict, alias="businessUnits")
    app_id: dict[str, _Entry] = Field(default_factory=dict, alias="appId")
    subscription_id: dict[str, _Entry] = Field(default_factory=dict, alias="subscriptionId")
    product_id: dict[str, _Entry] = Field(default_factory=dict, alias="productId")
    app_key: dict[str, _Entry] = Field(default_factory=dict, alias="appKey")

    @field_validator("app_key")
    @classmethod
    def _masked_only(cls, value: dict[str, _Entry]) -> dict[str, _Entry]:
        for key in value:
            if not key.endswith("XXXX") or mask_key(key[:-4]) != key or len(key) > 12:
                raise ValueError(
                    f"appKey entry {key[:8]!r}...: write the masked key as the AppKey dimension"
                    " shows it (first 8 characters, then XXXX), never a whole key"
                )
        return value


@dataclass(frozen=True, slots=True)
class _Target:
    business_unit: str
    cost_center: str | None
    application: str | None


@dataclass(frozen=True)
class IdentityMap:
    """Identity value -> who pays, per identity kind; business unit -> default cost center."""

    entries: Mapping[IdentityKind, Mapping[str, _Target]]
    cost_centers: Mapping[str, str]

    @classmethod
    def empty(cls) -> IdentityMap:
        return cls({kind: {} for kind in IDENTITY_KINDS}, {})


def load_identity_map(path: Path | None) -> IdentityMap:
    """The map named by CHARGEBACK_IDENTITY_MAP_FILE (an empty map when unset). Checked whole:
    a malformed file raises `ConfigurationError` naming the setting and the problem."""
    if path is None:
        return IdentityMap.empty()
    document = load_document(path, _SETTING)
    if not isinstance(document, dict):
        raise ConfigurationError(f"app setting {_SETTING}={path}: the map must be an object")
    try:
        parsed = _MapFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(
            f"app setting {_SETTING}={path}: {validation_problems(exc)}"
        ) from None
    sections: dict[IdentityKind, dict[str, _Entry]] = {
        "appId": parsed.app_id,
        "subscriptionId": parsed.subscription_id,
        "productId": parsed.product_id,
        "appKey": parsed.app_key,
    }
    # An identity shaped like a credential arrives masked (`chargeback.gateway.masking`): the
    # map's entry for it is masked the same way, so that it still matches.
    entries = {
        kind: {
            _as_arriving(value): _Target(e.business_unit, e.cost_center, e.application)
            for value, e in section.items()
        }
        for kind, section in sections.items()
    }
    cost_centers = {
        name: unit.cost_center for name, unit in parsed.business_units.items() if unit.cost_center
    }
    return IdentityMap(entries, cost_centers)


def _as_arriving(value: str) -> str:
    return mask_identity(value.strip()) or ""


# --- Resolving a call -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payer:
    application: str
    business_unit: str
    cost_center: str
    #: Which identity decided: appId, subscriptionId, productId, appKey, gateway or unassigned.
    source: str

    def dimensions(self, gateway_business_unit: str | None = None) -> dict[str, str]:
        dims = {
            "Application": self.application,
            "BusinessUnit": self.business_unit,
            "CostCenter": self.cost_center,
            "IdentitySource": self.source,
        }
        if gateway_business_unit and gateway_business_unit != self.business_unit:
            # The map overrode what the gateway said: keep the gateway's word visible.
            dims["GatewayBusinessUnit"] = gateway_business_unit
        return dims


class PayerResolver:
    """Resolves calls to payers for one processor: the map is loaded once, and the dimensions
    of each distinct caller are worked out once and then reused."""

    def __init__(
        self, identity_map: IdentityMap, order: Sequence[IdentityKind] = DEFAULT_ORDER
    ) -> None:
        self.map = identity_map
        self.order = tuple(order)
        self._cache: dict[tuple[str | None, ...], Mapping[str, str]] = {}
        unused = [
            kind for kind in IDENTITY_KINDS if identity_map.entries[kind] and kind not in order
        ]
        if unused:
            raise ConfigurationError(
                f"app setting CHARGEBACK_IDENTITY_ORDER={','.join(self.order)} leaves out"
                f" {', '.join(unused)}, which the identity map ({_SETTING}) has entries for:"
                " add it to the order or remove the entries"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> PayerResolver:
        return cls(load_identity_map(settings.identity_map_file), settings.identity_order)

    def payer(self, call: GatewayCall) -> Payer:
        values: dict[IdentityKind, str | None] = {
            "appId": call.app_id,
            "subscriptionId": call.subscription_id,
            "productId": call.product_id,
            "appKey": call.app_key,
        }
        for kind in self.order:
            value = values[kind]
            target = self.map.entries[kind].get(value.strip()) if value else None
            if target is not None:
                return Payer(
                    application=target.application or _own_name(call),
                    business_unit=target.business_unit,
                    cost_center=target.cost_center
                    or self.map.cost_centers.get(target.business_unit, UNASSIGNED),
                    source=kind,
                )
        if call.business_unit:
            return Payer(
                _own_name(call),
                call.business_unit,
                self.map.cost_centers.get(call.business_unit, UNASSIGNED),
                "gateway",
            )
        return Payer(_own_name(call), UNASSIGNED, UNASSIGNED, UNASSIGNED)

    def dimensions(self, call: GatewayCall) -> Mapping[str, str]:
        """The event's who-pays dimensions. The mapping may be shared: do not change it."""
        key = (
            call.app_id,
            call.subscription_id,
            call.product_id,
            call.app_key,
            call.business_unit,
            call.subscription_name,
        )
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[key] = self.payer(call).dimensions(call.business_unit)
        return found


def _own_name(call: GatewayCall) -> str:
    return (
        call.subscription_name
        or call.subscription_id
        or call.app_id
        or call.app_key
        or call.product_id
        or UNASSIGNED
    )
