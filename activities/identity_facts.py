"""Facts derived from a mainland ID-card number (GB 11643-1999): birth date and sex."""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def id_card_valid(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _WEIGHTS, strict=True))
    if _CHECK[total % 11] != number[17].upper():
        return False
    try:
        birth_date(number)
    except ValueError:
        return False
    return True


def birth_date(number: str) -> date:
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def sex(number: str) -> str:
    return "male" if int(number[16]) % 2 else "female"


def age_years(number: str, today: date) -> float:
    born = birth_date(number)
    return (today - born).days / 365.25
