from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from activities.adapters import registry
from activities.adapters.courier.sandbox import SandboxCourier
from activities.adapters.his.sandbox import SandboxHis
from activities.adapters.notifier.sandbox import SandboxNotifier
from activities.adapters.payment import PaymentChannel
from activities.adapters.payment.sandbox import SandboxPayment
from activities.adapters.pharmacy.sandbox import SandboxPharmacy
from activities.adapters.realname.sandbox import SandboxRealName
from activities.adapters.registry import AdapterNotFound, load_adapter, load_adapters


class NotAChannel:
    def __init__(self, sessions, settings) -> None:  # type: ignore[no-untyped-def]
        pass


def test_every_protocol_has_a_sandbox(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    for protocol, expected in registry.PROTOCOLS.items():
        assert "sandbox" in registry.available(protocol)
        assert isinstance(load_adapter(protocol, "sandbox", sessions, settings), expected)


def test_load_adapters_follows_settings(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    adapters = load_adapters(sessions, settings)
    assert isinstance(adapters.his, SandboxHis)
    assert isinstance(adapters.payment, SandboxPayment) and adapters.payment.name == "sandbox"
    assert isinstance(adapters.pharmacy, SandboxPharmacy)
    assert isinstance(adapters.courier, SandboxCourier)
    assert isinstance(adapters.notifier, SandboxNotifier)
    assert isinstance(adapters.realname, SandboxRealName)


def test_unknown_name_lists_what_is_available(sessions, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AdapterNotFound, match=r"available: alipay, sandbox, wechatpay"):
        load_adapter("payment", "unionpay", sessions, settings)
    with pytest.raises(AdapterNotFound, match="known: courier, emr, his, insurance"):
        load_adapter("fax", "sandbox", sessions, settings)
    with pytest.raises(AdapterNotFound):
        load_adapters(sessions, settings.model_copy(update={"adapter_courier": "sf-express"}))


def test_a_class_that_does_not_fit_its_protocol_is_refused(monkeypatch, sessions, settings) -> None:  # type: ignore[no-untyped-def]
    fake = EntryPoint(name="payment.broken", value=f"{__name__}:NotAChannel", group=registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda **kw: [fake] if kw.get("name") == fake.name else [])
    with pytest.raises(TypeError, match="does not implement PaymentChannel"):
        load_adapter("payment", "broken", sessions, settings)
    assert not isinstance(NotAChannel(None, None), PaymentChannel)
