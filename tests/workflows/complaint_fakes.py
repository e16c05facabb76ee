"""Fake complaint steps, registered under the real names on a private queue pair per test, so the real `Complaint` flow
runs on a dev server without PostgreSQL. The recorder uses them too."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client

from models.complaint import ComplaintResponse
from tests.workflows.account_fakes import Notices, workers
from workflows.complaint import ComplaintWorkflow


class ComplaintWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        self.escalations: list[str] = []
        self.responses: list[tuple[str, ComplaintResponse, datetime]] = []
        # Set once an answer is being recorded; when `gate` is set too, recording waits for it (the answer is held).
        self.recording = asyncio.Event()
        self.gate: asyncio.Event | None = None

    @activity.defn(name="record_escalation")
    async def record_escalation(self, complaint_id: str) -> None:
        self.escalations.append(complaint_id)

    @activity.defn(name="record_response")
    async def record_response(self, complaint_id: str, answer: ComplaintResponse, responded_at: datetime) -> None:
        self.recording.set()
        if self.gate is not None:
            await self.gate.wait()
        self.responses.append((complaint_id, answer, responded_at))

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client, queue, [ComplaintWorkflow], [self.record_escalation, self.record_response], [self.send_notice]
        )
