"""Files shipped inside the package (the dashboard's script and style, Swagger UI's), served
by name."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources.abc import Traversable

from fastapi.responses import Response

from polystream.api.refusals import Missing


def packaged_file(folder: Traversable, types: Mapping[str, str], name: str, *, what: str,
                  cache_control: str) -> Response:
    """The file ``name`` of ``folder`` with its media type from ``types``. Only the names listed
    there are served: nothing else of the folder, and no path built from the request."""
    if name not in types:
        raise Missing(f"no such {what} file")
    return Response((folder / name).read_bytes(), media_type=types[name],
                    headers={"Cache-Control": cache_control})


__all__ = ["packaged_file"]
