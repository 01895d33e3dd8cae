"""Catalog commands -> catalog.* events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Sequence

from uuid6 import uuid7

from polystream.api.catalog.schemas import AddRelation, UpsertTitle
from polystream.api.commands import Command, CommandOptions, CommandResult, submit
from polystream.api.deps import ApiRuntime
from polystream.api.errors import INVALID_REQUEST, FieldProblem
from polystream.api.guard import CARD_DATA_DETAIL
from polystream.api.refusals import Invalid, TooLarge, Unsupported
from polystream.domain.events import (
    MAX_ASSET_BYTES,
    AssetKind,
    AssetUploaded,
    ImageType,
    RelationAdded,
    RelationKind,
    RelationRemoved,
    TitleRemoved,
    TitleUpserted,
    contains_card_data,
)
from polystream.domain.events.images import InvalidImage, inspect_image, sniff

_TITLE_IN_PATH = {"title_id": "path.title_id"}
_ASSET_FORM_FIELDS = frozenset({"file", "kind"})


async def upsert_title(
    runtime: ApiRuntime, title_id: str, body: UpsertTitle, options: CommandOptions
) -> CommandResult:
    payload = {"title_id": title_id, **body.model_dump()}
    return await submit(
        runtime, options, Command(TitleUpserted, payload, where=_TITLE_IN_PATH)
    )


async def remove_title(
    runtime: ApiRuntime, title_id: str, version: int, options: CommandOptions
) -> CommandResult:
    payload = {"title_id": title_id, "version": version}
    return await submit(
        runtime,
        options,
        Command(
            TitleRemoved,
            payload,
            where={**_TITLE_IN_PATH, "version": "query.version"},
        ),
    )


async def add_relation(
    runtime: ApiRuntime, body: AddRelation, options: CommandOptions
) -> CommandResult:
    return await submit(runtime, options, Command(RelationAdded, body.model_dump()))


async def remove_relation(
    runtime: ApiRuntime,
    from_title_id: str,
    to_title_id: str,
    kind: RelationKind,
    options: CommandOptions,
) -> CommandResult:
    payload = {"from_title_id": from_title_id, "to_title_id": to_title_id, "kind": kind}
    where = {name: f"query.{name}" for name in payload}
    return await submit(runtime, options, Command(RelationRemoved, payload, where=where))


def sniff_image(data: bytes) -> ImageType | None:
    """The image type the bytes claim by their signature (never from a header)."""
    return sniff(data)


def check_asset_form(items: Sequence[tuple[str, object]]) -> None:
    """The multipart equivalent of ``extra="forbid"`` and of the card-data guard, which
    cannot look inside multipart bodies."""
    problems = [
        FieldProblem(field=f"body.{name}", message="Extra inputs are not permitted",
                     type="extra_forbidden")
        for name in sorted({name for name, _ in items} - _ASSET_FORM_FIELDS)
    ]
    texts = {name: value for name, value in items if isinstance(value, str)}
    if contains_card_data(texts):
        raise Invalid(CARD_DATA_DETAIL, [
            FieldProblem(field="body", message="looks like card data", type="card_data")
        ])
    if sum(1 for name, _ in items if name == "file") > 1:
        problems.append(FieldProblem(field="body.file", message="send exactly one file",
                                     type="too_many_files"))
    if problems:
        raise Invalid(INVALID_REQUEST, problems)


async def upload_asset(
    runtime: ApiRuntime,
    title_id: str,
    kind: AssetKind,
    data: bytes,
    declared_type: str | None,
    options: CommandOptions,
) -> CommandResult:
    """``data`` is the upload, read up to one byte past the limit (so an oversized one is
    seen without reading it whole); ``declared_type`` its Content-Type, if any."""
    if len(data) > MAX_ASSET_BYTES:
        raise TooLarge(f"the image is larger than {MAX_ASSET_BYTES} bytes", [
            FieldProblem(field="body.file", message=f"at most {MAX_ASSET_BYTES} bytes",
                         type="too_large")
        ])
    if not data:
        raise Invalid(INVALID_REQUEST, [
            FieldProblem(field="body.file", message="the file is empty", type="empty_file")
        ])
    detected = sniff_image(data)
    if detected is None:
        raise Unsupported("the file must be a PNG, JPEG or WebP image", [
            FieldProblem(field="body.file", message="not a PNG, JPEG or WebP image",
                         type="unsupported_media_type")
        ])
    try:
        # The structure, not just the signature: polyglots and trailing junk are refused.
        await asyncio.to_thread(inspect_image, data)
    except InvalidImage as exc:
        raise Invalid(f"the file is not a usable image: {exc}", [
            FieldProblem(field="body.file", message=str(exc), type="invalid_image")
        ]) from None
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    if declared in {t.value for t in ImageType} and declared != detected.value:
        raise Unsupported(f"the file is a {detected.value} image, not {declared}", [
            FieldProblem(field="body.file", message=f"content is {detected.value}",
                         type="content_type_mismatch")
        ])
    asset_id = str(uuid7())
    payload = {
        "asset_id": asset_id,
        "title_id": title_id,
        "kind": kind,
        "content_type": detected,
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data_base64": base64.b64encode(data).decode("ascii"),
    }
    return await submit(
        runtime,
        options,
        Command(AssetUploaded, payload, creates=True, resource_id=asset_id,
                where={**_TITLE_IN_PATH, "data_base64": "body.file", "kind": "body.kind"}),
    )
