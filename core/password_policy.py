"""The complexity rule for new passwords (9.3.1.2.5). Existing passwords are never re-checked: it applies where a
password is set, so accounts created before it (the demo accounts among them) keep working."""

from __future__ import annotations

import string

MIN_LENGTH = 10
MAX_LENGTH = 128
MIN_CLASSES = 3

# Passwords that pass the length and class rules yet sit near the top of every leaked-password list and of the first
# guesses an attacker tries against a Chinese hospital. Compared case-insensitively.
_COMMON = frozenset(
    {
        "password123!",
        "password@123",
        "password#123",
        "p@ssw0rd123",
        "p@ssw0rd1234",
        "p@ssword123",
        "passw0rd!23",
        "qwerty123456",
        "qwerty@12345",
        "qwer1234!@#$",
        "1qaz2wsx3edc",
        "1qaz@wsx3edc",
        "1qaz!qaz2wsx",
        "zaq12wsxcde3",
        "abc123456789",
        "abcd@1234567",
        "abc@12345678",
        "aa123456789!",
        "a123456789!",
        "admin@123456",
        "admin123456!",
        "admin@12345",
        "administrator1",
        "welcome@123",
        "welcome123!",
        "iloveyou520!",
        "woaini1314!",
        "woaini@1314",
        "huawei@123",
        "hospital@123",
        "hospital123!",
        "yiyuan@123456",
        "doctor@123456",
        "changeme123!",
        "letmein@123",
        "test@1234567",
        "root@1234567",
        "123456789abc",
        "123456abc!@#",
        "1234567890ab",
    }
)

# One zh-CN message per rule, so a client can list everything that must change at once.
MESSAGES = {
    "length": f"密码长度应为 {MIN_LENGTH}–{MAX_LENGTH} 位",
    "classes": f"密码应包含大写字母、小写字母、数字、符号中的至少 {MIN_CLASSES} 类",
    "username": "密码不能包含用户名",
    "common": "密码过于常见，容易被猜中，请换一个",
    # Checked by whoever knows the current password (a change), not by `password_violations`.
    "reuse": "新密码不能与当前密码相同",
}


def _classes(password: str) -> int:
    lower = any(c in string.ascii_lowercase for c in password)
    upper = any(c in string.ascii_uppercase for c in password)
    digit = any(c in string.digits for c in password)
    # Anything else, including spaces and non-Latin characters, counts as a symbol.
    other = any(not (c.isascii() and c.isalnum()) for c in password)
    return lower + upper + digit + other


def password_violations(password: str, username: str) -> list[str]:
    """The rules `password` breaks, as keys of `MESSAGES`; empty when it may be set."""
    broken = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        broken.append("length")
    if _classes(password) < MIN_CLASSES:
        broken.append("classes")
    # A username of one or two characters would forbid too much for too little gain.
    if len(username) >= 3 and username.casefold() in password.casefold():
        broken.append("username")
    if password.casefold() in _COMMON:
        broken.append("common")
    return broken
