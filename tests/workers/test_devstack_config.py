"""The dev stack's configuration: temporal-dev.yml into `temporal server start-dev` flags, child environments, ports,
search attributes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from workers import devstack

ROOT = Path(__file__).resolve().parent.parent.parent


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_repository_config_becomes_dev_server_flags() -> None:
    config = devstack.load_config(ROOT / "temporal-dev.yml")
    args = devstack.temporal_args(config.temporal, port=7233, ui_port=8233, root=Path("/repo"))

    assert args[:2] == ["server", "start-dev"]
    assert _flag_values(args, "--ip") == ["127.0.0.1"]
    assert _flag_values(args, "--port") == ["7233"]
    assert _flag_values(args, "--ui-port") == ["8233"]
    assert _flag_values(args, "--namespace") == ["default"]
    assert _flag_values(args, "--db-filename") == ["/repo/.qihuang/temporal.db"]
    assert _flag_values(args, "--log-level") == [config.temporal.log_level]
    assert sorted(_flag_values(args, "--search-attribute")) == [
        "Campus=Keyword",
        "DoctorId=Keyword",
        "PrescriptionId=Keyword",
        "Stage=Keyword",
        "VisitId=Keyword",
    ]
    dynamic = dict(value.split("=", 1) for value in _flag_values(args, "--dynamic-config-value"))
    assert dynamic["frontend.enableUpdateWorkflowExecution"] == "true"
    assert dynamic["frontend.enableExecuteMultiOperation"] == "true"
    assert json.loads(dynamic["limit.historyCount.suggestContinueAsNew"]) > 0


def test_dynamic_config_values_are_json_and_ports_are_the_chosen_ones(tmp_path: Path) -> None:
    path = tmp_path / "dev.yml"
    path.write_text(
        "temporal:\n"
        "  port: 7233\n"
        "  db_filename: /var/lib/temporal.db\n"
        "  dynamic_config:\n"
        "    limit.blobSize.warn: 524288\n"
        '    system.someName: "text"\n'
        "    frontend.flag: false\n",
        encoding="utf-8",
    )
    config = devstack.load_config(path)
    args = devstack.temporal_args(config.temporal, port=41000, ui_port=41001, root=tmp_path)

    assert _flag_values(args, "--port") == ["41000"]
    assert _flag_values(args, "--ui-port") == ["41001"]
    assert _flag_values(args, "--db-filename") == ["/var/lib/temporal.db"]
    assert _flag_values(args, "--dynamic-config-value") == [
        "limit.blobSize.warn=524288",
        'system.someName="text"',
        "frontend.flag=false",
    ]
    assert _flag_values(args, "--search-attribute") == []


def test_unknown_keys_and_search_attribute_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.yml"
    path.write_text("temporal:\n  search_attributes:\n    VisitId: String\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        devstack.load_config(path)
    path.write_text("temporal:\n  prot: 7233\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        devstack.load_config(path)


def test_child_environment_layers_defaults_shell_and_stack(tmp_path: Path) -> None:
    path = tmp_path / "dev.yml"
    path.write_text(
        "env:\n  QIHUANG_REGISTRATION_PAY_WINDOW_S: 20\n  QIHUANG_REVIEW_SLA_S: 600\n  QIHUANG_FLAG: true\n",
        encoding="utf-8",
    )
    config = devstack.load_config(path)
    env = devstack.child_env(
        config,
        {"PATH": "/bin", "QIHUANG_REVIEW_SLA_S": "60", "TEMPORAL_ADDRESS": "elsewhere:7233"},
        database_url="postgresql://postgres@/qihuang?host=/tmp",
        temporal_address="127.0.0.1:41000",
        api_url="http://127.0.0.1:41002",
    )

    assert env["QIHUANG_REGISTRATION_PAY_WINDOW_S"] == "20"
    assert env["QIHUANG_FLAG"] == "true"
    assert env["QIHUANG_REVIEW_SLA_S"] == "60"  # the developer's shell wins over the dev defaults
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:41000"  # but the stack's own addresses win over everything
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["DATABASE_URL"] == "postgresql://postgres@/qihuang?host=/tmp"
    assert env["QIHUANG_API_BASE_URL"] == "http://127.0.0.1:41002"
    assert env["PATH"] == "/bin"


def test_repository_config_shortens_the_registration_pay_window() -> None:
    config = devstack.load_config(ROOT / "temporal-dev.yml")
    assert config.env["QIHUANG_REGISTRATION_PAY_WINDOW_S"] == 20
    assert config.env["QIHUANG_DOCTOR_ACCEPT_WINDOW_S"] == 600


def test_a_free_preferred_port_is_kept() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert devstack.port_is_free("127.0.0.1", port)
    assert devstack.choose_port("127.0.0.1", port) == port


def test_a_taken_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]

        assert not devstack.port_is_free("127.0.0.1", taken)
        chosen = devstack.choose_port("127.0.0.1", taken)
        assert chosen != taken
        assert devstack.port_is_free("127.0.0.1", chosen)


def test_ports_already_handed_out_are_not_chosen_again() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert devstack.choose_port("127.0.0.1", port, exclude=[port]) != port


def test_choose_ports_moves_only_what_is_taken(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        path = tmp_path / "dev.yml"
        path.write_text(f"temporal:\n  port: {taken}\n  ui_port: {free}\napi:\n  port: {free}\n", encoding="utf-8")

        ports = devstack.choose_ports(devstack.load_config(path))

    assert ports.temporal != taken
    assert ports.temporal_ui == free
    assert ports.api not in (free, ports.temporal)  # the same port is never handed out twice


def test_url_host_reaches_wildcard_binds_locally() -> None:
    assert devstack.url_host("0.0.0.0") == "127.0.0.1"
    assert devstack.url_host("127.0.0.1") == "127.0.0.1"
    assert devstack.url_host("::1") == "[::1]"


def test_search_attribute_types_map_to_temporal_enums() -> None:
    assert devstack.indexed_value_type("Keyword") == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert devstack.indexed_value_type("KeywordList") == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
    assert devstack.indexed_value_type("Datetime") == IndexedValueType.INDEXED_VALUE_TYPE_DATETIME


async def test_missing_search_attributes_are_registered_on_an_existing_server(client, uid: str) -> None:
    # `start-dev --search-attribute` only registers when it creates its database file; a restart relies on this.
    name = f"DevstackProbe{uid}"
    await devstack.ensure_search_attributes(client, "default", {name: "Keyword"})
    await devstack.ensure_search_attributes(client, "default", {name: "Keyword"})  # already there: no error

    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    assert listed.custom_attributes[name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
