"""Supervision upload steps (8.6.4.2–8.6.4.3, 8.6.6): build the records of one day, send the ones the platform does
not have in that version, and keep its answer per record.

A record's version is the SM3 digest of its canonical JSON, so an upload run again sends only what changed since; a
batch's idempotency key is the run and that digest list, so a retried step gets the platform's first answer and
never sends a batch twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.supervision import SupervisionPlatform
from activities.errors import refusals_are_final
from core.crypto.sm import FieldCipher, sm3_hex
from models.common import HOSPITAL_TZ, hospital_days
from models.signature import canonical_json
from models.supervision import BatchResult, SupervisionKind, SupervisionRecord, UploadBatch, UploadTotals
from models.tables import SupervisionRecordState

RECORDS = SupervisionRecordState.__table__  # type: ignore[attr-defined]

# The visits a revisit record covers: concluded online revisits. When one changed is when the visit or its record
# last did (a record may be signed after the visit ended).
_REVISITS = text(
    """
    SELECT v.id, v.disease_code, v.stage, v.starts_at, v.abort_reason,
           d.id AS doctor_id, d.name AS doctor_name, d.title AS doctor_title, dep.name AS department,
           dep.subject_code, d.licence_no AS doctor_licence,
           p.id AS patient_id, p.name_enc, p.id_card_enc, p.sex, p.birth_date,
           r.content AS record, r.digest AS record_digest, r.signed_at AS record_signed_at
    FROM visits v
    JOIN doctors d ON d.id = v.doctor_id
    JOIN departments dep ON dep.id = d.department_id
    JOIN patients p ON p.id = v.patient_id
    LEFT JOIN medical_records r ON r.visit_id = v.id
    WHERE v.stage IN ('finished', 'aborted')
      AND GREATEST(v.updated_at, r.signed_at) >= :start AND GREATEST(v.updated_at, r.signed_at) < :end
      AND v.id > :after
    ORDER BY v.id
    LIMIT :size
    """
)

# Prescriptions past the doctor's signature, with their review and fulfilment (the 流转 of 8.6.4.3).
_PRESCRIPTIONS = text(
    """
    SELECT rx.id, rx.visit_id, rx.stage, rx.revision, rx.renewed_from, rx.draft, rx.verdict, rx.findings,
           rx.signatures, rx.forced, rx.forced_reason, rx.pickup, rx.total_fen, rx.submitted_at,
           rx.reviewed_by, rx.review_reason, ph.name AS pharmacist_name, ph.licence_no AS pharmacist_licence,
           d.id AS doctor_id, d.name AS doctor_name, d.title AS doctor_title, dep.name AS department,
           dep.subject_code, d.licence_no AS doctor_licence,
           p.id AS patient_id, p.name_enc, p.id_card_enc, p.sex, p.birth_date,
           f.stage AS fulfilment_stage, f.pharmacy_id, f.waybill_no, f.signed_at AS received_at
    FROM prescriptions rx
    JOIN doctors d ON d.id = rx.doctor_id
    JOIN departments dep ON dep.id = d.department_id
    JOIN patients p ON p.id = rx.patient_id
    LEFT JOIN pharmacists ph ON ph.id = rx.reviewed_by
    LEFT JOIN fulfilments f ON f.prescription_id = rx.id
    WHERE rx.stage <> 'draft'
      AND GREATEST(rx.updated_at, f.updated_at) >= :start AND GREATEST(rx.updated_at, f.updated_at) < :end
      AND rx.id > :after
    ORDER BY rx.id
    LIMIT :size
    """
)

_RECORD_FIELDS = (
    "tcm_disease",
    "tcm_disease_code",
    "tcm_syndrome",
    "tcm_syndrome_code",
    "western_diagnosis",
    "western_diagnosis_code",
    "treatment_principle",
)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(HOSPITAL_TZ).isoformat() if moment is not None else None


class SupervisionActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, platform: SupervisionPlatform
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._platform = platform

    @activity.defn
    async def upload_batch(self, batch: UploadBatch) -> BatchResult:
        """Examine the next `size` records of the day after `after`; send those the platform lacks in this version."""
        records = await self.records(batch)
        if not records:
            return BatchResult(after=None, totals=UploadTotals())
        async with self._sessions() as session:
            sent_before = dict(
                (
                    await session.execute(
                        select(col(SupervisionRecordState.record_id), col(SupervisionRecordState.digest)).where(
                            col(SupervisionRecordState.kind) == batch.kind,
                            col(SupervisionRecordState.record_id).in_([r.record_id for r in records]),
                        )
                    )
                ).all()
            )
        to_send = [r for r in records if batch.resend or sent_before.get(r.record_id) != r.digest]
        totals = UploadTotals(examined=len(records), unchanged=len(records) - len(to_send))
        if to_send:
            accepted, rejected = await self._send(batch, to_send, sent_before)
            totals = totals.add(UploadTotals(accepted=accepted, rejected=rejected))
        return BatchResult(after=records[-1].record_id if len(records) == batch.size else None, totals=totals)

    async def _send(
        self, batch: UploadBatch, records: list[SupervisionRecord], sent_before: dict[str, str]
    ) -> tuple[int, int]:
        info = activity.info()
        versions = sm3_hex(canonical_json([[r.record_id, r.digest] for r in records]))
        receipt = await refusals_are_final(
            self._platform.upload_records(
                idempotency_key=f"{info.workflow_id}:{info.workflow_run_id}:{versions[:32]}",
                kind=batch.kind,
                records=records,
            )
        )
        digests = {r.record_id: r.digest for r in records}
        now = datetime.now(UTC)
        rows = [
            {
                "kind": batch.kind.value,
                "record_id": outcome.record_id,
                "day": batch.day,
                "digest": digests[outcome.record_id],
                "status": "accepted" if outcome.accepted else "rejected",
                "code": outcome.code,
                "reason": outcome.reason,
                "platform_ref": receipt.platform_ref,
                "sends": 1,
                "uploaded_at": now,
            }
            for outcome in receipt.outcomes
            if outcome.record_id in digests
        ]
        if rows:
            statement = insert(RECORDS).values(rows)
            excluded = statement.excluded
            async with self._sessions() as session, session.begin():
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["kind", "record_id"],
                        set_={
                            "day": excluded.day,
                            "digest": excluded.digest,
                            "status": excluded.status,
                            "code": excluded.code,
                            "reason": excluded.reason,
                            "platform_ref": excluded.platform_ref,
                            "sends": RECORDS.c.sends + 1,
                            "uploaded_at": excluded.uploaded_at,
                        },
                    )
                )
        accepted = sum(1 for row in rows if row["status"] == "accepted")
        return accepted, len(rows) - accepted

    async def records(self, batch: UploadBatch) -> list[SupervisionRecord]:
        """The day's records of the batch's kind after `after`, in id order, as the platform receives them."""
        start, end = hospital_days(batch.day, batch.day)
        statement = _REVISITS if batch.kind is SupervisionKind.REVISIT else _PRESCRIPTIONS
        build = self._revisit if batch.kind is SupervisionKind.REVISIT else self._prescription
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    statement, {"start": start, "end": end, "after": batch.after or "", "size": batch.size}
                )
            ).mappings()
            bodies = [(row["id"], build(row)) for row in rows]
        return [
            SupervisionRecord(kind=batch.kind, record_id=record_id, digest=sm3_hex(canonical_json(body)), body=body)
            for record_id, body in bodies
        ]

    def _people(self, row: Any) -> dict[str, Any]:
        return {
            "doctor": {
                "id": row["doctor_id"],
                "name": row["doctor_name"],
                "title": row["doctor_title"],
                "department": row["department"],
                "subject_code": row["subject_code"],
                "licence_no": row["doctor_licence"],
            },
            "patient": {
                "id": row["patient_id"],
                "name": self._cipher.decrypt("name", row["name_enc"]),
                "id_card_no": self._cipher.decrypt("id_card", row["id_card_enc"]),
                "sex": row["sex"],
                "birth_date": row["birth_date"].isoformat() if row["birth_date"] else None,
            },
        }

    def _revisit(self, row: Any) -> dict[str, Any]:
        content = row["record"]
        record = None
        if content is not None:
            record = {field: content.get(field) for field in _RECORD_FIELDS}
            record.update(digest=row["record_digest"], signed_at=_iso(row["record_signed_at"]))
        return {
            "visit_id": row["id"],
            "disease_code": row["disease_code"],
            "stage": row["stage"],
            "starts_at": _iso(row["starts_at"]),
            "abort_reason": row["abort_reason"],
            **self._people(row),
            "record": record,
        }

    def _prescription(self, row: Any) -> dict[str, Any]:
        draft = row["draft"]
        review = None
        if row["reviewed_by"] is not None:
            review = {
                "pharmacist_id": row["reviewed_by"],
                "name": row["pharmacist_name"],
                "licence_no": row["pharmacist_licence"],
                "reason": row["review_reason"],
            }
        fulfilment = None
        if row["fulfilment_stage"] is not None:
            fulfilment = {
                "stage": row["fulfilment_stage"],
                "pharmacy_id": row["pharmacy_id"],
                "waybill_no": row["waybill_no"],
                "received_at": _iso(row["received_at"]),
            }
        return {
            "prescription_id": row["id"],
            "visit_id": row["visit_id"],
            "stage": row["stage"],
            "revision": row["revision"],
            "renewed_from": row["renewed_from"],
            "diagnosis": draft.get("diagnosis"),
            "items": [
                {"herb": item["herb"], "dose_g": item["dose_g"], "decoction": item.get("decoction")}
                for item in draft.get("items", [])
            ],
            "doses": draft.get("doses"),
            "usage": draft.get("usage"),
            "verdict": row["verdict"],
            "findings": sorted({finding["code"] for finding in row["findings"]}),
            "forced": row["forced"],
            "forced_reason": row["forced_reason"],
            "signatures": [
                {
                    "signer_id": signature["signer_id"],
                    "digest": signature["digest"],
                    "signed_at": signature["signed_at"],
                    "reason": signature.get("reason"),
                }
                for signature in row["signatures"]
            ],
            "submitted_at": _iso(row["submitted_at"]),
            **self._people(row),
            "review": review,
            "pickup": row["pickup"],
            "total_fen": row["total_fen"],
            "fulfilment": fulfilment,
        }
