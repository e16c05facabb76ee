"""The complexity rule for new passwords (9.3.1.2.5)."""

from __future__ import annotations

import pytest

from core.password_policy import MESSAGES, password_violations


@pytest.mark.parametrize(
    ("password", "broken"),
    [
        ("Tcm-Clinic-2026", []),
        ("qihuang#2026x", []),  # lower, digit, symbol: three classes are enough
        ("Short#1a", ["length"]),
        ("onlylowercaseletters", ["classes"]),
        ("lowercase123456", ["classes"]),
        ("Wang.Fang#2026", ["username"]),
        ("P@ssw0rd123", ["common"]),
        ("ADMIN@123456", ["common"]),
        ("abc", ["length", "classes"]),
        ("x" * 129 + "A1#", ["length"]),
    ],
)
def test_rules(password: str, broken: list[str]) -> None:
    assert password_violations(password, "wang.fang") == broken


def test_demo_password_passes_so_the_demo_keeps_working() -> None:
    assert password_violations("Qihuang#2026", "zhang-san") == []


def test_short_usernames_are_not_searched_for() -> None:
    assert password_violations("Ab#1234567890", "ab") == []


def test_every_rule_has_a_chinese_message() -> None:
    assert set(MESSAGES) == {"length", "classes", "username", "common", "reuse"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in message) for message in MESSAGES.values())
