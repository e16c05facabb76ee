"""Spreadsheet-safe CSV for exports (the audit log, reconciliation results): UTF-8 with a byte order mark so
spreadsheet software reads the Chinese text, aware times in Beijing time, and no cell that a spreadsheet would run."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from models.common import HOSPITAL_TZ

BOM = "\ufeff"


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(HOSPITAL_TZ).isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    # A spreadsheet would run a cell starting like a formula (CSV injection); reasons are free text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return buffer.getvalue()
