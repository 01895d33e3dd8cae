"""Size limits of the event contract, in one place because they depend on each other."""

from __future__ import annotations

from typing import Final

#: Largest encoded event, in bytes. Kafka's default ``message.max.bytes`` is 1 MiB plus a
#: little record overhead, so anything larger would be refused by the broker anyway; refusing
#: it here gives a precise reason instead of a producer error.
MAX_EVENT_BYTES: Final = 1024 * 1024

#: Largest image carried by ``catalog.asset_uploaded``. Base64 inflates by 4/3, so 512 KiB
#: becomes ~683 KiB of JSON and still fits under :data:`MAX_EVENT_BYTES` with the envelope.
MAX_ASSET_BYTES: Final = 512 * 1024

#: Reviews are read on a title page, not essays; the bound keeps rating events small.
MAX_REVIEW_CHARS: Final = 2000

#: Encoded size bound of a flag value, so flags stay "small variables", not documents.
MAX_FLAG_VALUE_BYTES: Final = 4096


__all__ = ["MAX_ASSET_BYTES", "MAX_EVENT_BYTES", "MAX_FLAG_VALUE_BYTES", "MAX_REVIEW_CHARS"]
