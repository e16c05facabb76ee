"""Fake steps for the EvaluationFollowUp flow: the handling recorded and the notices sent, under the real activity
names on a private queue pair per test. The recorder uses them too."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client

from models.evaluation import EvaluationFollowUpInput, HandleEvaluation
from tests.workflows.account_fakes import Notices, workers
from workflows.evaluation import EvaluationFollowUpWorkflow


def low_rating(evaluation_id: str, remind_every_s: int = 3600) -> EvaluationFollowUpInput:
    return EvaluationFollowUpInput(
        evaluation_id=evaluation_id,
        visit_id=f"visit-of-{evaluation_id}",
        doctor_name="李明远",
        doctor_rating=1,
        department_rating=3,
        hospital_rating=2,
        comment="等了很久医生才接诊。",
        remind_every_s=remind_every_s,
    )


class EvaluationWorld(Notices):
    def __init__(self) -> None:
        super().__init__()
        self.handled: list[tuple[str, HandleEvaluation]] = []

    @activity.defn(name="record_handling")
    async def record_handling(self, evaluation_id: str, handling: HandleEvaluation) -> None:
        self.handled.append((evaluation_id, handling))

    def running(self, client: Client, queue: str) -> Any:
        return workers(client, queue, [EvaluationFollowUpWorkflow], [self.record_handling], [self.send_notice])
