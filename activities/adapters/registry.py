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
from activities.adapters.invoice import EInvoice
from activities.adapters.ledger_anchor import LedgerAnchor
from activities.adapters.liveness import Liveness
from activities.adapters.mailer import Mailer
from activities.adapters.notifier import Notifier
from activities.adapters.payment import PaymentChannel
from activities.adapters.payment.merchants import Merchants
from activities.adapters.pharmacy import Pharmacy
from activities.adapters.practitioner import PractitionerRegistry
from activities.adapters.realname import RealName
from activities.adapters.regional import RegionalHealthRecords
from activities.adapters.rtc import Rtc
from activities.adapters.signer import Signer
from activities.adapters.supervision import SupervisionPlatform
from activities.adapters.tsa import TimestampAuthority
from core.settings import Settings

GROUP = "qihuang.adapters"

PROTOCOLS: dict[str, type] = {
    "his": His,
    "payment": PaymentChannel,
    "pharmacy": Pharmacy,
    "courier": Courier,
    "notifier": Notifier,
    "mailer": Mailer,
    "realname": RealName,
    "tsa": TimestampAuthority,
    "emr": Emr,
    "insurance": MedicalInsurance,
    "invoice": EInvoice,
    "signer": Signer,
    "rtc": Rtc,
    "practitioner": PractitionerRegistry,
    "supervision": SupervisionPlatform,
    "liveness": Liveness,
    "ledger_anchor": LedgerAnchor,
    "regional": RegionalHealthRecords,
}


class AdapterNotFound(LookupError):
    """No implementation is registered under the requested protocol and name."""


def available(protocol: str) -> list[str]:
    """Names registered for `protocol`, e.g. ["sandbox", "wechatpay"]."""
    prefix = f"{protocol}."
    return sorted(ep.name[len(prefix) :] for ep in entry_points(group=GROUP) if ep.name.startswith(prefix))


def load_adapter(
    protocol: str, name: str, sessions: async_sessionmaker[AsyncSession], settings: Settings, **options: Any
) -> Any:
    """Instantiate the implementation `<protocol>.<name>` with (sessions, settings, **options) and check it fits its
    Protocol. Options name which peer an instance talks to where one implementation serves several (a partner
    pharmacy's `pharmacy_id`)."""
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
    adapter = cls(sessions, settings, **options)
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
    practitioner: PractitionerRegistry
    supervision: SupervisionPlatform
    regional: RegionalHealthRecords
    invoice: EInvoice
    # The payment channel of each campus's merchant and the rule that picks one per bill (`payment` is the default).
    merchants: Merchants
    # Optional systems (liveness, ledger anchor, e-mail): None when the settings name no implementation. Keep these
    # last.
    liveness: Liveness | None = None
    ledger_anchor: LedgerAnchor | None = None
    mailer: Mailer | None = None


def load_adapters(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Adapters:
    payment = load_adapter("payment", settings.adapter_payment, sessions, settings)
    return Adapters(
        his=load_adapter("his", settings.adapter_his, sessions, settings),
        payment=payment,
        pharmacy=load_adapter("pharmacy", settings.adapter_pharmacy, sessions, settings),
        courier=load_adapter("courier", settings.adapter_courier, sessions, settings),
        notifier=load_adapter("notifier", settings.adapter_notifier, sessions, settings),
        realname=load_adapter("realname", settings.adapter_realname, sessions, settings),
        tsa=load_adapter("tsa", settings.adapter_tsa, sessions, settings),
        emr=load_adapter("emr", settings.adapter_emr, sessions, settings),
        insurance=load_adapter("insurance", settings.adapter_insurance, sessions, settings),
        signer=load_adapter("signer", settings.adapter_signer, sessions, settings),
        rtc=load_adapter("rtc", settings.adapter_rtc, sessions, settings),
        practitioner=load_adapter("practitioner", settings.adapter_practitioner, sessions, settings),
        supervision=load_adapter("supervision", settings.adapter_supervision, sessions, settings),
        liveness=load_optional("liveness", settings.adapter_liveness, sessions, settings),
        ledger_anchor=load_optional("ledger_anchor", settings.adapter_ledger_anchor, sessions, settings),
        mailer=load_optional("mailer", settings.adapter_mailer, sessions, settings),
        regional=load_adapter("regional", settings.adapter_regional, sessions, settings),
        invoice=load_adapter("invoice", settings.adapter_invoice, sessions, settings),
        merchants=Merchants.load(
            settings, payment, lambda campus: load_adapter("payment", settings.adapter_payment, sessions, campus)
        ),
    )


def load_optional(protocol: str, name: str, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Any:
    """`load_adapter`, or None for a system the hospital does not use (an empty name)."""
    return load_adapter(protocol, name, sessions, settings) if name else None
