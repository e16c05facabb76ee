"""The loader refuses data it cannot interpret instead of silently dropping a rule."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from activities.rules.engine import RuleEngine
from activities.rules.knowledge import KnowledgeError, load_knowledge

from .support import DATA, rx


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "knowledge.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def edited(change) -> dict[str, Any]:
    data = copy.deepcopy(DATA)
    change(data)
    return data


def test_shipped_file_loads_with_its_edition():
    knowledge = load_knowledge()
    assert knowledge.edition == "中国药典2020年版一部"
    assert knowledge.regulations.quantity_days == 7 and knowledge.regulations.validity_max_days == 3


def test_engine_loads_from_an_explicit_path(tmp_path: Path):
    data = edited(lambda d: d["meta"]["primary_sources"].__setitem__(0, "中华人民共和国药典2025年版一部"))
    engine = RuleEngine.load(write(tmp_path, data))
    assert "中国药典2025年版一部" in engine.check(rx("附子", "半夏")).findings[0].source


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d["herbs"][0].setdefault("aliases", []).append("某名(含义不明)"), "alias annotation"),
        (lambda d: d["herbs"][0].__setitem__("route_note", "新的用法说明"), "route_note"),
        (lambda d: d["eighteen_incompatible"].append(["甘草", "不存在的药"]), "unknown herbs"),
        (lambda d: d["nineteen_restraints"].remove(["肉桂", "赤石脂"]), "ChP 十九畏"),
        (lambda d: d["pregnancy"]["forbidden"].append("甘草"), "pregnancy.forbidden"),
        (lambda d: d["toxic_28_details"].pop(), "toxic_28_details"),
        (lambda d: d["rules"].pop("quantity_limit"), "quantity_limit"),
    ],
)
def test_loader_rejects_what_it_cannot_interpret(tmp_path: Path, change, error: str):
    with pytest.raises(KnowledgeError, match=error):
        load_knowledge(write(tmp_path, edited(change)))
