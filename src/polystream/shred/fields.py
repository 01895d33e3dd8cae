"""Personal fields sealed with the person's data key: the record-level half of crypto-shredding.

A producer *seals* every ``x-personal`` field of an event (the schema's markers, see
:func:`~polystream.domain.events.personal_paths`) with AES-256-GCM under the data key of the
user the event is keyed by; a consumer *opens* them before the codec validates the record, so
decoding, the sinks' rules and the audit see the plain event. Once the key is destroyed
(``user.erased``) no copy of those fields, in any topic or backup, can be read again, and a
consumer that meets one substitutes a fixed *erased* value (:func:`erased_value`): the record
still validates, and the stores' erasure markers keep it from bringing anything back.

Wire form of a sealed field: the JSON string ``"pgcm1:" + base64url(nonce ‖ ciphertext ‖ tag)``
(no padding), nonce 12 random bytes, plaintext the field's JSON text, associated data the
user id (a sealed value copied into another user's event does not open).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from polystream.domain.events import EVENT_TYPES, peek_type, personal_paths
from polystream.domain.events.privacy import apply_at

PREFIX: Final = "pgcm1:"
# Cheap test on the raw bytes: a record with no sealed field is passed on untouched, unparsed.
_MARK: Final = b'"' + PREFIX.encode()
NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32

#: What an opened field becomes when its key is gone, by field name. Each one passes the
#: field's validation (a unit test checks every ``x-personal`` path), so the event stays
#: valid and is handled as any event of an erased user: the stores keep none of it.
_ERASED: Final[Mapping[str, Callable[[str], Any]]] = {
    # Unique per user: a recomputation from the topics never sees two erased users collide.
    "email": lambda user: f"erased-{hashlib.sha256(user.encode()).hexdigest()[:16]}"
                          "@erased.invalid",
    "display_name": lambda _user: "erased",
    "birth_year": lambda _user: 1900,
    "device_id": lambda _user: "erased",
    "ip_address": lambda _user: "0.0.0.0",
    "user_agent": lambda _user: "erased",
    "review": lambda _user: None,
}
# A field that failed authentication (tampered, or sealed for someone else) becomes this
# object: validation then refuses the record at that field's path and it is dead-lettered.
UNREADABLE: Final = {"sealed": "failed authentication"}
# A field of a user the key database has never heard of: sealed by producers that use
# another key database (a misconfiguration, never an erasure: erasure keeps the user's row).
# Refused and dead-lettered like UNREADABLE, never read as erased values.
NO_KEY: Final = {"sealed": "no data key for this user in the key database"}


def new_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def erased_value(field: str, user: str) -> Any:
    """The value a sealed field named ``field`` reads as once ``user``'s key is destroyed."""
    make = _ERASED.get(field)
    return None if make is None else make(user)


def seal(raw: bytes, key_for: Callable[[str], bytes | None]) -> bytes:
    """``raw`` with every personal field of its type sealed under the data key of the user it
    is keyed by (``key_for(user)``). Anything that is no event with personal fields is
    returned unchanged: a producer never refuses a record here, the consumers' codec judges
    it. When ``key_for`` answers None (the user is erased: their key is gone for good) the
    fields get their erased values instead, so nothing personal reaches the topic."""
    event_type = peek_type(raw)
    # An unknown type has no schema: passed on as it is, for the consumers to dead-letter.
    paths = personal_paths(event_type) if event_type in EVENT_TYPES else ()
    obj = _object(raw) if paths else None
    user = None if obj is None else obj.get("key")
    if obj is None or not isinstance(user, str):
        return raw
    key = key_for(user)
    if key is None:
        for path in paths:
            apply_at(obj, path, _erasing(path[-1], user))
        return _dump(obj)
    aead = _aead(key)
    aad = user.encode()

    def sealed(value: Any) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(nonce + aead.encrypt(nonce, plain, aad))
        return PREFIX + token.rstrip(b"=").decode("ascii")

    for path in paths:
        apply_at(obj, path, sealed)
    return _dump(obj)


def _erasing(name: str, user: str) -> Callable[[Any], Any]:
    return lambda _value: erased_value(name, user)


# A sealed field as our producers write it (compact JSON; whitespace tolerated), and the
# envelope's key, which comes before the payload in every record we write. A record written
# otherwise only fails to open (authentication) and is dead-lettered: never misread.
_SEALED_FIELD: Final = re.compile(
    rb'"([A-Za-z_][A-Za-z0-9_]{0,63})"(\s*:\s*)"' + re.escape(PREFIX.encode())
    + rb'([A-Za-z0-9_-]*)"')
_ENVELOPE_KEY: Final = re.compile(rb'"key"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


def sealed_for(raw: bytes) -> tuple[bytes, str] | None:
    """``(raw, user)`` when ``raw`` holds sealed fields, ``user`` being the one whose key opens
    them; None for a record with none (the common, cheap case: one substring test)."""
    if _MARK not in raw:
        return None
    found = _ENVELOPE_KEY.search(raw)
    return None if found is None else (raw, found.group(1).decode("ascii"))


def open_sealed(raw: bytes, user: str, key: bytes | None, *, unknown: bool = False) -> bytes:
    """``raw`` (from :func:`sealed_for`) with its sealed fields opened, or, with no ``key``
    (destroyed: the user is erased), replaced by their erased values; ``unknown`` (no key was
    ever issued for the user here) makes them :data:`NO_KEY`. Replaced in the bytes,
    without parsing the record; any personal field name is opened wherever it is, since the
    record may be of an older schema version whose personal fields sat elsewhere (upcasting
    runs after this)."""
    aead = None if key is None else _aead(key)
    aad = user.encode()
    names = _personal_names()

    def opened(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode("ascii")
        if name not in names:
            return match.group(0)
        value: Any
        if unknown:
            value = NO_KEY
        elif aead is None:
            value = erased_value(name, user)
        else:
            token = match.group(3)
            try:
                blob = base64.urlsafe_b64decode(token + b"=" * (-len(token) % 4))
                value = json.loads(aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad))
            except (InvalidTag, binascii.Error, ValueError):
                value = UNREADABLE
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        return b'"' + match.group(1) + b'"' + match.group(2) + text

    return _SEALED_FIELD.sub(opened, raw)


@lru_cache(maxsize=4096)
def _aead(key: bytes) -> AESGCM:
    # Setting up the cipher costs about as much as sealing a field: once per key in use.
    return AESGCM(key)


@cache
def _personal_names() -> frozenset[str]:
    """Names of the fields that may be sealed: other fields are never opened, so free text
    that merely starts like a sealed value (a title, a flag's note) is left alone."""
    return frozenset(_ERASED) | frozenset(
        path[-1] for event_type in EVENT_TYPES for path in personal_paths(event_type))


def _object(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _dump(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


__all__ = ["KEY_BYTES", "NO_KEY", "PREFIX", "UNREADABLE", "erased_value", "new_key", "open_sealed",
           "seal", "sealed_for"]
