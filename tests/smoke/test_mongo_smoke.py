"""The MongoDB-wire server (FerretDB in the managed stack) through pymongo."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import gridfs
import pytest
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from polystream.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture
def db(settings: Settings, unique: str) -> Iterator[Database[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(settings.mongo.url)
    name = f"smoke_{unique}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_crud_upsert_and_indexes(db: Database[dict[str, object]]) -> None:
    titles = db.titles
    titles.insert_many([
        {"_id": "t1", "kind": "movie", "title": "Heat", "year": 1995, "genres": ["crime"]},
        {"_id": "t2", "kind": "series", "title": "The Wire", "year": 2002, "seasons": 5},
    ])
    assert titles.find_one({"kind": "series"}, {"title": 1, "_id": 0}) == {"title": "The Wire"}

    titles.update_one({"_id": "t1"}, {"$set": {"rating": 8.3}, "$inc": {"views": 2}})
    assert titles.find_one({"_id": "t1"}, {"rating": 1, "views": 1}) == {
        "_id": "t1", "rating": 8.3, "views": 2}

    res = titles.update_one({"_id": "t3"}, {"$set": {"title": "Ronin", "year": 1998}},
                            upsert=True)
    assert res.upserted_id == "t3"
    assert titles.count_documents({}) == 3

    titles.create_index([("slug", ASCENDING)], unique=True, name="slug_unique")
    titles.update_one({"_id": "t1"}, {"$set": {"slug": "heat-1995"}})
    with pytest.raises(DuplicateKeyError):
        titles.insert_one({"_id": "t4", "slug": "heat-1995"})

    titles.create_index([("kind", ASCENDING), ("year", DESCENDING)], name="kind_year")
    names = {ix["name"] for ix in titles.list_indexes()}
    assert {"slug_unique", "kind_year"} <= names
    ordered = [d["_id"] for d in titles.find({}, {"_id": 1}).sort([("year", DESCENDING)])]
    assert ordered == ["t2", "t3", "t1"]


def test_gridfs_roundtrip_of_a_1mib_blob(db: Database[dict[str, object]]) -> None:
    blob = os.urandom(1024 * 1024)
    fs = gridfs.GridFSBucket(db, bucket_name="assets")
    file_id = fs.upload_from_stream(
        "poster.png", blob, metadata={"title_id": "t1", "kind": "poster",
                                      "sha256": hashlib.sha256(blob).hexdigest()})
    back = fs.open_download_stream(file_id).read()
    assert len(back) == len(blob)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(blob).hexdigest()
    found = list(fs.find({"metadata.title_id": "t1"}))
    assert [f._id for f in found] == [file_id]
    assert found[0].metadata["sha256"] == hashlib.sha256(blob).hexdigest()
