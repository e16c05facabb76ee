"""Find adapter implementations by name through the `qihuang.adapters` entry points.

An integrator's package registers `<protocol>.<name> = package.module:Class` under that group; setting
`QIHUANG_ADAPTER_<PROTOCOL>=<name>` then selects it without any change to this repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.adapters.courier import Courier
from activities.adapters.emr import Emr
from activities.adapters.his import His
from activities.adapters.insurance import MedicalInsurance
from activities.adapters.notifier import Notifier
from activities.adapters.payment import PaymentChannel
from activities.adapters.pharmacy import Pharmacy
from activities.adapters.realname import RealName
from activities.adapters.rtc import Rtc
from activities.adapters.signer import Signer
from activities.adapters.tsa import TimestampAuthority
from core.settings import Settings

GROUP = "qihuang.adapters"

PROTOCOLS: dict[str, type] = {
    "his": His,
    "payment": PaymentChannel,
    "pharmacy": Pharmacy,
    "courier": Courier,
    "notifier": Notifier,
    "realname": RealName,
    "tsa": TimestampAuthority,
    "emr": Emr,
    "insurance": MedicalInsurance,
    "signer": Signer,
    "rtc": Rtc,
}


class AdapterNotFound(LookupError):
    """No implementation is registered under the requested protocol and name."""


def available(protocol: str) -> list[str]:
    """Names registered for `protocol`, e.g. ["sandbox", "wechatpay"]."""
    prefix = f"{protocol}."
    return sorted(ep.name[len(prefix) :] for ep in entry_points(group=GROUP) if ep.name.startswith(prefix))


def load_adapter(protocol: str, name: str, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Any:
    """Instantiate the implementation `<protocol>.<name>` with (sessions, settings) and check it fits its Protocol."""
    expected = PROTOCOLS.get(protocol)
    if expected is None:
        raise AdapterNotFound(f"unknown adapter protocol {protocol!r}; known: {', '.join(sorted(PROTOCOLS))}")
    found = entry_points(group=GROUP, name=f"{protocol}.{name}")
    if not found:
        names = ", ".join(available(protocol)) or "none"
        raise AdapterNotFound(
            f"no {protocol} adapter named {name!r} in entry-point group {GROUP!r}; available: {names}"
            " (an editable install must be re-installed after entry points change)"
        )
    cls = next(iter(found)).load()
    adapter = cls(sessions, settings)
    # runtime_checkable only checks that the members exist, not their signatures; the contract suites do the rest.
    if not isinstance(adapter, expected):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} does not implement {expected.__name__}")
    return adapter


@dataclass(frozen=True)
class Adapters:
    """One adapter per external system, as the settings choose them; handed to activity classes."""

    his: His
    payment: PaymentChannel
    pharmacy: Pharmacy
    courier: Courier
    notifier: Notifier
    realname: RealName
    tsa: TimestampAuthority
    emr: Emr
    insurance: MedicalInsurance
    signer: Signer
    rtc: Rtc


def load_adapters(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Adapters:
    return Adapters(
        his=load_adapter("his", settings.adapter_his, sessions, settings),
        payment=load_adapter("payment", settings.adapter_payment, sessions, settings),
        pharmacy=load_adapter("pharmacy", settings.adapter_pharmacy, sessions, settings),
        courier=load_adapter("courier", settings.adapter_courier, sessions, settings),
        notifier=load_adapter("notifier", settings.adapter_notifier, sessions, settings),
        realname=load_adapter("realname", settings.adapter_realname, sessions, settings),
        tsa=load_adapter("tsa", settings.adapter_tsa, sessions, settings),
        emr=load_adapter("emr", settings.adapter_emr, sessions, settings),
        insurance=load_adapter("insurance", settings.adapter_insurance, sessions, settings),
        signer=load_adapter("signer", settings.adapter_signer, sessions, settings),
        rtc=load_adapter("rtc", settings.adapter_rtc, sessions, settings),
    )
