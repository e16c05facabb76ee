"""Fake steps for the CatalogChange flow: the publications and rejections recorded, a publication that finds the
catalogue moved on request, the notices sent; under the real activity names on a private queue pair per test. The
recorder uses them too."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from models.catalog import CatalogChangeInput, CatalogDecision, ChangeKind
from tests.workflows.account_fakes import Notices, workers
from workflows.catalog import CatalogChangeWorkflow


def proposal(change_id: str, kind: ChangeKind = ChangeKind.ADD) -> CatalogChangeInput:
    return CatalogChangeInput(
        change_id=change_id,
        herb_name="佛手",
        kind=kind,
        proposer_id="ph-1",
        proposer_user_id="u-ph-1",
        summary="临床科室申请增加",
    )


class CatalogWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, CatalogDecision]] = []
        self.rejected: list[tuple[str, CatalogDecision]] = []
        # Publications still to refuse because the catalogue moved (the code taken meanwhile).
        self.conflicts = 0

    @activity.defn(name="publish_change")
    async def publish_change(self, change_id: str, decision: CatalogDecision) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise ApplicationError("药品代码已被其他饮片使用", type="CATALOG_CONFLICT", non_retryable=True)
        self.published.append((change_id, decision))

    @activity.defn(name="reject_change")
    async def reject_change(self, change_id: str, decision: CatalogDecision) -> None:
        self.rejected.append((change_id, decision))

    def running(self, client: Client, queue: str) -> Any:
        return workers(
            client, queue, [CatalogChangeWorkflow], [self.publish_change, self.reject_change], [self.send_notice]
        )
