"""`make dev` shows decoded payloads: the dev server's UI gets the API's codec endpoint, and the API admits that UI."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from workers import devstack

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_dev_ui_is_pointed_at_the_api_codec_server() -> None:
    config = devstack.load_config(ROOT / "temporal-dev.yml").temporal
    endpoint = "http://127.0.0.1:8000" + devstack.CODEC_PATH

    args = devstack.temporal_args(config, port=7233, ui_port=8233, codec_endpoint=endpoint)

    assert args[args.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8000/api/v1/temporal-codec"
    assert "--ui-codec-endpoint" not in devstack.temporal_args(config, port=7233, ui_port=8233)


def test_the_api_admits_the_dev_ui_on_its_chosen_port(monkeypatch: pytest.MonkeyPatch) -> None:
    config = devstack.load_config(ROOT / "temporal-dev.yml")
    env = devstack.child_env(
        config,
        {},
        database_url="postgresql://postgres@/qihuang?host=/tmp",
        temporal_address="127.0.0.1:41000",
        api_url="http://127.0.0.1:41002",
        temporal_ui_url="http://127.0.0.1:41001",
    )
    for name in ("QIHUANG_TEMPORAL_UI_ORIGINS", "QIHUANG_TEMPORAL_CODEC_OPEN_LOOPBACK"):
        monkeypatch.setenv(name, env[name])

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.temporal_ui_origins == ["http://127.0.0.1:41001", "http://localhost:41001"]
    assert settings.temporal_codec_open_loopback is True
    assert devstack.browser_origins("http://[::1]:8233") == ["http://[::1]:8233"]
