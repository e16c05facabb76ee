"""Invoice (8.4.1): a paid bill's e-invoice (电子票据), and its red-letter reversal (冲红) after a full refund.

Started by the Bill once paid (`invoice-{bill}`) and by the Refund that returned everything (`invoice-{bill}-red`),
each without waiting for it: a slow receipt platform never holds up a payment or a refund. Either order of the two
ends with the receipt reversed (activities/invoices.py).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.invoices import InvoiceActivities
    from models.invoice import InvoiceOutcome, InvoiceTask
    from workflows.steps import Notices, call, yuan


def invoice_workflow_id(bill_id: str, *, reverse: bool = False) -> str:
    return f"invoice-{bill_id}-red" if reverse else f"invoice-{bill_id}"


def bill_link(bill_id: str) -> str:
    """Where the patient sees a bill's details (the notices make it absolute)."""
    return f"/bills/{bill_id}"


@workflow.defn(name="Invoice")
class InvoiceWorkflow:
    @workflow.run
    async def run(self, task: InvoiceTask) -> InvoiceOutcome:
        notices = Notices()
        patient = f"patient:{task.patient_id}"
        link = bill_link(task.bill_id)
        step = InvoiceActivities.reverse_invoice if task.reverse else InvoiceActivities.issue_invoice
        try:
            outcome: InvoiceOutcome = await call(step, task)
        except ActivityError as failure:
            # The platform refused: finance issues or reverses it by hand; the payment or refund stands.
            cause = failure.cause
            reason = cause.message if isinstance(cause, ApplicationError) else "票据平台拒绝"
            notices.send("failed", "role:finance", "invoice_failed", bill_id=task.bill_id, reason=reason)
            await notices.flush()
            return InvoiceOutcome(**task.model_dump())
        if outcome.invoice_no and not task.reverse:
            amount = yuan(outcome.total_fen)
            notices.send("issued", patient, "invoice_issued", number=outcome.invoice_no, amount=amount, link=link)
        if outcome.red_invoice_no:
            # Both flows may reverse (see activities/invoices.py): the notice's key is the bill's, so it goes once.
            notices.send_once(
                f"{invoice_workflow_id(task.bill_id)}:reversed",
                patient,
                "invoice_reversed",
                number=outcome.invoice_no or "",
                red=outcome.red_invoice_no,
                link=link,
            )
        await notices.flush()
        return outcome
