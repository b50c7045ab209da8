"""The configuration files finance maintains (the price table, the identity map): read once,
validated strictly, every problem reported as one line naming the app setting to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from chargeback.errors import ConfigurationError

__all__ = ["StrictModel", "load_document", "validation_problems"]


class StrictModel(BaseModel):
    """A file's schema: unknown keys are errors (a typo must not silently change a bill)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def load_document(path: Path, setting: str) -> Any:
    """The parsed content of a JSON (or, with PyYAML, YAML) file named by an app setting.

    Raises `ConfigurationError` naming the setting and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"app setting {setting}={path}: cannot read it: {exc.strerror or exc}"
        ) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigurationError(
                f"app setting {setting}={path}: a YAML file needs PyYAML, which the Function"
                " App does not install; write the file as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"app setting {setting}={path}: not YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"app setting {setting}={path}: not JSON: {exc}") from None


def validation_problems(exc: ValidationError) -> str:
    """Pydantic's errors as one line: ``models.gpt-4o.output: ...; version: ...``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'file'}: {err['msg']}"
        for err in exc.errors()[:5]
    )
