"""Requests shared by the in-memory and the real-Kafka tests: one valid request per command,
and invalid requests of every kind (each with the field the refusal must point at)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from polystream.domain.examples import (
    OTHER_TITLE_ID,
    SUBSCRIPTION_ID,
    TITLE_ID,
    USER_ID,
    VIEWING_SESSION_ID,
    example_fields,
    png_image,
)

from .conftest import OPERATOR

PASSWORD = "correct horse battery staple"
CARD = "4111 1111 1111 1111"  # the classic Visa test number (Luhn-valid)
PNG = png_image()


def jpeg_image(width: int = 3, height: int = 2, trailer: bytes = b"", size: int = 0) -> bytes:
    # The structure the API reads (segments, frame header, EOI); the scan data is opaque.
    app0 = (b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00"
            + struct.pack(">HH", 1, 1) + b"\x00\x00")
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(
        [1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1])
    sos = b"\xff\xda" + struct.pack(">H", 12) + bytes([3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0])
    scan = b"\x12\x34\xff\x00\x56" * 40
    head = b"\xff\xd8" + app0 + sof0 + sos
    # `size`: padded (inside the scan data) to exactly that many bytes.
    scan += b"\x00" * max(0, size - len(head) - len(scan) - 2 - len(trailer))
    return head + scan + b"\xff\xd9" + trailer


def webp_image() -> bytes:
    body = b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f" + b"\x00" * 9
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_image() -> bytes:
    return b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x00" * 20 + zlib.compress(b"x") + b";"


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None

    def send(self, client: Any, **extra_headers: str) -> Any:
        kwargs: dict[str, Any] = {"headers": {**self.headers, **extra_headers}}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.files is not None:
            kwargs["files"] = self.files
        if self.data is not None:
            kwargs["data"] = self.data
        if self.content is not None:
            kwargs["content"] = self.content
        return client.request(self.method, self.url, **kwargs)

    def with_json(self, **changes: Any) -> Call:
        body = {**self.json, **changes}
        return Call(self.method, self.url, body, self.files, self.data, self.headers)

    def without(self, *names: str) -> Call:
        body = {k: v for k, v in self.json.items() if k not in names}
        return Call(self.method, self.url, body, self.files, self.data, self.headers)


def _payload(event_type: str, *drop: str) -> dict[str, Any]:
    fields = example_fields(event_type)
    return {k: v for k, v in fields.items() if k not in drop}


def _playback(*drop: str, **changes: Any) -> dict[str, Any]:
    body = _payload("playback.progress", "viewing_session_id", *drop)
    return {**body, **changes}


REGISTER = Call("POST", "/users", {
    "email": "ana.silva@example.com",
    "password": PASSWORD,
    "display_name": "Ana",
    "country": "PT",
    "birth_year": 1990,
})
PROFILE = Call("PATCH", f"/users/{USER_ID}", {"display_name": "Ana S.", "country": "ES"})
PREFERENCES = Call("PUT", f"/users/{USER_ID}/preferences",
                   _payload("preferences.updated", "user_id"))
START_SUBSCRIPTION = Call("POST", "/subscriptions", {"user_id": USER_ID, "plan": "standard"})
CHANGE_PLAN = Call("POST", f"/subscriptions/{SUBSCRIPTION_ID}/plan",
                   {"user_id": USER_ID, "from_plan": "standard", "to_plan": "premium"})
CANCEL = Call("POST", f"/subscriptions/{SUBSCRIPTION_ID}/cancel", {"user_id": USER_ID})
PAYMENT = Call("POST", "/payments", _payload("payment.succeeded", "payment_id"))
FAILED_PAYMENT = PAYMENT.with_json(outcome="failed", failure_reason="insufficient_funds")
PLAY = Call("POST", "/playback/sessions", _playback("position_seconds"))
PROGRESS = Call("POST", f"/playback/sessions/{VIEWING_SESSION_ID}/progress", _playback())
STOP = Call("POST", f"/playback/sessions/{VIEWING_SESSION_ID}/stop",
            _playback(position_seconds=3300, reason="completed"))
RATE = Call("PUT", f"/titles/{TITLE_ID}/ratings/{USER_ID}", {"stars": 4, "review": "Lovely."})
UNRATE = Call("DELETE", f"/titles/{TITLE_ID}/ratings/{USER_ID}")
UPSERT_SERIES = Call("PUT", f"/catalog/titles/{TITLE_ID}",
                     _payload("catalog.title_upserted", "title_id"), headers=OPERATOR)
UPSERT_MOVIE = Call("PUT", f"/catalog/titles/{OTHER_TITLE_ID}", {
    "kind": "movie", "version": 1, "title": "Quiet Harbour", "year": 1998,
    "genres": ["drama"], "languages": ["de"], "maturity_rating": "16+", "runtime_minutes": 104,
}, headers=OPERATOR)
REMOVE_TITLE = Call("DELETE", f"/catalog/titles/{TITLE_ID}?version=4", headers=OPERATOR)
ADD_RELATION = Call("POST", "/catalog/relations", _payload("catalog.relation_added"),
                    headers=OPERATOR)
REMOVE_RELATION = Call(
    "DELETE",
    f"/catalog/relations?from_title_id={TITLE_ID}&to_title_id={OTHER_TITLE_ID}"
    "&kind=same_director",
    headers=OPERATOR,
)
UPLOAD = Call("POST", f"/catalog/titles/{TITLE_ID}/assets",
              files={"file": ("poster.png", PNG, "image/png")}, data={"kind": "poster"},
              headers=OPERATOR)
FLAG = Call("PUT", "/flags/player.next-episode-countdown",
            {"value": {"enabled": True, "seconds": 10}}, headers=OPERATOR)


@dataclass(frozen=True)
class Valid:
    call: Call
    event_type: str
    key: str | None  # None: generated by the API (it is the resource_id)
    expect: dict[str, Any] = field(default_factory=dict)  # payload fields to check
    creates: bool = False


VALID: dict[str, Valid] = {
    "register": Valid(REGISTER, "user.registered", None,
                      {"email": "ana.silva@example.com", "country": "PT"}, creates=True),
    "update-profile": Valid(PROFILE, "user.profile_updated", USER_ID,
                            {"display_name": "Ana S.", "email": None}),
    "set-preferences": Valid(PREFERENCES, "preferences.updated", USER_ID,
                             {"maturity_limit": "18+"}),
    "start-subscription": Valid(START_SUBSCRIPTION, "subscription.started", USER_ID,
                                {"plan": "standard"}, creates=True),
    "change-plan": Valid(CHANGE_PLAN, "subscription.plan_changed", USER_ID,
                         {"subscription_id": SUBSCRIPTION_ID, "to_plan": "premium"}),
    "cancel-subscription": Valid(CANCEL, "subscription.canceled", USER_ID,
                                 {"reason": "user_request"}),
    "record-payment": Valid(PAYMENT, "payment.succeeded", USER_ID,
                            {"card_token": "tok_9fQz3LmXw2Rb7TyK", "card_last4": "4242"},
                            creates=True),
    "record-failed-payment": Valid(FAILED_PAYMENT, "payment.failed", USER_ID,
                                   {"failure_reason": "insufficient_funds"}, creates=True),
    "playback-start": Valid(PLAY, "playback.started", USER_ID, {"position_seconds": 0},
                            creates=True),
    "playback-progress": Valid(PROGRESS, "playback.progress", USER_ID,
                               {"viewing_session_id": VIEWING_SESSION_ID,
                                "position_seconds": 600}),
    "playback-stop": Valid(STOP, "playback.stopped", USER_ID, {"reason": "completed"}),
    "rate": Valid(RATE, "rating.submitted", USER_ID, {"stars": 4, "title_id": TITLE_ID}),
    "unrate": Valid(UNRATE, "rating.retracted", USER_ID, {"title_id": TITLE_ID}),
    "upsert-series": Valid(UPSERT_SERIES, "catalog.title_upserted", TITLE_ID,
                           {"kind": "series", "version": 3}),
    "upsert-movie": Valid(UPSERT_MOVIE, "catalog.title_upserted", OTHER_TITLE_ID,
                          {"kind": "movie", "runtime_minutes": 104}),
    "remove-title": Valid(REMOVE_TITLE, "catalog.title_removed", TITLE_ID, {"version": 4}),
    "add-relation": Valid(ADD_RELATION, "catalog.relation_added", TITLE_ID,
                          {"to_title_id": OTHER_TITLE_ID, "weight": 0.8}),
    "remove-relation": Valid(REMOVE_RELATION, "catalog.relation_removed", TITLE_ID,
                             {"kind": "same_director"}),
    "upload-asset": Valid(UPLOAD, "catalog.asset_uploaded", TITLE_ID,
                          {"kind": "poster", "content_type": "image/png",
                           "size_bytes": len(PNG)}, creates=True),
    "set-flag": Valid(FLAG, "flag.set", "player.next-episode-countdown",
                      {"value": {"enabled": True, "seconds": 10}, "scope": "global"}),
}


@dataclass(frozen=True)
class Bad:
    call: Call
    status: int
    field: str | None  # the field the refusal must name (None: not checked)


_SHORT = "short-pw"
BAD: dict[str, Bad] = {
    # unknown fields, wrong types
    "unknown-field": Bad(REGISTER.with_json(nickname="ana"), 422, "body.nickname"),
    "wrong-type-birth-year": Bad(REGISTER.with_json(birth_year="1990"), 422, "body.birth_year"),
    "missing-field": Bad(REGISTER.without("email"), 422, "body.email"),
    "password-too-short": Bad(REGISTER.with_json(password=_SHORT), 422, "body.password"),
    "password-too-long": Bad(REGISTER.with_json(password="p" * 129), 422, "body.password"),
    "password-not-text": Bad(REGISTER.with_json(password=123456789012345), 422, "body.password"),
    "bad-email": Bad(REGISTER.with_json(email="ana.at.example.com"), 422, "body.email"),
    "unknown-country": Bad(REGISTER.with_json(country="XX"), 422, "body.country"),
    "future-birth-year": Bad(REGISTER.with_json(birth_year=2999), 422, "body.birth_year"),
    "invalid-json": Bad(Call("POST", "/users", content=b'{"email": ',
                             headers={"content-type": "application/json"}), 422, "body"),
    "body-not-object": Bad(Call("POST", "/users", [1, 2]), 422, "body"),
    "no-body": Bad(Call("POST", "/users"), 422, "body"),
    "profile-empty": Bad(PROFILE.without("display_name", "country"), 422, "body"),
    "profile-null": Bad(PROFILE.with_json(display_name=None), 422, "body.display_name"),
    "bad-path-id": Bad(Call("PATCH", "/users/not:an:id", PROFILE.json), 422, "path.user_id"),
    "duplicate-genres": Bad(PREFERENCES.with_json(genres=["drama", "drama"]), 422,
                            "body.genres"),
    "bool-as-string": Bad(PREFERENCES.with_json(subtitles="yes"), 422, "body.subtitles"),
    # ratings
    "stars-0": Bad(RATE.with_json(stars=0), 422, "body.stars"),
    "stars-6": Bad(RATE.with_json(stars=6), 422, "body.stars"),
    "stars-float": Bad(RATE.with_json(stars=4.0), 422, "body.stars"),
    "stars-string": Bad(RATE.with_json(stars="4"), 422, "body.stars"),
    "blank-review": Bad(RATE.with_json(review="   "), 422, "body.review"),
    # money and plans
    "negative-amount": Bad(PAYMENT.with_json(amount_cents=-1299), 422, "body.amount_cents"),
    "zero-amount": Bad(PAYMENT.with_json(amount_cents=0), 422, "body.amount_cents"),
    "amount-as-string": Bad(PAYMENT.with_json(amount_cents="12.99"), 422, "body.amount_cents"),
    "bad-token": Bad(PAYMENT.with_json(card_token="abc"), 422, "body.card_token"),
    "bad-last4": Bad(PAYMENT.with_json(card_last4="42"), 422, "body.card_last4"),
    "failed-without-reason": Bad(PAYMENT.with_json(outcome="failed"), 422, "body"),
    "unknown-plan": Bad(START_SUBSCRIPTION.with_json(plan="gold"), 422, "body.plan"),
    "same-plan": Bad(CHANGE_PLAN.with_json(to_plan="standard"), 422, "body"),
    "unknown-cancel-reason": Bad(CANCEL.with_json(reason="bored"), 422, "body.reason"),
    # dates
    "impossible-date": Bad(START_SUBSCRIPTION.with_json(period_start="2025-02-30T00:00:00Z"),
                           422, "body.period_start"),
    "naive-datetime": Bad(START_SUBSCRIPTION.with_json(period_start="2025-02-01T00:00:00"),
                          422, "body.period_start"),
    "epoch-datetime": Bad(START_SUBSCRIPTION.with_json(period_start=1_738_368_000), 422,
                          "body.period_start"),
    "period-backwards": Bad(START_SUBSCRIPTION.with_json(
        period_start="2025-02-01T00:00:00Z", period_end="2025-01-01T00:00:00Z"), 422, "body"),
    "period-too-long": Bad(START_SUBSCRIPTION.with_json(
        period_start="2025-01-01T00:00:00Z", period_end="2027-01-01T00:00:00Z"), 422, "body"),
    # playback
    "position-beyond-duration": Bad(PROGRESS.with_json(position_seconds=4000), 422, "body"),
    "negative-position": Bad(PROGRESS.with_json(position_seconds=-5), 422,
                             "body.position_seconds"),
    "unknown-device": Bad(PROGRESS.with_json(device={"kind": "toaster", "device_id": "t1"}), 422,
                          "body.device.kind"),
    "device-extra-field": Bad(PROGRESS.with_json(
        device={"kind": "tv", "device_id": "t1", "serial": "x"}), 422, "body.device.serial"),
    # catalog (with a valid operator token)
    "movie-without-runtime": Bad(UPSERT_MOVIE.without("runtime_minutes"), 422, "body"),
    "unknown-genre": Bad(UPSERT_MOVIE.with_json(genres=["cooking"]), 422, "body.genres[0]"),
    "remove-version-0": Bad(Call("DELETE", f"/catalog/titles/{TITLE_ID}?version=0",
                                 headers=OPERATOR), 422, "query.version"),
    "remove-without-version": Bad(Call("DELETE", f"/catalog/titles/{TITLE_ID}",
                                       headers=OPERATOR), 422, "query.version"),
    "relation-to-itself": Bad(ADD_RELATION.with_json(to_title_id=TITLE_ID), 422, "body"),
    "relation-weight": Bad(ADD_RELATION.with_json(weight=1.5), 422, "body.weight"),
    "flag-bad-name": Bad(Call("PUT", "/flags/Bad!Name", FLAG.json, headers=OPERATOR), 422,
                         "path.name"),
    "flag-nested-value": Bad(FLAG.with_json(value={"a": {"b": 1}}), 422, "body.value"),
    "flag-bad-scope": Bad(FLAG.with_json(scope="everyone"), 422, "body.scope"),
    # command options
    "negative-wait": Bad(Call("POST", "/users?wait=-1", REGISTER.json), 422, "query.wait"),
    "wait-not-a-number": Bad(Call("POST", "/users?wait=soon", REGISTER.json), 422,
                             "query.wait"),
    # assets
    "asset-wrong-type": Bad(Call("POST", UPLOAD.url, files={"file": ("a.gif", gif_image(),
                                 "image/gif")}, data={"kind": "poster"}, headers=OPERATOR),
                            415, "body.file"),
    "asset-text": Bad(Call("POST", UPLOAD.url, files={"file": ("a.png", b"hello world",
                           "image/png")}, data={"kind": "poster"}, headers=OPERATOR),
                      415, "body.file"),
    "asset-declared-type-lies": Bad(Call("POST", UPLOAD.url, files={"file": (
        "a.jpg", PNG, "image/jpeg")}, data={"kind": "poster"}, headers=OPERATOR), 415,
        "body.file"),
    "asset-empty": Bad(Call("POST", UPLOAD.url, files={"file": ("a.png", b"", "image/png")},
                            data={"kind": "poster"}, headers=OPERATOR), 422, "body.file"),
    "asset-oversized": Bad(Call("POST", UPLOAD.url, files={"file": (
        "big.png", PNG + b"\x00" * (512 * 1024), "image/png")}, data={"kind": "poster"},
        headers=OPERATOR), 413, "body.file"),
    "asset-far-too-large": Bad(Call("POST", UPLOAD.url, files={"file": (
        "huge.png", PNG + b"\x00" * (2 * 1024 * 1024), "image/png")}, data={"kind": "poster"},
        headers=OPERATOR), 413, "body"),
    "asset-unknown-kind": Bad(Call("POST", UPLOAD.url, files=UPLOAD.files, data={
        "kind": "banner"}, headers=OPERATOR), 422, "body.kind"),
    "asset-missing-kind": Bad(Call("POST", UPLOAD.url, files=UPLOAD.files, headers=OPERATOR),
                              422, "body.kind"),
    "asset-extra-field": Bad(Call("POST", UPLOAD.url, files=UPLOAD.files, data={
        "kind": "poster", "caption": "x"}, headers=OPERATOR), 422, "body.caption"),
    # size
    "json-too-large": Bad(REGISTER.with_json(display_name="A" * (70 * 1024)), 413, "body"),
}

CARD_DETAIL = "card numbers and CVVs are not accepted; send a payment token"
CARD_BAD: dict[str, tuple[Call, str]] = {
    "card-number-field": (PAYMENT.with_json(card_number=CARD.replace(" ", "")),
                          "body.card_number"),
    "card-number-as-token": (PAYMENT.with_json(card_token=CARD), "body.card_token"),
    "card-number-in-last4-field": (PAYMENT.with_json(card_last4=CARD), "body.card_last4"),
    "cvv": (PAYMENT.with_json(cvv="123"), "body.cvv"),
    "cvc-uppercase": (PAYMENT.with_json(CVC=123), "body.CVC"),
    "security-code": (PAYMENT.with_json(**{"security-code": "1234"}), "body.security-code"),
    "nested-card": (PAYMENT.with_json(card={"number": CARD, "exp": "12/29"}),
                    "body.card.number"),
    "card-in-display-name": (REGISTER.with_json(display_name=f"Ana {CARD}"),
                             "body.display_name"),
    "card-as-password": (REGISTER.with_json(password=CARD), "body.password"),
    "card-in-review": (RATE.with_json(review=f"paid with {CARD}, loved it"), "body.review"),
    "card-as-integer": (RATE.with_json(stars=4111111111111111), "body.stars"),
    "card-as-float": (Call("PUT", RATE.url, content=b'{"stars": 4111111111111111.0}',
                           headers={"content-type": "application/json"}), "body.stars"),
    "card-in-flag": (FLAG.with_json(value={"note": CARD.replace(" ", "-")}), "body.value.note"),
    "card-in-list": (PREFERENCES.with_json(genres=["drama", CARD]), "body.genres[1]"),
    "card-as-key": (RATE.with_json(**{CARD: 1}), "body.***"),
    "card-in-query": (Call("POST", f"/users?note={CARD.replace(' ', '')}", REGISTER.json),
                      "query.note"),
    "card-in-path": (Call("PUT", f"/titles/{CARD.replace(' ', '')}/ratings/{USER_ID}",
                          RATE.json), "path"),
    "card-in-broken-json": (Call("POST", "/payments", content=f'{{"pan": "{CARD}"'.encode(),
                                 headers={"content-type": "application/json"}), "body"),
    "card-in-text-body": (Call("POST", "/payments", content=CARD.encode(),
                               headers={"content-type": "text/plain"}), "body"),
    "card-in-multipart-field": (Call("POST", UPLOAD.url, files=UPLOAD.files, data={
        "kind": "poster", "note": CARD}, headers=OPERATOR), "body"),
}

OPERATOR_CALLS: dict[str, Call] = {
    "upsert-title": UPSERT_MOVIE,
    "remove-title": REMOVE_TITLE,
    "add-relation": ADD_RELATION,
    "remove-relation": REMOVE_RELATION,
    "upload-asset": UPLOAD,
    "set-flag": FLAG,
}
CARD_BAD["card-in-form-post"] = (
    Call("POST", "/payments", content=f"card_number={CARD}".encode(),
         headers={"content-type": "application/x-www-form-urlencoded"}), "body")
CARD_BAD["card-in-multipart-to-json-endpoint"] = (
    Call("POST", "/payments", files={"f": ("x.txt", b"x", "text/plain")},
         data={"pan": CARD}), "body")
