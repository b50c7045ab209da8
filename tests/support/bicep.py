"""Reading Bicep files as text: strings and comments masked, blocks found by their braces,
modules and their parameters. (There is no Bicep compiler on this machine: see
tests/infra/test_stream_billing_infra.py.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
APIM = INFRA / "apim"


def _string_end(text: str, i: int) -> int:
    """Index just past the single-quoted string opening at i (escapes, ${...} interpolation)."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == "'":
            return j + 1
        elif text.startswith("${", j):
            j = _code_end(text, j + 2)
        else:
            j += 1
    raise ValueError(f"unterminated string at {i}")


def _code_end(text: str, j: int) -> int:
    depth = 1
    while j < len(text):
        if text[j] == "'":
            j = _string_end(text, j)
            continue
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
        if depth == 0:
            return j
    raise ValueError("unterminated interpolation")


def mask(text: str) -> str:
    """The text with comments and string contents blanked (same length, quotes kept)."""
    out = list(text)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < len(text):
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.index("*/", i) + 2
            blank(i, end)
            i = end
        elif text.startswith("'''", i):
            end = text.index("'''", i + 3) + 3
            blank(i + 3, end - 3)
            i = end
        elif text[i] == "'":
            end = _string_end(text, i)
            blank(i + 1, end - 1)
            i = end
        else:
            i += 1
    return "".join(out)


def _close(masked: str, open_index: int) -> int:
    """Index of the bracket closing the one at open_index."""
    depth = 0
    for k in range(open_index, len(masked)):
        if masked[k] in "{[(":
            depth += 1
        elif masked[k] in "}])":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError(f"unbalanced bracket at {open_index}")


KEY = re.compile(r"^[ \t]*([A-Za-z_]\w*|'[^'\n]*')[ \t]*:", re.M)


@dataclass
class Bicep:
    path: Path

    @cached_property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @cached_property
    def masked(self) -> str:
        return mask(self.text)

    def object_keys(self, start: int, end: int) -> list[str]:
        """Keys of the object literals directly inside text[start:end] (not nested deeper)."""
        keys = []
        for match in KEY.finditer(self.masked, start, end):
            segment = self.masked[start : match.start()]
            depth = sum(segment.count(c) for c in "{[(") - sum(segment.count(c) for c in "}])")
            if depth == 1:
                keys.append(self.text[match.start(1) : match.end(1)].strip("'"))
        return keys

    @cached_property
    def params(self) -> dict[str, bool]:
        """Declared parameters -> whether each has a default."""
        found = re.finditer(r"^param\s+(\w+)\s+[^\n=]*(=?)", self.masked, re.M)
        return {m.group(1): m.group(2) == "=" for m in found}

    def _expression_end(self, start: int) -> int:
        """End of a declaration's value: the first newline outside brackets."""
        k = start
        while k < len(self.masked) and self.masked[k] != "\n":
            if self.masked[k] in "{[(":
                k = _close(self.masked, k)
            k += 1
        return k

    @cached_property
    def variables(self) -> dict[str, tuple[int, int]]:
        found = re.finditer(r"^var\s+(\w+)\s*=", self.masked, re.M)
        return {m.group(1): (m.end(), self._expression_end(m.end())) for m in found}

    def variable_keys(self, name: str) -> list[str]:
        return self.object_keys(*self.variables[name])

    def variable_text(self, name: str) -> str:
        start, end = self.variables[name]
        return self.text[start:end]

    @cached_property
    def modules(self) -> list[Module]:
        modules = []
        for m in re.finditer(r"^module\s+(\w+)\s+'", self.masked, re.M):
            ref_end = _string_end(self.text, m.end() - 1)
            ref = self.text[m.end() : ref_end - 1]
            body_start = self.masked.index("{", ref_end)
            body_end = _close(self.masked, body_start)
            params_at = re.compile(r"^[ \t]*params[ \t]*:[ \t]*\{", re.M).search(
                self.masked, body_start, body_end
            )
            passed = []
            if params_at:
                open_brace = params_at.end() - 1
                passed = self.object_keys(open_brace, _close(self.masked, open_brace) + 1)
            body = self.text[body_start:body_end]
            modules.append(Module(self, m.group(1), ref, passed, body))
        return modules

    def module(self, name: str) -> Module:
        return next(module for module in self.modules if module.name == name)


@dataclass
class Module:
    owner: Bicep
    name: str
    ref: str
    passed: list[str]
    body: str

    @property
    def is_registry(self) -> bool:
        return self.ref.startswith("br/") or self.ref.startswith("br:")

    @property
    def file(self) -> Path:
        return (self.owner.path.parent / self.ref).resolve()


def bicep_files() -> list[Bicep]:
    return [Bicep(path) for path in sorted(INFRA.rglob("*.bicep"))]


MAIN = Bicep(INFRA / "main.bicep")
FUNCTION_APP = Bicep(INFRA / "modules" / "function-app.bicep")
APIM_PART = Bicep(INFRA / "modules" / "apim-chargeback.bicep")
