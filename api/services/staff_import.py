"""Creating doctors' and pharmacists' accounts in a batch (8.5.2.1, 8.5.3.1 后台批量创建) from a CSV or XLSX file.

The file is read like the schedule import (api/services/sheet_import.py): a 4xx problem for a file that cannot be read
as a whole, one `RowError` per bad cell or row with its line number. All or nothing: nothing is created while any row
is bad, and a dry run only reports. Each account gets a random initial password, shown once in the answer; the
person signs in with it, must change it before anything else (api/auth.py PASSWORD_CHANGE_SCOPE), then uploads their
documents and submits their application like anyone who registered themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.schedules import RowError
from api.schemas.staff import ImportedAccount
from api.services.sheet_import import BadCell, SheetRow, SheetSpec, a_date, bounded_text, choice, read_sheet, text
from api.services.staff_applications import (
    Applicant,
    add_applications,
    applicant_faults,
    initial_password,
    load_reference,
    reference_faults,
)
from core.crypto.sm import FieldCipher
from models.onboarding import Affiliation, StaffRole

# Each account's password is hashed with scrypt on purpose slowly: batches stay small.
MAX_ROWS = 200

SPEC = SheetSpec(
    columns={
        "role": ("role", "角色"),
        "username": ("username", "用户名"),
        "name": ("name", "姓名"),
        "id_card_no": ("id_card_no", "身份证号", "身份证号码"),
        "phone": ("phone", "手机号", "手机号码"),
        "licence_no": ("licence_no", "执业证书编码"),
        "licence_date": ("licence_date", "执业证书日期", "首次注册日期"),
        "department_id": ("department_id", "科室编号"),
        "title": ("title", "职称"),
        "institution": ("institution", "执业机构"),
        "affiliation": ("affiliation", "药师来源"),
    },
    required=("role", "username", "name", "id_card_no", "phone", "licence_no", "licence_date"),
    noun="人员",
    max_rows=MAX_ROWS,
)

_role = choice(
    "BAD_ROLE", "角色", {"doctor": "doctor", "医生": "doctor", "pharmacist": "pharmacist", "药师": "pharmacist"}
)
_title = choice("BAD_TITLE", "职称", {name: name for name in ("主任医师", "副主任医师", "主治医师", "医师")})
_affiliation = choice(
    "BAD_AFFILIATION",
    "药师来源",
    {"hospital": "hospital", "本院": "hospital", "third_party": "third_party", "第三方": "third_party"},
)


def _matching(code: str, label: str, pattern: str) -> Callable[[object], str]:
    compiled = re.compile(pattern)

    def parse(cell: object) -> str:
        value = text(cell)
        if not compiled.fullmatch(value):
            raise BadCell(code, f"{label}“{value}”格式不正确")
        return value

    return parse


_username = _matching("BAD_USERNAME", "用户名", r"[A-Za-z0-9_.-]{3,64}")
_phone = _matching("BAD_PHONE", "手机号", r"1[0-9]{10}")
_name = _matching("BAD_NAME", "姓名", r"\S.{0,30}\S")
_licence = bounded_text("TEXT_TOO_LONG", "执业证书编码", 32)
_institution = bounded_text("TEXT_TOO_LONG", "执业机构", 100)


def _applicant(cells: SheetRow) -> Applicant:
    value = cells.value
    return Applicant(
        role=StaffRole(value("role", _role, "doctor")),
        username=value("username", _username, ""),
        password=initial_password(),
        name=value("name", _name, ""),
        id_card_no=value("id_card_no", text, ""),
        phone=value("phone", _phone, ""),
        licence_no=value("licence_no", _licence, ""),
        licence_date=value("licence_date", a_date, date.min),
        department_id=value("department_id", text, "") or None,
        title=value("title", _title, "") or None,
        institution=value("institution", _institution, "") or None,
        affiliation=Affiliation(value("affiliation", _affiliation, "hospital")),
    )


def read_applicants(content: bytes) -> list[tuple[SheetRow, Applicant]]:
    """Each row with the applicant it describes (its cell errors on the row). CPU-bound: off the event loop."""
    return [(cells, _applicant(cells)) for cells in read_sheet(content, SPEC)]


async def import_applicants(
    session: AsyncSession,
    cipher: FieldCipher,
    rows: Sequence[tuple[SheetRow, Applicant]],
    today: date,
    created_by: str,
    *,
    dry_run: bool,
) -> tuple[list[ImportedAccount], list[RowError]]:
    """Check every row against the rules, the database and the other rows; create them all only if none is bad."""
    ref = await load_reference(session, cipher, [applicant for _, applicant in rows])
    first_line: dict[tuple[str, str], int] = {}
    for cells, applicant in rows:
        if cells.errors:
            continue  # its cells are wrong already: the rules below would only repeat that
        for fault in applicant_faults(applicant, today) + reference_faults(applicant, ref, cipher):
            cells.error(fault.field if fault.field in SPEC.columns else None, fault.code, fault.message)
        for column, key in (("username", applicant.username), ("id_card_no", applicant.id_card_no.upper())):
            seen = first_line.setdefault((column, key), cells.line)
            if seen != cells.line:
                cells.error(column, "DUPLICATE_ROW", f"{SPEC.label(column)}与第 {seen} 行重复")
    errors = sorted((error for cells, _ in rows for error in cells.errors), key=lambda error: error.line)
    if errors or dry_run:
        return [], errors
    applicants = [applicant for _, applicant in rows]
    created = await add_applications(
        session, cipher, applicants, source="import", created_by=created_by, initial_passwords=True
    )
    return [
        ImportedAccount(
            line=cells.line, staff_id=row.id, username=applicant.username, initial_password=applicant.password
        )
        for (cells, applicant), row in zip(rows, created, strict=True)
    ], []
