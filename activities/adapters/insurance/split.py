"""Money arithmetic of a 医保 settlement: 元 ↔ 分 conversion and the fund/account/cash split.

Pure functions, shared by the sandbox adapter and the platform simulator so the rules are tested once.

The split (a deliberately simple model of 门诊统筹, not any province's real policy):

1. Only the eligible amount (符合政策范围, at most the total) is reimbursable; the rest is the patient's.
2. A deductible (起付线) comes off the eligible amount first; it is applied per settlement, not per year.
3. The pooled fund (统筹基金) pays `fund_ratio` of what is left, **rounded down to the fen**: the fund never pays a
   fraction of a fen more than its ratio, and the odd fraction stays with the patient.
4. The patient's part is paid from the personal account (个人账户) first, up to its balance, when the patient allows
   it; whatever is still left is cash (现金/自费).

So `fund + account + cash == total` holds exactly, by construction, with no fen lost or created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

_FEN_PER_YUAN = Decimal(100)
_CENT = Decimal("0.01")


def yuan_to_fen(value: object, *, signed: bool = False) -> int:
    """Convert a 元 amount as the platform sends it (a JSON number parsed as Decimal, an int or a string) to fen.

    Exact or an error: more than 2 decimals, floats, booleans and (unless `signed`) negative amounts are refused,
    because guessing at money is worse than failing loudly.
    """
    if isinstance(value, bool | float):
        raise TypeError(f"amount must be Decimal, int or str, not {type(value).__name__}")
    if isinstance(value, Decimal | int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {value!r}") from exc
    else:
        raise TypeError(f"amount must be Decimal, int or str, not {type(value).__name__}")
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    fen = amount * _FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise ValueError(f"amount has more than 2 decimals: {value!r}")
    if fen < 0 and not signed:
        raise ValueError(f"amount is negative: {value!r}")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    """Fen as a 2-decimal 元 Decimal, e.g. 1230 → Decimal("12.30")."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    return (Decimal(fen) / _FEN_PER_YUAN).quantize(_CENT)


@dataclass(frozen=True)
class SplitRule:
    """Reimbursement rule of one insurance type (险种)."""

    fund_ratio: Decimal
    deductible_fen: int = 0

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.fund_ratio <= Decimal(1):
            raise ValueError("fund_ratio must be between 0 and 1")
        if self.deductible_fen < 0:
            raise ValueError("deductible_fen must not be negative")


@dataclass(frozen=True)
class SplitPolicy:
    """Rules per insurance type; `default` covers types without a rule of their own."""

    rules: Mapping[str, SplitRule] = field(default_factory=dict)
    default: SplitRule = SplitRule(fund_ratio=Decimal(0))

    def rule(self, insutype: str) -> SplitRule:
        return self.rules.get(insutype, self.default)


# Dev defaults: 职工基本医疗保险 (310) 70 % after a 10 元 deductible, 城乡居民 (390) 50 % after 20 元.
DEFAULT_POLICY = SplitPolicy(
    rules={
        "310": SplitRule(fund_ratio=Decimal("0.70"), deductible_fen=1_000),
        "390": SplitRule(fund_ratio=Decimal("0.50"), deductible_fen=2_000),
    }
)


@dataclass(frozen=True)
class Split:
    total_fen: int
    fund_fen: int
    account_fen: int
    cash_fen: int
    deductible_fen: int


def split(
    total_fen: int,
    rule: SplitRule,
    *,
    account_balance_fen: int,
    use_account: bool,
    eligible_fen: int | None = None,
) -> Split:
    """Split `total_fen` into pooled fund, personal account and cash (see the module docstring for the rules)."""
    if total_fen < 0:
        raise ValueError("total_fen must not be negative")
    if account_balance_fen < 0:
        raise ValueError("account_balance_fen must not be negative")
    eligible = total_fen if eligible_fen is None else eligible_fen
    if not 0 <= eligible <= total_fen:
        raise ValueError("eligible_fen must be between 0 and total_fen")
    deductible = min(eligible, rule.deductible_fen)
    fund = int((Decimal(eligible - deductible) * rule.fund_ratio).to_integral_value(rounding=ROUND_FLOOR))
    personal = total_fen - fund
    account = min(personal, account_balance_fen) if use_account else 0
    return Split(
        total_fen=total_fen,
        fund_fen=fund,
        account_fen=account,
        cash_fen=personal - account,
        deductible_fen=deductible,
    )
