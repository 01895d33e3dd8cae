"""Uploads are read past their magic bytes: dimensions from the header, structure to the end
(issue 12: polyglot files were accepted)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from polystream.domain.events.images import (
    MAX_IMAGE_SIDE,
    ImageType,
    InvalidImage,
    inspect_image,
)
from polystream.domain.examples import TITLE_ID, png_image

from .cases import UPLOAD, Call, jpeg_image, webp_image
from .conftest import OPERATOR, Harness


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_png_dimensions() -> None:
    info = inspect_image(png_image(7, 5))
    assert (info.type, info.width, info.height) == (ImageType.PNG, 7, 5)


def test_jpeg_dimensions() -> None:
    info = inspect_image(jpeg_image(640, 480))
    assert (info.type, info.width, info.height) == (ImageType.JPEG, 640, 480)


def test_webp_dimensions() -> None:
    info = inspect_image(webp_image())
    assert (info.type, info.width, info.height) == (ImageType.WEBP, 1, 1)


POLYGLOT_TAIL = b"PK\x03\x04" + b"\x00" * 26 + b"<script>alert(1)</script>"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png_image() + POLYGLOT_TAIL, "after the end"),
        (jpeg_image(trailer=POLYGLOT_TAIL), "after the end"),
        (png_image()[:-6], "truncated"),
        (png_image()[:20], "truncated"),
        (b"\x89PNG\r\n\x1a\n" + b"<html>" * 10, "truncated"),
        (png_image()[:30] + b"X" + png_image()[31:], "CRC"),
        (b"\x89PNG\r\n\x1a\n" + chunk(b"IDAT", b"x") + chunk(b"IEND", b""), "IHDR"),
        (png_image(MAX_IMAGE_SIDE + 1, 1), "each side"),
        (png_image(0, 1), "each side"),
        (b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 200, ""),
        (jpeg_image()[:-2], ""),
        (webp_image() + b"junk", "RIFF size"),
        (b"RIFF" + struct.pack("<I", 8) + b"WEBPABCD", ""),
        (b"GIF89a", "not a PNG"),
    ],
)
def test_malformed_or_polyglot_images_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImage, match=reason):
        inspect_image(data)


def test_decompression_bombs_are_refused_by_their_header() -> None:
    header = struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))
    with pytest.raises(InvalidImage, match="pixels"):
        inspect_image(bomb)


def upload(harness: Harness, data: bytes, content_type: str) -> Any:
    call = Call("POST", f"/catalog/titles/{TITLE_ID}/assets",
                files={"file": ("image", data, content_type)}, data={"kind": "poster"},
                headers=OPERATOR)
    return call.send(harness.client)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (png_image() + POLYGLOT_TAIL, "image/png"),
        (jpeg_image(trailer=b"<?php system($_GET['c']); ?>"), "image/jpeg"),
        (png_image()[:-6], "image/png"),
        (webp_image() + b"junk", "image/webp"),
    ],
)
def test_the_api_refuses_polyglots_and_broken_images(
    harness: Harness, data: bytes, content_type: str
) -> None:
    response = upload(harness, data, content_type)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "field": "body.file", "message": response.json()["errors"][0]["message"],
        "type": "invalid_image",
    }
    assert harness.total_records() == 0


def test_the_api_still_accepts_real_images(harness: Harness) -> None:
    assert UPLOAD.send(harness.client).status_code == 202
    assert upload(harness, jpeg_image(), "image/jpeg").status_code == 202
    assert upload(harness, webp_image(), "image/webp").status_code == 202
