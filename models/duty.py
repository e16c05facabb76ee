"""Pharmacists on duty during business hours (8.3.1.1): what the periodic duty check takes and finds."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, Field, model_validator

from models.common import HOSPITAL_TZ

# Recipient of notices for the pharmacists signed in for duty now (activities/notices.py resolves it).
ON_DUTY_PHARMACISTS = "duty:pharmacist"


class DutyCheckInput(BaseModel):
    """Business hours, Beijing time, on the ISO weekdays listed (1 = Monday); a gap shorter than `grace_s` (a
    hand-over between pharmacists) raises no alert."""

    opens: time
    closes: time
    weekdays: list[int] = Field(default=[1, 2, 3, 4, 5, 6, 7], min_length=1, max_length=7)
    grace_s: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _same_day(self) -> DutyCheckInput:
        if not self.opens < self.closes:
            raise ValueError("business hours must open before they close on the same day")
        if not set(self.weekdays) <= set(range(1, 8)):
            raise ValueError("weekdays are ISO weekdays, 1 (Monday) to 7 (Sunday)")
        return self

    def hours(self) -> str:
        return f"{self.opens:%H:%M}–{self.closes:%H:%M}"

    def opened_at(self, moment: datetime) -> datetime | None:
        """When today's business hours opened, if `moment` falls within them; None outside business hours."""
        local = moment.astimezone(HOSPITAL_TZ)
        if local.isoweekday() not in self.weekdays or not self.opens <= local.time() < self.closes:
            return None
        return datetime.combine(local.date(), self.opens, HOSPITAL_TZ)


class DutyStatus(BaseModel):
    on_duty: int
    # With nobody on duty: since when, counted from the last sign-out or from `opened_at`, whichever is later.
    uncovered_since: datetime | None = None


class DutyCheckResult(BaseModel):
    in_hours: bool
    on_duty: int = 0
    uncovered_since: datetime | None = None
    # The key of the alert to admins, when the gap called for one (sent once per gap, whichever run sends it).
    alert_key: str | None = None
