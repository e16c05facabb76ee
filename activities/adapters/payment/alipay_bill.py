"""Alipay's daily trade bill (业务账单, `bill_type=trade`) parsed into `ChannelBillLine`s, exact to the fen; and the
元 ↔ fen conversions the Alipay adapter uses on the wire.

The download is a zip of GBK-encoded CSV files: `…_业务明细.csv` (one line per payment or refund) and
`…_业务明细(汇总).csv`. The detail file opens with `#` comment lines, then a `#----业务明细列表----` marker, a header
line, the detail lines (each value followed by a tab, so spreadsheets keep long numbers as text), a
`#----业务明细列表结束----` marker and `#` footer lines with the day's counts (`#交易合计：N笔…`, `#退款合计：M笔…`).
Amounts are 元 with two decimals; refund lines carry the refunded amount as a negative 商家实收. Times are Beijing
time without an offset.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from models.billing import ChannelBillLine, ChannelBillLineKind

_BEIJING = ZoneInfo("Asia/Shanghai")
_DETAIL_START = "业务明细列表"
_DETAIL_END = "业务明细列表结束"
_FEN_PER_YUAN = Decimal(100)
_AMOUNT = re.compile(r"-?\d+(\.\d{1,2})?")
_FOOTER_COUNT = {"交易合计": re.compile(r"交易合计：(\d+)笔"), "退款合计": re.compile(r"退款合计：(\d+)笔")}
# The columns this parser reads, found by name: Alipay has added columns over the years and may again.
_NEEDED = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "退款批次号/请求号",
    "服务费（元）",
)


class BillFormatError(ValueError):
    """The bill is not in the format described above."""


class BillArchiveError(BillFormatError):
    """The archive itself does not read (e.g. it was cut short in transit)."""


def yuan_to_fen(text: str) -> int:
    """'1234.56' → 123456 and '-0.01' → -1, exactly; anything but a plain amount of at most two decimals is refused."""
    if not _AMOUNT.fullmatch(text):
        raise BillFormatError(f"not an amount in 元: {text!r}")
    return int(Decimal(text) * _FEN_PER_YUAN)


def fen_to_yuan(fen: int) -> str:
    """123456 → '1234.56', the form Alipay's amount fields take."""
    if fen < 0:
        raise ValueError(f"a negative amount cannot be sent: {fen}")
    return f"{fen // 100}.{fen % 100:02d}"


def parse_trade_bill(archive: bytes) -> list[ChannelBillLine]:
    """The lines of the 业务明细 file in a downloaded bill archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            texts = [bundle.read(info).decode("gbk") for info in bundle.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as exc:  # also a member whose CRC does not match
        raise BillArchiveError(f"bill archive is not a readable zip: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise BillFormatError("a bill file is not GBK text") from exc
    # Found by content rather than by name: the names are GBK without zip's UTF-8 flag, which readers decode as
    # cp437; the summary file has no detail list.
    details = [text for text in texts if _marker_at(text.splitlines(), _DETAIL_START) is not None]
    if len(details) != 1:
        raise BillFormatError(f"bill archive has {len(details)} detail files, expected one")
    return parse_detail(details[0])


def parse_detail(text: str) -> list[ChannelBillLine]:
    rows = text.splitlines()
    start = _marker_at(rows, _DETAIL_START)
    end = _marker_at(rows, _DETAIL_END)
    if start is None or end is None or end <= start + 1:
        raise BillFormatError("bill has no complete 业务明细列表")
    table = list(csv.reader(rows[start + 1 : end]))
    header = [name.strip() for name in table[0]]
    absent = [name for name in _NEEDED if name not in header]
    if absent:
        raise BillFormatError(f"bill header lacks {', '.join(absent)}")
    lines: list[ChannelBillLine] = []
    for values in table[1:]:
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            raise BillFormatError(f"line has {len(values)} fields, header has {len(header)}: {values[:3]!r}")
        record = dict(zip(header, (value.strip() for value in values), strict=True))
        try:
            lines.append(_line(record))
        except ValueError as exc:  # pydantic's ValidationError and strptime's errors are ValueErrors
            raise BillFormatError(f"bad line {values[:3]!r}: {exc}") from exc
    _check_counts(rows[end + 1 :], lines)
    return lines


def _marker_at(rows: list[str], word: str) -> int | None:
    # Markers are comment lines of dashes around the word; the start word is a prefix of the end word.
    return next((i for i, row in enumerate(rows) if row.startswith("#") and row.strip("#- \t") == word), None)


def _line(record: dict[str, str]) -> ChannelBillLine:
    occurred_at = datetime.strptime(record["完成时间"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING).astimezone(UTC)
    # 服务费 is negative on one kind of line and positive on the other; the fee itself is its size.
    fee_fen = abs(yuan_to_fen(record["服务费（元）"] or "0"))
    kind = record["业务类型"]
    if kind == "退款":
        return ChannelBillLine(
            kind=ChannelBillLineKind.REFUND,
            out_trade_no=record["商户订单号"],
            transaction_id=record["支付宝交易号"],
            # 商家实收 is negative on a refund line (money going back). The hospital funds no discounts (商家优惠), so
            # its size is the amount the refund asked for.
            amount_fen=-yuan_to_fen(record["商家实收（元）"]),
            occurred_at=occurred_at,
            out_refund_no=record["退款批次号/请求号"] or None,
            status=kind,
            fee_fen=fee_fen,
        )
    if kind != "交易":
        raise BillFormatError(f"unknown 业务类型 {kind!r}")
    return ChannelBillLine(
        kind=ChannelBillLineKind.PAYMENT,
        out_trade_no=record["商户订单号"],
        transaction_id=record["支付宝交易号"],
        # The order amount (订单金额), not what the merchant received after discounts: it is what we billed.
        amount_fen=yuan_to_fen(record["订单金额（元）"]),
        occurred_at=occurred_at,
        status=kind,
        fee_fen=fee_fen,
    )


def _check_counts(footer: list[str], lines: list[ChannelBillLine]) -> None:
    """The footer's counts guard against a file cut short between lines."""
    found = {
        kind: int(match.group(1))
        for row in footer
        for kind, pattern in _FOOTER_COUNT.items()
        if (match := pattern.search(row))
    }
    expected = {
        "交易合计": sum(line.kind is ChannelBillLineKind.PAYMENT for line in lines),
        "退款合计": sum(line.kind is ChannelBillLineKind.REFUND for line in lines),
    }
    for kind, count in expected.items():
        if kind not in found:
            raise BillFormatError(f"bill footer has no {kind}")
        if found[kind] != count:
            raise BillFormatError(f"bill footer counts {found[kind]} for {kind}, the file has {count}")
