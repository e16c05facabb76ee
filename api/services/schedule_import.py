"""Reading a batch of sessions (排班批量导入, 8.6.1 h) from an uploaded CSV or XLSX file.

The file and its cells are read by api/services/sheet_import.py (a 4xx problem for a file that cannot be read as a
whole, one `RowError` per bad cell); this module says which columns a session has. What the database must confirm
(doctor, disease, overlaps) is checked afterwards by the import service, for every row at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time

from api.schemas.catalogue import SERVICE_TYPE_NAMES
from api.schemas.schedules import RowError
from api.services.schedule_rules import MAX_CAPACITY, MAX_EXTRA_CAP, MAX_FEE_FEN, MAX_NOTE, SLOT_MINUTES, Draft
from api.services.sheet_import import BadCell, SheetSpec, a_date, a_time, bounded_text, integer, read_sheet, text

MAX_ROWS = 2000

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
SPEC = SheetSpec(COLUMNS, REQUIRED, noun="排班", max_rows=MAX_ROWS)

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


def _service_type(cell: object) -> str:
    code = _SERVICE_TYPES.get(text(cell).lower())
    if code is None:
        raise BadCell("BAD_SERVICE_TYPE", f"问诊方式“{text(cell)}”无效，应为 图文/电话/视频（text/phone/video）")
    return code


_slot_minutes = integer("BAD_NUMBER", "每号分钟数", *SLOT_MINUTES)
_capacity = integer("BAD_NUMBER", "号数", 1, MAX_CAPACITY)
_fee = integer("BAD_FEE", "挂号费（分）", 0, MAX_FEE_FEN)
_extra_cap = integer("BAD_NUMBER", "加号上限", 0, MAX_EXTRA_CAP)
_note = bounded_text("TEXT_TOO_LONG", "备注", MAX_NOTE)


def read_rows(content: bytes) -> list[Row]:
    """The sessions of an uploaded CSV or XLSX file; 4xx problems for a file that cannot be read as a whole.

    CPU-bound (XLSX is parsed in Python): call it off the event loop.
    """
    rows = []
    for cells in read_sheet(content, SPEC):
        value = cells.value
        draft = Draft(
            doctor_id=value("doctor_id", text, ""),
            day=value("date", a_date, date.min),
            start=value("start", a_time, time()),
            end=value("end", a_time, time()),
            slot_minutes=value("slot_minutes", _slot_minutes, 0),
            capacity=value("capacity", _capacity, 0),
            service_type=value("service_type", _service_type, ""),
            disease_code=value("disease_code", text, ""),
            fee_fen=value("fee_fen", _fee, None),
            extra_cap=value("extra_cap", _extra_cap, 0),
            note=value("note", _note, ""),
        )
        rows.append(Row(cells.line, None if cells.errors else draft, cells.errors))
    return rows
