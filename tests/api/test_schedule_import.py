"""Batch import of schedules (8.6.1 h): a dry run names every bad row by line and reason; a real import is all or
nothing; a file that cannot be read gets a clear 4xx, never a 500."""

from __future__ import annotations

import io
import zipfile
from datetime import time

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from models.tables import AuditEvent, Schedule, Slot
from tests.api.scheduling import SCHEDULES, Clinic, in_days, make_clinic, publish

IMPORT = f"{SCHEDULES}/import"
HEADER = "doctor_id,date,start,end,slot_minutes,capacity,service_type,disease_code,fee_fen,extra_cap,note"


@pytest.fixture
async def clinic(api, sessions) -> Clinic:
    return await make_clinic(api, sessions)


async def _upload(api, clinic: Clinic, content: bytes, *, dry_run: bool, name: str = "排班.csv", **headers: str):
    return await api.post(
        IMPORT,
        params={"dry_run": str(dry_run).lower()},
        files={"file": (name, content, "application/octet-stream")},
        headers={**clinic.headers["admin"], **headers},
    )


async def _schedules_of(sessions, *doctor_ids: str) -> int:
    async with sessions() as session:
        query = select(func.count()).where(col(Schedule.doctor_id).in_(doctor_ids))
        return (await session.execute(query)).scalar_one()


def _bad_file(clinic: Clinic) -> tuple[bytes, set[tuple[int, str]]]:
    """One good row and one bad row of each kind; line numbers count the header as line 1."""
    a, c, d = clinic.attending, clinic.chief, clinic.disease
    d3, d4, d5, d6 = (in_days(n).isoformat() for n in (3, 4, 5, 6))
    lines = [
        HEADER,
        f"{a},{d3},08:30,10:00,15,6,text,{d},,2,",  # 2 good
        f"doc-nobody,{d3},08:30,10:00,15,6,text,{d},,,",  # 3
        f"{a},{d4},14:00,15:00,15,4,text,DIS-nobody,,,",  # 4
        f"{a},{d4},16:00,17:00,15,4,text,{clinic.other_disease},,,",  # 5
        f"{a},{d4},08:00,09:00,25,2,text,{d},,,",  # 6: 60 minutes are not 25-minute slots
        f"{a},{d3},09:00,10:30,15,6,text,{d},,,",  # 7: overlaps line 2
        f"{a},{in_days(-1).isoformat()},08:30,10:00,15,6,text,{d},,,",  # 8
        f"{a},{d3},08:30,10:00,15,6,text,{d},,2,",  # 9: line 2 again
        f"{a},{d5},08:30,10:00,15,6,text,{d},12.5,,",  # 10
        f"{a},{d5},14:00,15:00,15,4,门诊,{d},,,",  # 11
        f"{a},2026-13-01,08:30,10:00,15,6,text,{d},,,",  # 12
        f"{a},{d6},25:00,26:00,15,4,text,{d},,,",  # 13
        f"{a},{d6},08:30,10:00,15,,text,{d},,,",  # 14
        "",  # 15: blank lines are skipped but still counted
        f"{c},{d5},08:30,10:00,15,6,text,{d},,,",  # 16: overlaps the chief's published session
        f"{c},{d6},14:00,15:00,15,4,电话,{d},,,",  # 17: the chief offers no phone consults
        f'{c},{d6},08:30,10:00,15,6,图文,{d},,,"第一行',  # 18–19: one record over two lines
        '第二行"',
        f"{c},{d4},08:30,10:00,abc,6,video,{d},,,",  # 20
    ]
    expected = {
        (3, "UNKNOWN_DOCTOR"),
        (4, "UNKNOWN_DISEASE"),
        (5, "DISEASE_NOT_IN_DEPARTMENT"),
        (6, "WINDOW_MISMATCH"),
        (7, "SCHEDULE_OVERLAP"),
        (8, "PAST_DATE"),
        (9, "DUPLICATE_ROW"),
        (10, "BAD_FEE"),
        (11, "BAD_SERVICE_TYPE"),
        (12, "BAD_DATE"),
        (13, "BAD_TIME"),
        (14, "MISSING_VALUE"),
        (16, "SCHEDULE_OVERLAP"),
        (17, "SERVICE_TYPE_NOT_OFFERED"),
        (20, "BAD_NUMBER"),
    }
    return "\n".join(lines).encode(), expected


