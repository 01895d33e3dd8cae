"""S1 over HTTP: the write API (`create_app`), grouped by domain like Netflix Dispatch
(``<domain>/router.py`` + ``schemas.py`` + ``service.py``)."""

from polystream.api.app import create_app
from polystream.api.deps import ApiDeps

__all__ = ["ApiDeps", "create_app"]
