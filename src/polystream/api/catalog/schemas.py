"""Request bodies of the catalog commands."""

from __future__ import annotations

from pydantic import Field

from polystream.api.fields import RequestModel
from polystream.domain.events import Id, RelationKind, TitleFields, Weight


class UpsertTitle(RequestModel, TitleFields):
    """The full current state of a movie or series (the title id is in the path).

    ``version`` must grow with every edit: the stores keep the highest version they have seen,
    so an older snapshot never overwrites a newer one (with `wait`, it answers 409 stale).
    Movies carry ``runtime_minutes``; series carry ``seasons`` with their episodes.
    """


class AddRelation(RequestModel):
    from_title_id: Id
    to_title_id: Id
    kind: RelationKind
    weight: Weight = Field(description="Strength of the relation, 0..1.")
