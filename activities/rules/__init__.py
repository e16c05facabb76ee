"""Offline TCM prescription pre-review: 十八反/十九畏, pregnancy, toxic drugs, doses, online bans and more."""

from activities.rules.config import EngineConfig
from activities.rules.engine import RuleEngine, default_engine

__all__ = ["EngineConfig", "RuleEngine", "default_engine"]
