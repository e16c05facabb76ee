"""Reading an uploaded CSV or XLSX sheet for a batch import (排班, 人员账号, …): the file, its header, its cells.

The file is untrusted: whatever it holds, the admin gets a 4xx problem naming what is wrong with the file as a whole
(encoding, columns, size), or one `RowError` per bad cell with its line number; never a 500. Each import says which
columns it has (`SheetSpec`) and how to read each cell; what the database must confirm is checked by the import
itself, for every row at once.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, TypeVar

import openpyxl

from api.errors import Problem, problem_responses
from api.schemas.schedules import RowError

# An XLSX is a zip: a small upload can unpack to a huge sheet, so the unpacked size is bounded before parsing.
MAX_XLSX_UNPACKED = 8 * 1024 * 1024
MAX_COLUMNS = 30
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the legacy binary Excel format

_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")

T = TypeVar("T")


class BadCell(ValueError):
    """A cell that cannot be read; `code` and `message` become the row's `RowError`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _normalise(name: object) -> str:
    text = "" if name is None else str(name)
    return text.strip().lower().replace("（", "(").replace("）", ")").replace(" ", "")


@dataclass(frozen=True)
class SheetSpec:
    """An import's columns: column → accepted header names (the English name, then the zh-CN names admins use)."""

    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    # What a row is, for messages ("排班", "人员").
    noun: str
    max_rows: int = 2000

    def label(self, column: str) -> str:
        return self.columns[column][1]

    def aliases(self) -> dict[str, str]:
        return {_normalise(alias): column for column, names in self.columns.items() for alias in names}


@dataclass
class SheetRow:
    """One data row's non-blank cells by column; `value` reads one and collects what is wrong with it."""

    spec: SheetSpec
    line: int
    given: dict[str, object]
    errors: list[RowError] = field(default_factory=list)

    def value(self, column: str, parse: Callable[[object], T], default: T) -> T:
        if column not in self.given:
            if column in self.spec.required:
                message = f"{self.spec.label(column)}不能为空"
                self.errors.append(RowError(line=self.line, column=column, code="MISSING_VALUE", message=message))
            return default
        try:
            return parse(self.given[column])
        except BadCell as bad:
            self.errors.append(RowError(line=self.line, column=column, code=bad.code, message=bad.message))
            return default

    def error(self, column: str | None, code: str, message: str) -> None:
        self.errors.append(RowError(line=self.line, column=column, code=code, message=message))


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


def _header(spec: SheetSpec, cells: list[object]) -> list[str | None]:
    """The column of each position (None: an empty trailing header cell)."""
    aliases = spec.aliases()
    columns: list[str | None] = []
    unknown, repeated = [], []
    for cell in cells:
        name = _normalise(cell)
        if not name:
            columns.append(None)
            continue
        column = aliases.get(name)
        if column is None:
            unknown.append(str(cell).strip())
        elif column in columns:
            repeated.append(str(cell).strip())
        columns.append(column)
    missing = [spec.label(column) for column in spec.required if column not in columns]
    if unknown or repeated or missing:
        parts = []
        if missing:
            parts.append(f"缺少列：{'、'.join(missing)}")
        if unknown:
            parts.append(f"无法识别的列：{'、'.join(unknown)}")
        if repeated:
            parts.append(f"重复的列：{'、'.join(repeated)}")
        optional = [column for column in spec.columns if column not in spec.required]
        raise Problem(
            400,
            "IMPORT_BAD_COLUMNS",
            "表头不正确",
            "；".join(parts)
            + "。必填列："
            + "、".join(f"{column}（{spec.label(column)}）" for column in spec.required)
            + "；可选列："
            + "、".join(f"{column}（{spec.label(column)}）" for column in optional)
            + "。",
            missing=missing,
            unknown=unknown,
            repeated=repeated,
        )
    return columns


