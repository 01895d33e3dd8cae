"""Bearer tokens: 256 random bits for the client, only their SHA-256 for the server.

A plain hash is enough (no salt, no slow hash): the token is uniformly random and long, so
there is nothing to guess or precompute, and a lookup must be one cheap operation per request.
What the server keeps lets nobody log in, even with a full copy of Redis.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

TOKEN_BYTES: Final = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def account_key(email: str) -> str:
    """The rate-limit bucket of an account: the email is personal data, Redis gets a digest."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()
