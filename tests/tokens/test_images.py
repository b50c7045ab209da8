"""Image sizes from data URLs and image token rules, on hand-checked cases and recorded images."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from chargeback.tokens.images import data_url_size, image_rule, image_tokens


def _url(kind: str, data: bytes) -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def _image_part(record: dict[str, Any]) -> str:
    for message in record["request"]["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url":
                url: str = part["image_url"]["url"]
                return url
    raise AssertionError("no image in record")


@pytest.mark.parametrize(
    ("index", "size"),
    [(256, (540, 360)), (156, (400, 301)), (180, (597, 566))],  # JPEG, PNG, JPEG
)
def test_size_of_recorded_images(records: list[dict[str, Any]], index: int, size: Any) -> None:
    assert data_url_size(_image_part(records[index])) == size


def test_size_from_gif_and_webp_headers() -> None:
    gif = b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 8
    assert data_url_size(_url("gif", gif)) == (320, 200)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (639).to_bytes(3, "little")
    vp8x += (479).to_bytes(3, "little")
    assert data_url_size(_url("webp", vp8x)) == (640, 480)
    bits = (800 - 1) | ((600 - 1) << 14)
    vp8l = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")
    assert data_url_size(_url("webp", vp8l)) == (800, 600)


def test_unreadable_images_have_no_size() -> None:
    assert data_url_size("https://example.com/cat.png") is None
    assert data_url_size(_url("png", b"not an image at all")) is None
    assert data_url_size("data:image/png;base64,!!!!") is None


@pytest.mark.parametrize(
    ("model", "width", "height", "detail", "tokens"),
    [
        # OpenAI vision guide worked examples (tile rule).
        ("gpt-4o", 1024, 1024, "high", 85 + 170 * 4),
        ("gpt-4o", 2048, 4096, "high", 85 + 170 * 6),
        ("gpt-4o", 4096, 8192, "low", 85),
        ("gpt-4.1", 512, 512, "high", 85 + 170),
        ("gpt-4o-mini", 1024, 1024, "high", 2833 + 5667 * 4),
        ("gpt-4o-mini", 1024, 1024, "low", 2833),
        ("o1", 1024, 1024, "high", 75 + 150 * 4),
        ("o3-2025-04-16", 100, 100, "high", 75 + 150),
        # Patch rule: 1024 patches × 1.62; 1800×2400 shrinks to 1056×1408 = 33×44 patches.
        ("gpt-4.1-mini", 1024, 1024, "high", 1659),
        ("gpt-4.1-mini", 1800, 2400, "high", 2353),
        ("gpt-4.1-nano", 540, 360, "high", 502 + 1),  # 17×12 × 2.46, + 1 measured (call 256)
        # 4 patches × 1.72, + 1 measured (held out: 13 crewAI calls); low is not cheaper for patches
        ("o4-mini", 64, 64, "low", 7 + 1),
        # 15×10 = 150 patches × 1.62 = 243 exactly (243.00000000000003 in floating point)
        ("gpt-4.1-mini", 480, 320, "high", 243),
    ],
)
def test_image_tokens(model: str, width: int, height: int, detail: Any, tokens: int) -> None:
    assert image_tokens(image_rule(model), width, height, detail) == tokens


@pytest.mark.parametrize(
    ("model", "width", "height", "api", "tokens"),
    [
        # gpt-5 small models as billed: the pricing-page multipliers and a wrapper of 8 (chat)
        # or 7 (Responses) per image. The community thread t/1377015 measured a 432-patch image
        # (here 576×768 = 18×24) at 527 / 526 (1.2) and 656 / 655 (1.5).
        ("gpt-5-mini", 576, 768, "chat", 519 + 8),  # ceil(432 × 1.2) = 519
        ("gpt-5-mini", 576, 768, "responses", 519 + 7),
        ("gpt-5-nano", 576, 768, "chat", 648 + 8),  # 432 × 1.5 = 648
        ("gpt-5-nano", 576, 768, "responses", 648 + 7),
        ("gpt-5.4-mini", 576, 768, "chat", 519 + 8),
        ("gpt-5.4-nano", 576, 768, "chat", 519 + 8),
        # the recorded gpt-5-mini images (records 71, 99, 180 and 156, 237)
        ("gpt-5-mini-2025-08-07", 597, 566, "chat", 411 + 8),  # 19×18 = 342; ceil(410.4)
        ("gpt-5-mini-2025-08-07", 400, 301, "chat", 156 + 8),  # 13×10 = 130; 156
        # gpt-4.1-nano: + 1 in both APIs (records 256, 257); none for the tile models
        ("gpt-4.1-nano", 540, 360, "responses", 502 + 1),
        ("gpt-4o", 1024, 1024, "responses", 85 + 170 * 4),
    ],
)
def test_image_tokens_with_wrapper(
    model: str, width: int, height: int, api: Any, tokens: int
) -> None:
    assert image_tokens(image_rule(model), width, height, "high", api) == tokens
    # detail low does not make a patch image cheaper
    if image_rule(model).multiplier:
        assert image_tokens(image_rule(model), width, height, "low", api) == tokens
