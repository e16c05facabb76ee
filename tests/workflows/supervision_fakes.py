"""A fake supervision platform for the SupervisionUpload flows: the day's record ids per kind, the ones the platform
rejects, and every batch asked for, registered under the real activity names on a private queue pair per test, so
the real workflows run on the dev server without PostgreSQL or the platform's adapter. The recorder uses it too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from temporalio import activity
from temporalio.client import Client

from models.supervision import BatchResult, SupervisionKind, UploadBatch, UploadTotals
from tests.workflows.account_fakes import Notices, workers
from workflows.supervision import DailySupervisionUploadWorkflow, SupervisionUploadWorkflow


class SupervisionWorld(Notices):
    """Every day holds the same records of a kind; each record is accepted unless its id is in `rejected`."""

    def __init__(
        self,
        records: Mapping[SupervisionKind, Iterable[str]] | None = None,
        rejected: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.records: dict[SupervisionKind, list[str]] = {kind: sorted(ids) for kind, ids in (records or {}).items()}
        self.rejected: set[str] = set(rejected)
        self.batches: list[UploadBatch] = []
        # When set, every batch waits for it: the upload is held open.
        self.gate: asyncio.Event | None = None

    @activity.defn(name="upload_batch")
    async def upload_batch(self, batch: UploadBatch) -> BatchResult:
        self.batches.append(batch)
        if self.gate is not None:
            await self.gate.wait()
        ids = self.records.get(batch.kind, [])
        sent = [record_id for record_id in ids if batch.after is None or record_id > batch.after][: batch.size]
        rejected = sum(1 for record_id in sent if record_id in self.rejected)
        totals = UploadTotals(examined=len(sent), accepted=len(sent) - rejected, rejected=rejected)
        return BatchResult(after=sent[-1] if len(sent) == batch.size else None, totals=totals)

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client,
            queue,
            [SupervisionUploadWorkflow, DailySupervisionUploadWorkflow],
            [],
            [self.upload_batch, self.send_notice],
        )
