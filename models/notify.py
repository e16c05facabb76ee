"""Notices to patients and staff."""

from __future__ import annotations

from pydantic import BaseModel


class Notice(BaseModel):
    """One notice to one user. `key` makes retries send it once."""

    key: str
    user_ref: str
    template: str
    params: dict[str, str] = {}
