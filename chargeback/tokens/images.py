"""Image input tokens: the size of an image from its data URL, and what that size costs.

Two public rules (OpenAI "Images and vision" guide, "Calculating costs"; Azure OpenAI "Vision
enabled chat" docs give the same tile rule):

- tile models: fit in 2048×2048, scale the shortest side down to 768, count 512-px tiles;
  cost = base + per_tile × tiles (``detail: low`` costs the base alone);
- patch models: 32-px patches, scaled down so that there are at most 1536, times a per-model
  multiplier, rounded up (``detail: low`` is not cheaper there).

``detail: auto`` has been observed to bill as ``high`` (the recorded gpt-4.1-nano and
gpt-5-mini calls; held out, gpt-4o and gpt-4o-mini at 640×480 and 50×65), so ``auto`` and a
missing detail count as high. gpt-4 Turbo with vision decides by the image's size at a threshold
no source gives: it is billed high too, and flagged ``image-detail-auto``.

gpt-5-mini and gpt-5-nano: the guide's table says 1.62 and 2.46 (the gpt-4.1-mini/-nano values),
but OpenAI's own calculator on the pricing page uses 1.2 and 1.5, and so does the API: OpenAI
developer community, "GPT-5-mini image input token calculation discrepancy with official FAQ
formula" (t/1344040) and "Introducing GPT-5.4 mini and nano" (t/1377015, which also measures
gpt-5.4-mini and gpt-5.4-nano at 1.2). The second thread's image-only costs (432 patches: 527
chat / 526 Responses at 1.2, 656 / 655 at 1.5) carry a fixed wrapper of 8 tokens per image in
chat and 7 in the Responses API beyond ceil(patches × multiplier). The recorded gpt-5-mini chat
calls agree exactly: 597×566 (342 patches) bills ceil(410.4) + 8 = 419 (records 71, 99, 180),
400×301 (130 patches) bills 156 + 8 = 164 (records 156, 237), wherever the image sits (a user
message after a tool result, alone or after text). With 1.62 they were +136 and +47.

gpt-4.1-nano (records 256 chat, 257 Responses: one 540×360 image, 204 patches) bills one token
more than ceil(204 × 2.46) = 502, in both APIs: a wrapper of 1 per image, like gpt-5-mini's 8 / 7
above. No public source states it and it is one image size, so it applies to gpt-4.1-nano only
(and to o4-mini, where held-out calls measure the same wrapper: `IMAGE_RULES`); gpt-4.1-mini
keeps the guide's rule with no wrapper until a recording shows one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
from dataclasses import dataclass
from typing import Literal

__all__ = ["ImageRule", "data_url_size", "image_rule", "image_tokens"]

Detail = Literal["low", "high"]
Api = Literal["chat", "responses"]


@dataclass(frozen=True, slots=True)
class ImageRule:
    """Either a tile rule (base, per_tile) or a patch rule (multiplier)."""

    base: int = 0
    per_tile: int = 0
    multiplier: float = 0.0  # patch models only
    #: tokens around each image beyond its own, in chat and in the Responses API
    wrapper: int = 0
    responses_wrapper: int = 0
    #: ``detail: auto`` (or none) is decided by the service from the image's size, by a
    #: threshold no source gives: the estimate bills high and says ``image-detail-auto``
    auto_by_size: bool = False


# gpt-5 small models as billed (see the module doc): the pricing-page multipliers, and the
# image wrapper measured in the community thread t/1377015 and on records 71, 99, 156, 180, 237.
_GPT5_MINI = ImageRule(multiplier=1.2, wrapper=8, responses_wrapper=7)
_GPT5_NANO = ImageRule(multiplier=1.5, wrapper=8, responses_wrapper=7)
# gpt-5.2 and later full models are patch models at 1.2 too (t/1377015's table: gpt-5.2, 5.3,
# 5.4), not tile models like gpt-5: held out, posit-dev's gpt-5.4 60×30 image (2 patches) bills
# 4 in both APIs (210 as tiles) and tidyverse's gpt-5.6-terra 512×149 (80 patches) 98; the
# wrapper of 1 fits the first exactly, the second within 1 (no public source for it).
_GPT5_LATER = ImageRule(multiplier=1.2, wrapper=1, responses_wrapper=1)
# gpt-4 Turbo with vision: "auto: the model decides between low or high based on the size of
# the image input" (Azure OpenAI "Use vision-enabled chat models", detail parameter settings;
# OpenAI vision guide of that time), threshold unpublished: a whole tile block either way.
_GPT4_VISION = ImageRule(base=85, per_tile=170, auto_by_size=True)

# Model prefix -> rule, most specific first. Source: OpenAI "Images and vision" guide,
# "Calculating costs" (tile table and patch multipliers), checked on the recorded calls;
# gpt-5 small models: the OpenAI pricing-page calculator (module doc).
IMAGE_RULES: tuple[tuple[str, ImageRule], ...] = (
    ("gpt-4.1-mini", ImageRule(multiplier=1.62)),
    ("gpt-4.1-nano", ImageRule(multiplier=2.46, wrapper=1, responses_wrapper=1)),  # measured
    ("gpt-5-mini", _GPT5_MINI),
    ("gpt-5-nano", _GPT5_NANO),
    ("gpt-5.4-mini", _GPT5_MINI),  # measured at 1.2 (t/1377015); the guide lists it as patches
    ("gpt-5.4-nano", _GPT5_MINI),  # measured at 1.2 too, unlike gpt-5-nano (t/1377015)
    # measured on held-out calls: crewAI's 640×480 image (300 patches) bills ceil(516) + 1 in
    # chat and Responses alike (13 calls), like gpt-4.1-nano's wrapper of 1
    ("o4-mini", ImageRule(multiplier=1.72, wrapper=1, responses_wrapper=1)),
    ("gpt-4o-mini", ImageRule(base=2833, per_tile=5667)),
    ("gpt-5.2", _GPT5_LATER),
    ("gpt-5.3", _GPT5_LATER),
    ("gpt-5.4", _GPT5_LATER),
    ("gpt-5.5", _GPT5_LATER),
    ("gpt-5.6", _GPT5_LATER),
    ("gpt-5", ImageRule(base=70, per_tile=140)),
    ("o1", ImageRule(base=75, per_tile=150)),
    ("o3", ImageRule(base=75, per_tile=150)),
    ("computer-use-preview", ImageRule(base=65, per_tile=129)),
    ("gpt-4o", ImageRule(base=85, per_tile=170)),
    ("gpt-4.1", ImageRule(base=85, per_tile=170)),
    ("gpt-4.5", ImageRule(base=85, per_tile=170)),
    ("chatgpt-4o", ImageRule(base=85, per_tile=170)),
    ("gpt-4-vision", _GPT4_VISION),
    ("gpt-4-1106-vision", _GPT4_VISION),
    ("gpt-4-turbo", _GPT4_VISION),
    ("gpt-4", ImageRule(base=85, per_tile=170)),
)
_DEFAULT_RULE = ImageRule(base=85, per_tile=170)

_TILE_FIT = 2048  # the image is first fitted in a 2048×2048 square
_TILE_SHORT_SIDE = 768  # then its shortest side is scaled down to 768
_TILE = 512
_PATCH = 32
_MAX_PATCHES = 1536


def image_rule(model: str) -> ImageRule:
    # Asked per estimated message, of few distinct names; a long one is not kept.
    return _image_rule(model) if len(model) <= 256 else _find_image_rule(model)


def _find_image_rule(model: str) -> ImageRule:
    name = model.strip().lower().rsplit("/", 1)[-1]
    return next((rule for prefix, rule in IMAGE_RULES if name.startswith(prefix)), _DEFAULT_RULE)


_image_rule = functools.lru_cache(maxsize=1024)(_find_image_rule)


def image_tokens(
    rule: ImageRule, width: int, height: int, detail: Detail, api: Api = "chat"
) -> int:
    """Tokens of one image of known size, with its wrapper in that API."""
    wrapper = rule.responses_wrapper if api == "responses" else rule.wrapper
    if rule.multiplier:
        # round() first: 150 × 1.62 is 243.00000000000003 in floating point, not 244 tokens.
        return math.ceil(round(_patches(width, height) * rule.multiplier, 6)) + wrapper
    if detail == "low":
        return rule.base + wrapper
    return rule.base + rule.per_tile * _tiles(width, height) + wrapper


def _tiles(width: int, height: int) -> int:
    scale = min(1.0, _TILE_FIT / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, _TILE_SHORT_SIDE / min(w, h))
    w, h = w * scale, h * scale
    return math.ceil(w / _TILE) * math.ceil(h / _TILE)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if patches <= _MAX_PATCHES:
        return patches
    # Shrink so that the patches fit the budget, then so that whole patches cover each side.
    shrink = math.sqrt(_PATCH * _PATCH * _MAX_PATCHES / (width * height))
    w, h = width * shrink, height * shrink
    shrink *= min(math.floor(w / _PATCH) / (w / _PATCH), math.floor(h / _PATCH) / (h / _PATCH))
    # Resized to whole pixels first, as the guide's worked example does (1800×2400 -> 1056×1408).
    return math.ceil(int(width * shrink) / _PATCH) * math.ceil(int(height * shrink) / _PATCH)


# --- Image size from the bytes' header ------------------------------------------------------

# Enough base64 for any header we read (JPEG markers can sit after a large EXIF block, so JPEG
# may need more: it is decoded whole, which is still cheap next to tokenizing).
_HEAD_CHARS = 4096


def data_url_size(url: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG, JPEG, GIF or WebP data URL; None if not readable."""
    if not url.startswith("data:") or ";base64," not in url[:100]:
        return None
    encoded = url[url.index(";base64,") + 8 :]
    head = _b64(encoded[:_HEAD_CHARS])
    if head is None:
        return None
    size = _size_of(head)
    if size is None and head.startswith(b"\xff\xd8"):
        whole = _b64(encoded)
        size = _jpeg_size(whole) if whole else None
    return size


def _b64(text: str) -> bytes | None:
    text = text[: len(text) // 4 * 4]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None


def _size_of(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


# JPEG start-of-frame markers (SOF0-SOF15 except DHT C4, JPG C8 and DAC CC) carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None
