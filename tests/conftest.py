"""Shared fixtures. Tests marked `stack` use the real servers that `make test` starts; they fail
(never skip) when a server is missing, because a missing server is a broken setup."""

from __future__ import annotations

import uuid

import pytest

from polystream.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests never collide with each other or earlier runs."""
    return uuid.uuid4().hex[:10]