async def test_dry_run_reports_every_bad_row_and_imports_nothing(api, sessions, clinic: Clinic) -> None:
    await publish(
        api, clinic, doctor_id=clinic.chief, day=in_days(5).isoformat(), start="09:00", end="10:00", capacity=4
    )
    content, expected = _bad_file(clinic)

    response = await _upload(api, clinic, content, dry_run=True)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["dry_run"], report["ok"], report["rows"], report["schedules"], report["slots"]) == (
        True,
        False,
        17,
        0,
        0,
    )
    errors = report["errors"]
    assert {(error["line"], error["code"]) for error in errors} == expected
    assert [error["line"] for error in errors] == sorted(error["line"] for error in errors)
    by_line = {error["line"]: error for error in errors}
    assert by_line[3]["column"] == "doctor_id" and "doc-nobody" in by_line[3]["message"]
    assert by_line[7]["message"].startswith("与第 2 行的排班")
    assert "第 2 行重复" in by_line[9]["message"]
    assert by_line[10]["column"] == "fee_fen"
    assert by_line[14]["column"] == "capacity"
    assert "该医生已有排班" in by_line[16]["message"]
    assert await _schedules_of(sessions, clinic.attending) == 0
    assert await _schedules_of(sessions, clinic.chief) == 1


async def test_a_real_import_with_one_bad_row_imports_nothing(api, sessions, clinic: Clinic) -> None:
    content, expected = _bad_file(clinic)
    response = await _upload(api, clinic, content, dry_run=False)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "IMPORT_REJECTED"
    # Without the chief's session of the dry-run test, line 16 is fine here.
    assert {(error["line"], error["code"]) for error in problem["errors"]} == expected - {(16, "SCHEDULE_OVERLAP")}
    assert "未导入任何排班" in problem["detail"]
    assert await _schedules_of(sessions, clinic.attending, clinic.chief) == 0

    only_one_bad = "\n".join(
        [
            HEADER,
            f"{clinic.attending},{in_days(3).isoformat()},08:30,10:00,15,6,text,{clinic.disease},,,",
            f"{clinic.attending},{in_days(-2).isoformat()},08:30,10:00,15,6,text,{clinic.disease},,,",
        ]
    ).encode()
    rejected = await _upload(api, clinic, only_one_bad, dry_run=False)
    assert [(error["line"], error["code"]) for error in rejected.json()["errors"]] == [(3, "PAST_DATE")]
    assert await _schedules_of(sessions, clinic.attending) == 0


async def test_a_good_file_is_imported_with_its_slots_and_audited(api, sessions, clinic: Clinic) -> None:
    content = "\n".join(
        [
            HEADER,
            f"{clinic.attending},{in_days(3).isoformat()},08:30,10:00,15,6,图文,{clinic.disease},,2,上午",
            f"{clinic.attending},{in_days(3).isoformat()},14:00,15:00,20,3,text,{clinic.disease},2500,,",
            f"{clinic.chief},{in_days(4).replace().strftime('%Y/%m/%d')},08:30,10:00,15,6,video,{clinic.disease},,,",
        ]
    ).encode()

    dry = await _upload(api, clinic, content, dry_run=True)
    assert (dry.json()["ok"], dry.json()["schedules"], dry.json()["slots"]) == (True, 3, 15)
    assert await _schedules_of(sessions, clinic.attending, clinic.chief) == 0

    response = await _upload(api, clinic, content, dry_run=False)
    assert response.status_code == 201, response.text
    assert response.json() == {"dry_run": False, "ok": True, "rows": 3, "schedules": 3, "slots": 15, "errors": []}
    async with sessions() as session:
        schedules = {
            schedule.id: schedule
            for schedule in (
                await session.execute(
                    select(Schedule).where(col(Schedule.doctor_id).in_([clinic.attending, clinic.chief]))
                )
            ).scalars()
        }
        slots = (await session.execute(select(func.count()).where(col(Slot.schedule_id).in_(schedules)))).scalar_one()
        [event] = (
            await session.execute(
                select(AuditEvent).where(
                    col(AuditEvent.action) == "schedule.imported", col(AuditEvent.actor_user_id) == clinic.admin_user
                )
            )
        ).scalars()
    assert slots == 15
    morning = schedules[f"{clinic.attending}-{in_days(3):%Y%m%d}-0830"]
    assert (morning.fee_fen, morning.extra_cap, morning.note) == (2000, 2, "上午")
    assert schedules[f"{clinic.chief}-{in_days(4):%Y%m%d}-0830"].fee_fen == 9900
    assert sorted(event.detail["schedule_ids"]) == sorted(schedules)

    # A retried upload publishes nothing twice: every row now exists.
    again = await _upload(api, clinic, content, dry_run=False)
    assert again.status_code == 422
    assert {error["code"] for error in again.json()["errors"]} == {"SCHEDULE_EXISTS"}
    assert await _schedules_of(sessions, clinic.attending, clinic.chief) == 3


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_xlsx_with_zh_cn_headers_and_typed_cells(api, sessions, clinic: Clinic) -> None:
    header = ["医生编号", "日期", "开始时间", "结束时间", "每号分钟数", "号数", "问诊方式", "病种编码", "挂号费（分）"]
    good = [clinic.attending, in_days(3), time(8, 30), time(10), 15, 6, "图文", clinic.disease, 3000]
    bad = [clinic.attending, in_days(4), "8:30", "10:00", 15.0, 6, "视频问诊", "DIS-nobody", None]
    content = _xlsx([header, good, [], bad])

    dry = await _upload(api, clinic, content, dry_run=True, name="排班.xlsx")
    assert dry.status_code == 200, dry.text
    assert [(error["line"], error["code"]) for error in dry.json()["errors"]] == [(4, "UNKNOWN_DISEASE")]

    bad[7] = clinic.disease
    imported = await _upload(api, clinic, _xlsx([header, good, [], bad]), dry_run=False, name="排班.xlsx")
    assert imported.status_code == 201, imported.text
    assert (imported.json()["schedules"], imported.json()["slots"]) == (2, 12)
    async with sessions() as session:
        rows = await session.execute(
            select(Schedule.fee_fen, Schedule.service_type).where(col(Schedule.doctor_id) == clinic.attending)
        )
        assert sorted(rows.all()) == [(3000, "text"), (4000, "video")]


