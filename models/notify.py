"""Notices to patients and staff."""

from __future__ import annotations

from pydantic import BaseModel

# The admins who handle evaluations and complaints (8.6.7): those holding the feedback permission.
FEEDBACK_HANDLERS = "role:admin/feedback.manage"


class Notice(BaseModel):
    """One notice to one user. `key` makes retries send it once."""

    key: str
    user_ref: str
    template: str
    params: dict[str, str] = {}
