"""Resident ID-card numbers (GB 11643-1999): structure, check character, and the birth date and sex they carry.

One implementation for the API's format check, the rule engine's patient facts, the sandboxes and the tests.
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
        birth_date(number)
    except ValueError:
        return False
    return number[17] == check_char(number[:17])


def birth_date(id_card_no: str) -> date:
    number = normalize(id_card_no)
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def sex(id_card_no: str) -> str:
    """The 17th digit is odd for men, even for women."""
    return "male" if int(normalize(id_card_no)[16]) % 2 else "female"


def age_years(id_card_no: str, today: date) -> float:
    return (today - birth_date(id_card_no)).days / 365.25


def make(region: str = "110101", born: date = date(1980, 1, 1), sequence: int | None = None) -> str:
    """A well-formed number, random in its 3-digit sequence part unless given; for tests and seeds."""
    seq = secrets.randbelow(1000) if sequence is None else sequence
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def random_valid() -> str:
    """A well-formed number with a random birth date and sequence, so concurrent tests rarely share one."""
    born = date(1950 + secrets.randbelow(60), 1 + secrets.randbelow(12), 1 + secrets.randbelow(28))
    return make(born=born)
