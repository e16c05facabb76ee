from __future__ import annotations

import pytest

from activities.rules.engine import RuleEngine, default_engine


@pytest.fixture(scope="session")
def rules() -> RuleEngine:
    return default_engine()
