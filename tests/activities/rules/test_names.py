"""Name normalization: aliases resolve, traps do not, and nothing matches by substring."""

from __future__ import annotations

import re

import pytest

from activities.rules.engine import RuleEngine
from activities.rules.names import GENERIC_NAMES, normalize_name

from .support import DATA

# Aliases without an annotation; "半夏(生)" and "甘草(炙)" are written forms, not annotations.
PLAIN_ALIASES = [
    (herb["name"], alias)
    for herb in DATA["herbs"]
    for alias in herb.get("aliases", [])
    if re.fullmatch(r"[^(（]+(\((生|炙)\))?", alias)
]


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("半夏（生）", "生半夏"),
        (" 甘 草 ", "甘草"),
        ("甘草(炙)", "炙甘草"),
        ("川乌(生用)", "生川乌"),
        ("白附子", "白附子"),
    ],
)
def test_normalize_name(written: str, key: str):
    assert normalize_name(written) == key


@pytest.mark.parametrize(("herb", "alias"), PLAIN_ALIASES)
def test_every_plain_alias_resolves_to_its_herb(rules: RuleEngine, herb: str, alias: str):
    assert rules.canonical(alias) == [herb]


@pytest.mark.parametrize("written", ["关黄柏", "川木通", "建曲"])
def test_aliases_annotated_as_another_herb_are_not_aliases(rules: RuleEngine, written: str):
    assert rules.canonical(written) == []


@pytest.mark.parametrize(("generic", "species"), GENERIC_NAMES.items())
def test_generic_names_expand(rules: RuleEngine, generic: str, species: tuple[str, ...]):
    assert rules.canonical(generic) == sorted(species)


@pytest.mark.parametrize("written", ["附", "贝", "草", "大附子", "白附", "川贝母粉"])
def test_no_substring_matching(rules: RuleEngine, written: str):
    assert rules.canonical(written) == []


def test_herb_names_cover_the_knowledge_file(rules: RuleEngine):
    assert {herb["name"] for herb in DATA["herbs"]} <= set(rules.herb_names())
