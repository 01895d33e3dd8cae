"""The traffic simulator: a deterministic, realistic event stream (``polystream simulate``).

Public API (what tests and tools use)::

    from polystream.simulate import SimConfig, generate, generate_envelopes

    for event in generate(SimConfig(seed=7), limit=100_000):
        event.type, event.topic, event.key, event.value   # value = the encoded envelope

    envelopes = list(generate_envelopes(SimConfig(seed=7), limit=1000))  # fully validated

The same ``SimConfig`` always yields the same bytes, and a shorter run is a prefix of a
longer one. See docs/simulator.md.
"""

from polystream.simulate.catalog import CatalogEntry
from polystream.simulate.catalog_import import (
    CatalogImportError,
    RowError,
    load_catalog,
    parse_csv,
    parse_json,
)
from polystream.simulate.config import DEFAULT_START, Behaviour, SimConfig, password_hash
from polystream.simulate.engine import Simulation, generate, generate_envelopes
from polystream.simulate.runner import (
    FileCheck,
    JsonlWriter,
    PublisherSink,
    RecordedFileError,
    RunReport,
    check_recorded,
    pump,
    read_recorded,
)
from polystream.simulate.wire import SimEvent

__all__ = [
    "DEFAULT_START",
    "Behaviour",
    "CatalogEntry",
    "CatalogImportError",
    "FileCheck",
    "JsonlWriter",
    "PublisherSink",
    "RecordedFileError",
    "RowError",
    "RunReport",
    "SimConfig",
    "SimEvent",
    "Simulation",
    "check_recorded",
    "generate",
    "generate_envelopes",
    "load_catalog",
    "parse_csv",
    "parse_json",
    "password_hash",
    "pump",
    "read_recorded",
]
