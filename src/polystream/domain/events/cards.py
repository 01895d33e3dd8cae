"""Card data: refused at the door, and never accepted inside any event.

No card number or CVV may ever enter the system (payment tokens, brand and last four digits
only). These checks are used by the field types of the contract (free text and ids refuse card
numbers), by the API's request guard, and by redaction (keys that name card data).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

# Anything that is not a letter or a digit can separate the digit groups of a typed card
# number: spaces, dashes, dots, slashes, underscores, tabs... (after normalisation, which
# turns NBSP into a space and full-width digits into ASCII, and drops zero-width characters).
# At most three per gap ("4111 - 1111"), so that prose with numbers far apart is not one number.
_SEP: Final = r"[^0-9A-Za-z]{0,3}"
# 13 to 19 digits, optionally separated ("4111 1111 1111 1111", "4111.1111.1111.1111").
_CARD_NUMBER = re.compile(rf"[0-9](?:{_SEP}[0-9]){{12,18}}")
# The same inside free text. Neighbouring letters or digits mean it is part of a longer token
# (an id, a hash, base64), not a number someone typed.
_CARD_NUMBER_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z])[0-9](?:{_SEP}[0-9]){{12,18}}(?![0-9A-Za-z])"
)
#: A card-number-like run anywhere, for masking names in reports.
DIGIT_RUN: Final = _CARD_NUMBER
_NON_DIGITS = re.compile(r"[^0-9]")
# Plain ASCII without separators other than space and dash needs no normalisation (the
# common case, and normalising costs).
_ASCII_PLAIN = re.compile(r"[\x20-\x7e]*")
# UUIDs are everywhere in requests, and the digit groups of some of them would pass Luhn.
_UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Key names that only ever mean card data. Compared after lower-casing and dropping
# everything but letters and digits, so "Card-Number", "card_number" and "cardNumber" match.
CARD_KEYS: Final = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "csc",
        "securitycode",
        "cardsecuritycode",
        "pan",
        "cardnumber",
        "cardno",
        "ccnumber",
        "creditcardnumber",
        "debitcardnumber",
        "primaryaccountnumber",
    }
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def normalise_digits(text: str) -> str:
    """``text`` as a card-number check must see it: NFKC (full-width digits become ASCII,
    NBSP a space), format characters (zero-width spaces and joiners, soft hyphens) dropped,
    and every other decimal digit (Arabic-Indic, Devanagari, ...) mapped to its ASCII digit.
    """
    if _ASCII_PLAIN.fullmatch(text):
        return text
    out: list[str] = []
    for char in unicodedata.normalize("NFKC", text):
        if char < "\x80":
            out.append(char)
            continue
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category == "Nd":
            out.append(str(unicodedata.digit(char)))
        else:
            out.append(char)
    return "".join(out)


def looks_like_card_number(text: str) -> bool:
    """True if ``text`` as a whole is a 13-19 digit, Luhn-valid number, whatever separates
    its digit groups and whichever digits it is written with.

    Luhn is what tells a card number from a long id or a phone number: only one random
    digit string in ten passes it.
    """
    if len(text) > 64:
        return False
    text = normalise_digits(text)
    if not _CARD_NUMBER.fullmatch(text):
        return False
    return _luhn_valid(_NON_DIGITS.sub("", text))


def text_has_card_number(text: str) -> bool:
    if len(text) < 13 or _UUID_SHAPE.fullmatch(text):
        return False
    text = normalise_digits(text)
    # A UUID inside longer text ("01942172-2559-7075-a1e7-…") starts with digit groups that
    # can pass for a dashed card number; ids are not card data.
    text = _UUID_SHAPE.sub(" ", text)
    return any(
        _luhn_valid(_NON_DIGITS.sub("", match.group()))
        for match in _CARD_NUMBER_IN_TEXT.finditer(text)
    )


def normalise_key(key: str) -> str:
    return "".join(char for char in key.lower() if char.isalnum())


def find_card_data(obj: object) -> list[str]:
    """JSON paths (``$.card.number``) in a JSON-like structure that hold card data.

    Card data is a key that names a card number or security code (whatever its value), or a
    string or integer that is or contains a Luhn-valid 13-19 digit number. The values are
    not returned, so the result can be logged.
    """
    found: list[str] = []
    # Iterative on purpose: request bodies are attacker-controlled and could nest deeply.
    stack: list[tuple[str, object]] = [("$", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                child = f"{path}.{key}"
                if isinstance(key, str) and (
                    normalise_key(key) in CARD_KEYS or text_has_card_number(key)
                ):
                    found.append(child)
                stack.append((child, item))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            if text_has_card_number(value):
                found.append(path)
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and looks_like_card_number(str(abs(value)))
        ):
            found.append(path)
    return sorted(found)


def contains_card_data(obj: object) -> bool:
    """True if :func:`find_card_data` finds anything. The API refuses such requests."""
    return bool(find_card_data(obj))


__all__ = [
    "CARD_KEYS",
    "DIGIT_RUN",
    "contains_card_data",
    "find_card_data",
    "looks_like_card_number",
    "normalise_digits",
    "normalise_key",
    "text_has_card_number",
]
