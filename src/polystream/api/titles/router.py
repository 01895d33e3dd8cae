"""GET /titles, /titles/{id}, /titles/{id}/related, /titles/{id}/poster: the public catalog,
read from MongoDB (details and pages through the Redis cache). No login needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from polystream.api.errors import FieldProblem
from polystream.api.fields import TitleIdPath
from polystream.api.reads import Reads, only_params, read_errors, read_responses
from polystream.api.refusals import Invalid, InvalidCursor
from polystream.api.titles.schemas import RelatedTitles, TitlePage
from polystream.domain.events import Genre, TitleKind, TitleUpserted
from polystream.domain.events.vocabulary import MaturityRating
from polystream.reads.service import MAX_RELATED, Body
from polystream.reads.titles import (
    DEFAULT_PAGE,
    MAX_PAGE,
    MAX_TEXT,
    BadCursor,
    TitleQuery,
    TitleSort,
    decode_cursor,
)

router = APIRouter(tags=["catalog (public reads)"])

#: Characters refused in the text query: they mean something to a regex, a glob or a
#: MongoDB operator, and titles are searchable without them.
_TEXT_PATTERN = r"^[^$*?\[\]{}\\^|<>]+$"
_POSTER_MAX_AGE_S = 300


def _json(body: Body) -> Response:
    return Response(body.content, media_type="application/json",
                    headers={"X-Cache": body.cache})


@router.get(
    "/titles",
    summary="Browse the catalog",
    description="Filters combine with AND. `q` matches a case-insensitive substring of the "
    "title. `max_maturity` keeps titles rated at or below it (all < 7+ < 13+ < 16+ < 18+). "
    "Pages are keyset-paged: follow `next_cursor`. Served through the Redis cache "
    "(`X-Cache: hit|miss`).",
    response_model=None,
    responses={200: {"model": TitlePage, "description": "A page of titles.",
                     "headers": {"X-Cache": {"description": "hit or miss",
                                             "schema": {"type": "string"}}}},
               **read_responses(400, 422, 503)},
    dependencies=[Depends(only_params("kind", "genre", "year_from", "year_to", "max_maturity",
                                      "q", "sort", "limit", "cursor"))],
)
async def browse_titles(
    reads: Reads,
    kind: TitleKind | None = None,
    genre: Genre | None = None,
    year_from: Annotated[int | None, Query(ge=1888, le=9999)] = None,
    year_to: Annotated[int | None, Query(ge=1888, le=9999)] = None,
    max_maturity: MaturityRating | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=MAX_TEXT, pattern=_TEXT_PATTERN,
                                   description="Text in the title.")] = None,
    sort: TitleSort = TitleSort.NEWEST,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    try:
        query = TitleQuery(kind=kind, genre=genre, year_from=year_from, year_to=year_to,
                           max_maturity=max_maturity, text=q, sort=sort, limit=limit)
    except ValueError as exc:
        raise Invalid("the request is invalid",
                       [FieldProblem(field="query", message=str(exc), type="value_error")]
                       ) from None
    if cursor is not None:
        try:
            query = decode_cursor(cursor, query)
        except BadCursor as exc:
            raise InvalidCursor("invalid cursor", [
                FieldProblem(field="query.cursor", message=str(exc), type="cursor")]) from None
    with read_errors():
        return _json(await reads.browse(query))


@router.get(
    "/titles/{title_id}",
    summary="A title, with its seasons and episodes",
    response_model=None,
    responses={200: {"model": TitleUpserted, "description": "The title's current snapshot.",
                     "headers": {"X-Cache": {"description": "hit or miss",
                                             "schema": {"type": "string"}}}},
               **read_responses(404, 422, 503)},
    dependencies=[Depends(only_params())],
)
async def get_title(title_id: TitleIdPath, reads: Reads) -> Response:
    with read_errors("title"):
        return _json(await reads.title(title_id))


@router.get(
    "/titles/{title_id}/related",
    summary="Titles related to this one, up to two relations away",
    description="Relations are followed in both directions. Each title appears once, at its "
    "shortest distance (through its strongest path); removed titles are left out.",
    response_model=RelatedTitles,
    responses=read_responses(404, 422, 503),
    dependencies=[Depends(only_params("limit"))],
)
async def related_titles(
    title_id: TitleIdPath, reads: Reads,
    limit: Annotated[int, Query(ge=1, le=MAX_RELATED)] = 20,
) -> JSONResponse:
    with read_errors("title"):
        return JSONResponse(await reads.related(title_id, limit))


@router.get(
    "/titles/{title_id}/poster",
    summary="The title's poster image (streamed from GridFS)",
    description="The most recently uploaded poster. `ETag` is the image's sha256; send it "
    "back in `If-None-Match` to get `304` without the bytes.",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                     "description": "The image."},
               **read_responses(304, 404, 422, 503)},
    dependencies=[Depends(only_params())],
)
async def poster(
    title_id: TitleIdPath, reads: Reads,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    with read_errors("poster"):
        info = await reads.poster(title_id)
        etag = f'"{info.sha256}"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={_POSTER_MAX_AGE_S}"}
        if if_none_match is not None and _etag_matches(if_none_match, info.sha256):
            return Response(status_code=304, headers=headers)
        stream = await reads.poster_bytes(info)
    headers["Content-Length"] = str(info.size_bytes)
    return StreamingResponse(stream, media_type=info.content_type.value, headers=headers)


def _etag_matches(header: str, sha256: str) -> bool:
    """RFC 9110 weak comparison against a list of entity tags, or ``*``."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == f'"{sha256}"':
            return True
    return False
