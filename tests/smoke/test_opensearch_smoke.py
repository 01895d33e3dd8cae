from __future__ import annotations

import pytest
from opensearchpy import OpenSearch, helpers

from polystream.settings import Settings

pytestmark = pytest.mark.stack


def test_template_bulk_and_search(settings: Settings, unique: str) -> None:
    client = OpenSearch(settings.opensearch.url, timeout=30)
    template = f"smoke-{unique}"
    index = f"smoke-{unique}-000001"
    client.indices.put_index_template(name=template, body={
        "index_patterns": [f"smoke-{unique}-*"],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "event_id": {"type": "keyword"},
                    "type": {"type": "keyword"},
                    "occurred_at": {"type": "date"},
                    "stars": {"type": "integer"},
                    "review": {"type": "text"},
                },
            },
        },
    })
    try:
        docs = [{"_index": index, "_id": f"e{i}", "_source": {
            "event_id": f"e{i}", "type": "rating.submitted" if i % 2 else "playback.started",
            "occurred_at": f"2026-11-{1 + i % 28:02d}T10:00:00Z", "stars": 1 + i % 5,
            "review": "a slow and gripping heist" if i % 10 == 0 else "fine"}}
            for i in range(1000)]
        ok, errors = helpers.bulk(client, docs, refresh="wait_for", raise_on_error=False)
        assert ok == 1000 and errors == []

        mapping = client.indices.get_mapping(index=index)[index]["mappings"]
        assert mapping["properties"]["event_id"] == {"type": "keyword"}
        assert mapping["properties"]["occurred_at"]["type"] == "date"

        assert client.count(index=index)["count"] == 1000
        hits = client.search(index=index, body={
            "query": {"bool": {"filter": [{"term": {"type": "rating.submitted"}},
                                          {"range": {"stars": {"gte": 5}}}]}},
            "size": 0, "track_total_hits": True})
        assert hits["hits"]["total"]["value"] == 100
        text = client.search(index=index, body={"query": {"match": {"review": "heist"}}})
        assert text["hits"]["total"]["value"] == 100

        # Strict mapping: an unknown field is refused, not silently added.
        bad = helpers.bulk(client, [{"_index": index, "_id": "x", "_source": {"nope": 1}}],
                           raise_on_error=False)
        assert bad[0] == 0 and len(bad[1]) == 1
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.indices.delete_index_template(name=template)
        client.close()
