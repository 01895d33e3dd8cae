"""/catalog: titles, relations and display assets. Operators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from polystream.api.auth import Operator
from polystream.api.catalog import service
from polystream.api.catalog.schemas import AddRelation, UpsertTitle
from polystream.api.command_http import Options, answer, operator_command
from polystream.api.deps import Runtime
from polystream.api.errors import ErrorBody
from polystream.api.fields import TitleIdPath
from polystream.domain.events import MAX_ASSET_BYTES, AssetKind, Id, RelationKind

router = APIRouter(tags=["catalog (operators)"], dependencies=[Operator])



@operator_command(router.put, "/catalog/titles/{title_id}", summary="Create or replace a title",
                  description="Publishes `catalog.title_upserted` (a full snapshot with a growing "
                  "`version`).")
async def upsert_title(
    title_id: TitleIdPath, body: UpsertTitle, runtime: Runtime, options: Options
) -> JSONResponse:
    return answer(await service.upsert_title(runtime, title_id, body, options))


@operator_command(router.delete, "/catalog/titles/{title_id}", summary="Remove a title",
                  description="Publishes `catalog.title_removed`.")
async def remove_title(
    title_id: TitleIdPath,
    version: Annotated[int, Query(ge=1, description="Greater than the last upsert's version.")],
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return answer(await service.remove_title(runtime, title_id, version, options))


@operator_command(router.post, "/catalog/relations",
                  summary="Add (or re-weight) a relation between two titles",
                  description="Publishes `catalog.relation_added`.")
async def add_relation(body: AddRelation, runtime: Runtime, options: Options) -> JSONResponse:
    return answer(await service.add_relation(runtime, body, options))


@operator_command(
    router.delete, "/catalog/relations", summary="Remove a relation between two titles",
    description="Publishes `catalog.relation_removed`. The edge is given in the query "
    "(a DELETE body is dropped by some proxies).",
)
async def remove_relation(
    from_title_id: Annotated[Id, Query()],
    to_title_id: Annotated[Id, Query()],
    kind: Annotated[RelationKind, Query()],
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    return answer(await service.remove_relation(runtime, from_title_id, to_title_id, kind, options))


@operator_command(
    router.post, "/catalog/titles/{title_id}/assets", creates=True,
    more={415: {"model": ErrorBody, "description": "Not a PNG, JPEG or WebP image."}},
    summary="Upload a display image (poster, backdrop, thumbnail)",
    description=f"Multipart form: `file` (PNG, JPEG or WebP, at most {MAX_ASSET_BYTES} bytes; "
    "the type is read from the file's signature) and `kind`. Publishes "
    "`catalog.asset_uploaded` carrying the image, its size and its SHA-256; `resource_id` is "
    "the asset's id.",
)
async def upload_asset(
    title_id: TitleIdPath,
    file: Annotated[UploadFile, File(description="The image.")],
    kind: Annotated[AssetKind, Form()],
    request: Request,
    runtime: Runtime,
    options: Options,
) -> JSONResponse:
    # Already parsed (and cached) by FastAPI for the two parameters above.
    service.check_asset_form((await request.form()).multi_items())
    data = await file.read(MAX_ASSET_BYTES + 1)
    return answer(await service.upload_asset(runtime, title_id, kind, data, file.content_type,
                                             options))
