"""Resident ID-card numbers (GB 11643-1999): structure and check character.

Kept apart from the sandbox so the contract suites and other adapters can build and check numbers too.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

# Weights of the first 17 digits, and the check character for each remainder mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# [0-9] rather than \d: \d would accept full-width and other Unicode digits.
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


def normalize(id_card_no: str) -> str:
    return "".join(id_card_no.split()).upper()


def check_char(first17: str) -> str:
    """The 18th character of a number whose first 17 digits are given."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def is_valid(id_card_no: str) -> bool:
    """17 digits holding a real birth date, then the right check character."""
    number = normalize(id_card_no)
    if not _SHAPE.fullmatch(number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return number[17] == check_char(number[:17])


def make(region: str = "110101", born: date = date(1980, 1, 1), sequence: int | None = None) -> str:
    """A well-formed number, random in its 3-digit sequence part unless given; for tests and seeds."""
    seq = secrets.randbelow(1000) if sequence is None else sequence
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def random_valid() -> str:
    """A well-formed number with a random birth date and sequence, so concurrent tests rarely share one."""
    born = date(1950 + secrets.randbelow(60), 1 + secrets.randbelow(12), 1 + secrets.randbelow(28))
    return make(born=born)