def _row(spec: SheetSpec, line: int, columns: list[str | None], cells: list[object]) -> SheetRow:
    given = {column: cell for column, cell in zip(columns, cells, strict=False) if column and not _blank([cell])}
    row = SheetRow(spec, line, given)
    if not _blank(cells[len(columns) :]):
        row.error(None, "EXTRA_CELLS", "该行的列数多于表头")
    return row


def read_sheet(content: bytes, spec: SheetSpec) -> list[SheetRow]:
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
    columns = _header(spec, header)
    if not data:
        raise Problem(400, "IMPORT_NO_ROWS", f"没有{spec.noun}数据", f"文件只有表头，没有{spec.noun}数据行。")
    if len(data) > spec.max_rows:
        raise Problem(
            413,
            "IMPORT_TOO_MANY_ROWS",
            "数据行过多",
            f"一次最多导入 {spec.max_rows} 行{spec.noun}，本文件有 {len(data)} 行，请分批导入。",
        )
    return [_row(spec, number, columns, cells) for number, cells in data]


# --- cell readers ------------------------------------------------------------------------------------------------


def text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # a numeric id typed into a spreadsheet cell
    return str(cell).strip()


def a_date(cell: object) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    match = _DATE.fullmatch(text(cell))
    try:
        if match is None:
            raise ValueError
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise BadCell("BAD_DATE", f"日期“{text(cell)}”格式不正确，应为 YYYY-MM-DD") from None


def a_time(cell: object) -> time:
    if isinstance(cell, datetime):
        cell = cell.time()
    if isinstance(cell, time):
        if cell.second or cell.microsecond:
            raise BadCell("BAD_TIME", f"时间“{cell}”应精确到分钟（HH:MM）")
        return cell.replace(tzinfo=None)
    match = _TIME.fullmatch(text(cell))
    try:
        if match is None:
            raise ValueError
        return time(int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise BadCell("BAD_TIME", f"时间“{text(cell)}”格式不正确，应为 HH:MM") from None


def integer(code: str, label: str, low: int, high: int) -> Callable[[object], int]:
    def parse(cell: object) -> int:
        value: int | None = None
        if isinstance(cell, int) and not isinstance(cell, bool):
            value = cell
        elif isinstance(cell, float) and cell.is_integer():
            value = int(cell)
        elif isinstance(cell, str) and cell.strip().isascii() and cell.strip().isdigit():
            value = int(cell.strip())
        if value is None or not low <= value <= high:
            raise BadCell(code, f"{label}“{text(cell)}”应为 {low}–{high} 的整数")
        return value

    return parse


def bounded_text(code: str, label: str, limit: int) -> Callable[[object], str]:
    def parse(cell: object) -> str:
        value = text(cell)
        if len(value) > limit:
            raise BadCell(code, f"{label}不能超过 {limit} 个字符")
        return value

    return parse


def choice(code: str, label: str, names: dict[str, str]) -> Callable[[object], str]:
    """A cell holding one of `names` (accepted spelling, lower-case → value)."""

    def parse(cell: object) -> str:
        value = names.get(text(cell).lower())
        if value is None:
            raise BadCell(code, f"{label}“{text(cell)}”无效")
        return value

    return parse


# --- answering an import ------------------------------------------------------------------------------------------


def import_responses(report: type, what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of an import endpoint besides its 201: the dry run's 200 and the problems."""
    return {
        200: {"description": f"试导入（dry_run=true）的{what}检查报告", "model": report},
        **problem_responses(400, 401, 403, 413, 415, 422),
    }


def rejected_import(rows: int, errors: Sequence[RowError], title: str, nothing: str) -> Problem:
    """422 IMPORT_REJECTED with every bad row: all or nothing, so `nothing` (e.g. "导入任何排班") was done."""
    bad = len({error.line for error in errors})
    return Problem(
        422,
        "IMPORT_REJECTED",
        title,
        f"共 {rows} 行，其中 {bad} 行有误，未{nothing}。",
        errors=[error.model_dump() for error in errors],
    )
