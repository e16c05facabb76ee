"""Reading a batch of sessions (排班批量导入, 8.6.1 h) from an uploaded CSV or XLSX file.

The file is untrusted: whatever it holds, the admin gets a 4xx problem naming what is wrong with the file as a whole
(encoding, columns, size), or one `RowError` per bad cell with its line number; never a 500. What the database must
confirm (doctor, disease, overlaps) is checked afterwards by the import service, for every row at once.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TypeVar

import openpyxl

from api.errors import Problem
from api.schemas.catalogue import SERVICE_TYPE_NAMES
from api.schemas.schedules import RowError
from api.services.schedule_rules import MAX_CAPACITY, MAX_EXTRA_CAP, MAX_FEE_FEN, MAX_NOTE, SLOT_MINUTES, Draft

MAX_ROWS = 2000
# An XLSX is a zip: a small upload can unpack to a huge sheet, so the unpacked size is bounded before parsing.
MAX_XLSX_UNPACKED = 8 * 1024 * 1024
MAX_COLUMNS = 30
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the legacy binary Excel format

T = TypeVar("T")

# Column → accepted header names: the English name, then zh-CN names admins use in their spreadsheets.
COLUMNS: dict[str, tuple[str, ...]] = {
    "doctor_id": ("doctor_id", "医生编号"),
    "date": ("date", "日期", "出诊日期"),
    "start": ("start", "开始时间"),
    "end": ("end", "结束时间"),
    "slot_minutes": ("slot_minutes", "每号分钟数", "每号时长(分钟)"),
    "capacity": ("capacity", "号数"),
    "service_type": ("service_type", "问诊方式"),
    "disease_code": ("disease_code", "病种编码"),
    "fee_fen": ("fee_fen", "挂号费(分)"),
    "extra_cap": ("extra_cap", "加号上限"),
    "note": ("note", "备注"),
}
REQUIRED = ("doctor_id", "date", "start", "end", "slot_minutes", "capacity", "service_type", "disease_code")
_LABELS = {column: names[1] for column, names in COLUMNS.items()}
_OPTIONAL = [column for column in COLUMNS if column not in REQUIRED]

_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_SERVICE_TYPES = {
    **{code: code for code in SERVICE_TYPE_NAMES},
    **{name: code for code, name in SERVICE_TYPE_NAMES.items()},
    **{f"{name}问诊": code for code, name in SERVICE_TYPE_NAMES.items()},
}


@dataclass
class Row:
    """One data row: the session it describes, or what is wrong with its cells."""

    line: int
    draft: Draft | None = None
    errors: list[RowError] = field(default_factory=list)


class _BadCell(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _normalise(name: object) -> str:
    text = "" if name is None else str(name)
    return text.strip().lower().replace("（", "(").replace("）", ")").replace(" ", "")


_ALIASES = {_normalise(alias): column for column, names in COLUMNS.items() for alias in names}


def _csv_lines(content: bytes) -> list[tuple[int, list[object]]]:
    # Excel saves CSV as UTF-8 (with a BOM) or, on zh-CN Windows, as GBK; GB18030 is a superset of GBK.
    if b"\x00" in content:
        raise _encoding_problem()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _encoding_problem()
    reader = csv.reader(io.StringIO(text, newline=""))
    lines: list[tuple[int, list[object]]] = []
    try:
        start = 1
        for record in reader:
            lines.append((start, list(record)))
            start = reader.line_num + 1  # a quoted cell may span lines: report where its record starts
    except csv.Error as exc:
        raise Problem(
            400, "IMPORT_BAD_CSV", "CSV 文件格式有误", f"第 {reader.line_num} 行无法解析，请检查引号和分隔符。"
        ) from exc
    return lines


def _encoding_problem() -> Problem:
    return Problem(
        400,
        "IMPORT_BAD_ENCODING",
        "文件编码无法识别",
        "CSV 文件请以 UTF-8 或 GBK 编码保存（Excel 中选择“CSV UTF-8（逗号分隔）”）。",
    )


def _unreadable_xlsx() -> Problem:
    return Problem(400, "IMPORT_BAD_XLSX", "XLSX 文件无法读取", "文件已损坏或不是有效的 XLSX 工作簿。")


def _xlsx_lines(content: bytes) -> list[tuple[int, list[object]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _unreadable_xlsx() from exc
    if unpacked > MAX_XLSX_UNPACKED:
        raise Problem(
            413, "IMPORT_FILE_TOO_LARGE", "文件过大", f"工作簿解压后超过 {MAX_XLSX_UNPACKED // (1024 * 1024)} MB。"
        )
    # openpyxl raises many kinds of exception on a malformed workbook; any of them means "cannot read this file".
    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [
                (number, list(cells))
                for number, cells in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1)
            ]
        finally:
            book.close()
    except Exception as exc:
        raise _unreadable_xlsx() from exc


def _blank(cells: Iterable[object]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _header(cells: list[object]) -> list[str | None]:
    """The column of each position (None: an empty trailing header cell)."""
    columns: list[str | None] = []
    unknown, repeated = [], []
    for cell in cells:
        name = _normalise(cell)
        if not name:
            columns.append(None)
            continue
        column = _ALIASES.get(name)
        if column is None:
            unknown.append(str(cell).strip())
        elif column in columns:
            repeated.append(str(cell).strip())
        columns.append(column)
    missing = [_LABELS[column] for column in REQUIRED if column not in columns]
    if unknown or repeated or missing:
        parts = []
        if missing:
            parts.append(f"缺少列：{'、'.join(missing)}")
        if unknown:
            parts.append(f"无法识别的列：{'、'.join(unknown)}")
        if repeated:
            parts.append(f"重复的列：{'、'.join(repeated)}")
        raise Problem(
            400,
            "IMPORT_BAD_COLUMNS",
            "表头不正确",
            "；".join(parts)
            + "。必填列："
            + "、".join(f"{column}（{_LABELS[column]}）" for column in REQUIRED)
            + "；可选列："
            + "、".join(f"{column}（{_LABELS[column]}）" for column in _OPTIONAL)
            + "。",
            missing=missing,
            unknown=unknown,
            repeated=repeated,
        )
    return columns


def _text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # a numeric id typed into a spreadsheet cell
    return str(cell).strip()


def _date(cell: object) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    match = _DATE.fullmatch(_text(cell))
    try:
        if match is None:
            raise ValueError
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise _BadCell("BAD_DATE", f"日期“{_text(cell)}”格式不正确，应为 YYYY-MM-DD") from None


def _time(cell: object) -> time:
    if isinstance(cell, datetime):
        cell = cell.time()
    if isinstance(cell, time):
        if cell.second or cell.microsecond:
            raise _BadCell("BAD_TIME", f"时间“{cell}”应精确到分钟（HH:MM）")
        return cell.replace(tzinfo=None)
    match = _TIME.fullmatch(_text(cell))
    try:
        if match is None:
            raise ValueError
        return time(int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise _BadCell("BAD_TIME", f"时间“{_text(cell)}”格式不正确，应为 HH:MM") from None


def _integer(code: str, label: str, low: int, high: int) -> Callable[[object], int]:
    def parse(cell: object) -> int:
        value: int | None = None
        if isinstance(cell, int) and not isinstance(cell, bool):
            value = cell
        elif isinstance(cell, float) and cell.is_integer():
            value = int(cell)
        elif isinstance(cell, str) and cell.strip().isascii() and cell.strip().isdigit():
            value = int(cell.strip())
        if value is None or not low <= value <= high:
            raise _BadCell(code, f"{label}“{_text(cell)}”应为 {low}–{high} 的整数")
        return value

    return parse


def _service_type(cell: object) -> str:
    code = _SERVICE_TYPES.get(_text(cell).lower())
    if code is None:
        raise _BadCell("BAD_SERVICE_TYPE", f"问诊方式“{_text(cell)}”无效，应为 图文/电话/视频（text/phone/video）")
    return code


def _note(cell: object) -> str:
    text = _text(cell)
    if len(text) > MAX_NOTE:
        raise _BadCell("TEXT_TOO_LONG", f"备注不能超过 {MAX_NOTE} 个字符")
    return text


_slot_minutes = _integer("BAD_NUMBER", "每号分钟数", *SLOT_MINUTES)
_capacity = _integer("BAD_NUMBER", "号数", 1, MAX_CAPACITY)
_fee = _integer("BAD_FEE", "挂号费（分）", 0, MAX_FEE_FEN)
_extra_cap = _integer("BAD_NUMBER", "加号上限", 0, MAX_EXTRA_CAP)


def _row(line: int, columns: list[str | None], cells: list[object]) -> Row:
    row = Row(line)
    if not _blank(cells[len(columns) :]):
        row.errors.append(RowError(line=line, column=None, code="EXTRA_CELLS", message="该行的列数多于表头"))
    given = {column: cell for column, cell in zip(columns, cells, strict=False) if column and not _blank([cell])}

    def value(column: str, parse: Callable[[object], T], default: T) -> T:
        if column not in given:
            if column in REQUIRED:
                message = f"{_LABELS[column]}不能为空"
                row.errors.append(RowError(line=line, column=column, code="MISSING_VALUE", message=message))
            return default
        try:
            return parse(given[column])
        except _BadCell as bad:
            row.errors.append(RowError(line=line, column=column, code=bad.code, message=bad.message))
            return default

    draft = Draft(
        doctor_id=value("doctor_id", _text, ""),
        day=value("date", _date, date.min),
        start=value("start", _time, time()),
        end=value("end", _time, time()),
        slot_minutes=value("slot_minutes", _slot_minutes, 0),
        capacity=value("capacity", _capacity, 0),
        service_type=value("service_type", _service_type, ""),
        disease_code=value("disease_code", _text, ""),
        fee_fen=value("fee_fen", _fee, None),
        extra_cap=value("extra_cap", _extra_cap, 0),
        note=value("note", _note, ""),
    )
    if not row.errors:
        row.draft = draft
    return row


def read_rows(content: bytes) -> list[Row]:
    """The data rows of an uploaded CSV or XLSX file; 4xx problems for a file that cannot be read as a whole.

    CPU-bound (XLSX is parsed in Python): call it off the event loop.
    """
    if not content.strip():
        raise Problem(400, "IMPORT_EMPTY_FILE", "文件为空", "上传的文件没有内容。")
    if content.startswith(_XLS_MAGIC):
        raise Problem(
            415, "IMPORT_UNSUPPORTED_FILE", "不支持的文件格式", "不支持旧版 .xls 文件，请另存为 .xlsx 或 CSV 后上传。"
        )
    lines = _xlsx_lines(content) if content.startswith(_XLSX_MAGIC) else _csv_lines(content)
    filled = [(number, cells) for number, cells in lines if not _blank(cells)]
    if not filled:
        raise Problem(400, "IMPORT_EMPTY_FILE", "文件为空", "上传的文件没有内容。")
    (_, header), data = filled[0], filled[1:]
    columns = _header(header)
    if not data:
        raise Problem(400, "IMPORT_NO_ROWS", "没有排班数据", "文件只有表头，没有排班数据行。")
    if len(data) > MAX_ROWS:
        raise Problem(
            413,
            "IMPORT_TOO_MANY_ROWS",
            "数据行过多",
            f"一次最多导入 {MAX_ROWS} 行排班，本文件有 {len(data)} 行，请分批导入。",
        )
    return [_row(number, columns, cells) for number, cells in data]
