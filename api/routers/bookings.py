"""Booking (预约挂号): the route every patient presses at a famous doctor's release time.

It has a router of its own so the app can match it first: FastAPI tries routes in order, and at the release time this
one takes nearly every request. PostgreSQL decides the booking (`api.services.bookings`); the visit's other routes are
in `api.routers.visits`.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import BearerDep
from api.deps import ContextDep
from api.errors import problem_responses
from api.services import bookings
from models.visit import VisitState

router = APIRouter(tags=["visits"])


class BookingIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=40, examples=["doc-1-20261126-0900"])


@router.post(
    "/bookings",
    status_code=201,
    response_model=VisitState,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="预约挂号",
)
async def book(
    body: BookingIn,
    request: Request,
    ctx: ContextDep,
    token: BearerDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> JSONResponse:
    """Hold the slot for the payment window; answers at once with the visit and its `bill_id`. Patients only.

    The registration bill opens right after: `GET /visits/{visit_id}/payment` answers with the payment link and the
    deadline as soon as it is open. An unpaid hold is released when the window passes.

    409 `SLOT_TAKEN` (with `next_free` slots of the same doctor) when someone else holds it;
    403 `NOT_ELIGIBLE_FOR_REVISIT` without a valid revisit check for the slot's disease;
    403 `IDENTITY_NOT_VERIFIED` before real-name verification; 403 `CONSENT_REQUIRED` before the agreements.
    """
    return await bookings.book(request, ctx, token, idempotency_key, body.slot_id)
