"""Merchants (商户): which merchant account takes a bill, and the payment channel that speaks for each.

A hospital with several campuses (院区) gives each its own merchant (`Settings.campuses`, each with the channel
settings it overrides: its merchant id, keys, notify URL). The rules in `Settings.payment_merchant_rules` choose the
campus whose merchant takes a bill, by the bill's department and kind; the first rule that matches wins, and a bill no
rule matches goes to the first campus listed (the reconciliation's convention for bills that name none). Without
campuses there is one merchant, the channel `adapter_payment` configures.

Refunds, closes and queries of a bill go through the merchant that took it (the campus recorded on the bill).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from activities.adapters.payment import PaymentChannel
from core.settings import MerchantRule, Settings


class Merchants:
    def __init__(
        self,
        default: PaymentChannel,
        by_campus: Mapping[str, PaymentChannel] | None = None,
        rules: Sequence[MerchantRule] = (),
    ) -> None:
        self._default = default
        self._by_campus = dict(by_campus or {})
        self._rules = list(rules)

    @classmethod
    def load(cls, settings: Settings, default: PaymentChannel, load: Callable[[Settings], Any]) -> Merchants:
        """One channel per campus: the configured payment adapter with the campus's own settings over the hospital's."""
        by_campus = {
            code: load(settings.model_copy(update=campus.payment)) for code, campus in settings.campuses.items()
        }
        return cls(default, by_campus, settings.payment_merchant_rules)

    @property
    def name(self) -> str:
        """The channel's name (what `bills.channel` holds): every merchant speaks through the same adapter."""
        return self._default.name

    @property
    def needs_department(self) -> bool:
        """Whether picking a merchant looks at the bill's department (so the caller need not look it up otherwise)."""
        return any(rule.department is not None for rule in self._rules)

    def pick(self, *, kind: str, department: str | None) -> str | None:
        """The campus whose merchant takes a bill of `kind` from `department`; None when there are no campuses."""
        for rule in self._rules:
            if rule.kind not in (None, kind) or rule.department not in (None, department):
                continue
            return rule.campus
        return next(iter(self._by_campus), None)

    def channel(self, campus: str | None) -> PaymentChannel:
        """The channel of the merchant that took a bill of `campus` (a bill naming none: the first campus's)."""
        if campus is None:
            return next(iter(self._by_campus.values()), self._default)
        found = self._by_campus.get(campus)
        if found is None:
            raise LookupError(f"no merchant configured for campus {campus!r}")
        return found

    def for_callback(self, name: str) -> PaymentChannel | None:
        """The channel a callback to `/callbacks/payments/{name}` is for: a campus code (each campus's merchant gives
        the channel its own notify URL) or the channel's name."""
        if name in self._by_campus:
            return self._by_campus[name]
        if name == self._default.name:
            return self.channel(None)
        return None

    def campuses(self) -> dict[str, PaymentChannel]:
        return dict(self._by_campus)
