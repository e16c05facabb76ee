"""WeChat Pay's daily trade bill (交易账单, `bill_type=ALL`) parsed into `ChannelBillLine`s, exact to the fen.

The file is UTF-8 CSV: a plain header line, one line per payment or refund with every field prefixed by a backtick
(so spreadsheets keep long numbers as text), then a summary header and one summary line. Amounts are 元 with two
decimals; fees (手续费) have five. Times are Beijing time without an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from models.billing import ChannelBillLine, ChannelBillLineKind

_BEIJING = ZoneInfo("Asia/Shanghai")
_SUMMARY_FIRST_COLUMN = "总交易单数"
_FEN_PER_YUAN = Decimal(100)
# The columns this parser reads. WeChat Pay has appended columns before (2018: 订单金额, 申请退款金额, 费率备注), so
# columns are found by name and extra ones are ignored.
_NEEDED = (
    "交易时间",
    "微信订单号",
    "商户订单号",
    "交易状态",
    "微信退款单号",
    "商户退款单号",
    "退款状态",
    "手续费",
    "订单金额",
    "申请退款金额",
)


class BillFormatError(ValueError):
    """The bill file is not in the format described above."""


def yuan_to_fen(text: str) -> int:
    """'1234.56' → 123456, exactly; an amount that is not a whole number of fen is a format error."""
    try:
        fen = Decimal(text) * _FEN_PER_YUAN
    except InvalidOperation:
        raise BillFormatError(f"not an amount: {text!r}") from None
    if not fen.is_finite() or fen != fen.to_integral_value():
        raise BillFormatError(f"not a whole number of fen: {text!r}")
    return int(fen)


def fee_to_fen(text: str) -> int:
    """A 手续费 (five decimals, negative on refund lines, where the fee is returned) as whole fen, half up.

    WeChat Pay computes fees per line to 0.00001 元 and settles the day's total in fen, so a line's fee is only
    approximately a fen amount; reconciliation of fees should compare day totals.
    """
    try:
        fen = abs(Decimal(text)) * _FEN_PER_YUAN
        return int(fen.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise BillFormatError(f"not a fee: {text!r}") from None


def _fields(line: str) -> list[str]:
    # Every field starts with a backtick, so ",`" separates fields even when a product name contains a comma.
    if not line.startswith("`"):
        raise BillFormatError(f"line does not start with a backtick: {line[:40]!r}")
    return line[1:].split(",`")


def _line(record: dict[str, str]) -> ChannelBillLine:
    occurred_at = datetime.strptime(record["交易时间"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING).astimezone(UTC)
    fee_fen = fee_to_fen(record["手续费"])
    if record["交易状态"] == "REFUND":
        refund_state = record["退款状态"]
        return ChannelBillLine(
            kind=ChannelBillLineKind.REFUND,
            out_trade_no=record["商户订单号"],
            transaction_id=record["微信订单号"],
            # The amount the merchant asked to refund, which is what our refund records hold.
            amount_fen=yuan_to_fen(record["申请退款金额"]),
            occurred_at=occurred_at,
            out_refund_no=record["商户退款单号"],
            refund_id=record["微信退款单号"],
            status="REFUND" if refund_state == "SUCCESS" else f"REFUND_{refund_state}",
            fee_fen=fee_fen,
        )
    return ChannelBillLine(
        kind=ChannelBillLineKind.PAYMENT,
        out_trade_no=record["商户订单号"],
        transaction_id=record["微信订单号"],
        # The order amount (订单金额), not the settled amount (应结订单金额, less vouchers): it is what we billed.
        amount_fen=yuan_to_fen(record["订单金额"]),
        occurred_at=occurred_at,
        status=record["交易状态"],
        fee_fen=fee_fen,
    )


def parse_tradebill(data: bytes) -> list[ChannelBillLine]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BillFormatError("bill is not UTF-8") from None
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        raise BillFormatError("bill is empty")
    header = [name.strip().lstrip("`") for name in rows[0].split(",")]
    absent = [name for name in _NEEDED if name not in header]
    if absent:
        raise BillFormatError(f"bill header lacks {', '.join(absent)}")
    summary_at = next((i for i, row in enumerate(rows) if row.lstrip("`").startswith(_SUMMARY_FIRST_COLUMN)), None)
    if summary_at is None or summary_at + 1 >= len(rows):
        raise BillFormatError("bill has no summary")
    details = rows[1:summary_at]

    lines: list[ChannelBillLine] = []
    for row in details:
        values = _fields(row)
        if len(values) != len(header):
            raise BillFormatError(f"line has {len(values)} fields, header has {len(header)}: {row[:60]!r}")
        try:
            lines.append(_line(dict(zip(header, values, strict=True))))
        except ValueError as exc:  # pydantic's ValidationError and strptime's errors are ValueErrors
            raise BillFormatError(f"bad line {row[:60]!r}: {exc}") from exc

    # The summary's line count guards against a file cut short between lines, which the SHA1 would not catch if
    # WeChat Pay hashed the short file.
    names = [name.strip().lstrip("`") for name in rows[summary_at].split(",")]
    summary = dict(zip(names, _fields(rows[summary_at + 1]), strict=False))
    try:
        counted = Decimal(summary[_SUMMARY_FIRST_COLUMN])
    except (KeyError, InvalidOperation):
        raise BillFormatError("bill summary has no line count") from None
    if counted != len(lines):
        raise BillFormatError(f"bill summary counts {counted} lines, the file has {len(lines)}")
    return lines
