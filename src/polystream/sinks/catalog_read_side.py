"""The read side every catalog store offers (pages of titles, a title's relations): the
arguments are checked and documented here, once, and a store only runs the query
(`_titles_page`, `_edges`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from polystream.domain.catalog import Direction, Document, Edge, check_direction, check_page
from polystream.domain.events import Genre, RelationKind, TitleKind


class CatalogReadSide(ABC):
    def list_titles(
        self,
        kind: TitleKind | str | None = None,
        genre: Genre | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Document]:
        """Titles, newest year first, then by id."""
        check_page(limit, offset)
        return self._titles_page(kind, genre, limit, offset)

    def related(
        self,
        title_id: str,
        direction: Direction = "out",
        kind: RelationKind | str | None = None,
    ) -> list[Edge]:
        """Edges from (``out``), to (``in``) or either side of (``both``) a title, strongest
        first."""
        check_direction(direction)
        return self._edges(title_id, direction, kind)

    @abstractmethod
    def _titles_page(self, kind: TitleKind | str | None, genre: Genre | str | None, limit: int,
                     offset: int) -> list[Document]:
        """Up to ``limit`` titles of that kind and genre after the first ``offset``."""

    @abstractmethod
    def _edges(self, title_id: str, direction: Direction,
               kind: RelationKind | str | None) -> list[Edge]:
        """The title's live edges in that direction (of that kind), strongest first."""


__all__ = ["CatalogReadSide"]