async def test_gbk_csv_from_excel_is_read(api, clinic: Clinic) -> None:
    content = "\r\n".join(
        [
            "医生编号,日期,开始时间,结束时间,每号分钟数,号数,问诊方式,病种编码,备注",
            f"{clinic.attending},{in_days(3).isoformat()},8:30,10:00,15,6,图文,{clinic.disease},专家门诊",
        ]
    ).encode("gbk")
    response = await _upload(api, clinic, content, dry_run=True)
    assert response.status_code == 200, response.text
    assert (response.json()["ok"], response.json()["slots"]) == (True, 6)


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (9 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 400, "IMPORT_EMPTY_FILE"),
        (b"\n \n", 400, "IMPORT_EMPTY_FILE"),
        (HEADER.encode(), 400, "IMPORT_NO_ROWS"),
        (b"name,when\nx,y", 400, "IMPORT_BAD_COLUMNS"),
        (HEADER.encode("utf-16"), 400, "IMPORT_BAD_ENCODING"),
        (b"\x80\x81\xff,\xfe", 400, "IMPORT_BAD_ENCODING"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 legacy xls", 415, "IMPORT_UNSUPPORTED_FILE"),
        (b"PK\x03\x04 not really a zip", 400, "IMPORT_BAD_XLSX"),
        ("zip", 400, "IMPORT_BAD_XLSX"),
        ("bomb", 413, "IMPORT_FILE_TOO_LARGE"),
        ("many", 413, "IMPORT_TOO_MANY_ROWS"),
        (b"x" * (1024 * 1024 + 1), 413, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_unreadable_files_get_a_clear_4xx(api, clinic: Clinic, content, status, code) -> None:
    made = {
        "zip": lambda: _zip_with("hello.txt", b"not a workbook"),
        "bomb": _zip_bomb,
        "many": lambda: (HEADER + "\n" + "a,2026-01-01,08:00,09:00,15,4,text,X,,,\n" * 2001).encode(),
    }
    body = made[content]() if isinstance(content, str) else content
    response = await _upload(api, clinic, body, dry_run=True)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert response.json()["detail"]


def _zip_with(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


async def test_bad_columns_are_named(api, clinic: Clinic) -> None:
    response = await _upload(api, clinic, b"doctor_id,date,start,start,colour\nx,y,z,w,v", dry_run=True)
    problem = response.json()
    assert problem["code"] == "IMPORT_BAD_COLUMNS"
    assert problem["unknown"] == ["colour"] and problem["repeated"] == ["start"]
    assert "结束时间" in problem["missing"] and "号数" in problem["missing"]


async def test_the_upload_itself_must_be_a_file_in_a_form(api, clinic: Clinic) -> None:
    admin = clinic.headers["admin"]
    as_json = await api.post(IMPORT, json={"file": "x"}, headers=admin)
    assert (as_json.status_code, as_json.json()["code"]) == (422, "VALIDATION_FAILED")
    no_file = await api.post(IMPORT, data={"other": "x"}, files={"x": ("a.csv", b"a")}, headers=admin)
    assert (no_file.status_code, no_file.json()["errors"][0]["field"]) == (422, "body.file")
    broken = await api.post(
        IMPORT, content=b"--nope\r\n", headers={**admin, "Content-Type": "multipart/form-data; boundary=b"}
    )
    assert broken.status_code == 400
    assert broken.headers["content-type"].startswith("application/problem+json")
    for role in ("attending", "patient"):
        response = await _upload(
            api, clinic, HEADER.encode(), dry_run=True, Authorization=clinic.headers[role]["Authorization"]
        )
        assert response.status_code == 403
