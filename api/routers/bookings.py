"""Booking (预约挂号): the route every patient presses at a famous doctor's release time.

It has a router of its own so the app can match it first: FastAPI tries routes in order, and at the release time this
one takes nearly every request. PostgreSQL decides the booking (`api.services.bookings`); the visit's other routes are
in `api.routers.visits`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import StaffDep, bearer_of
from api.errors import problem_responses
from api.idempotency import IDEMPOTENCY_HEADER
from api.schemas.money import InsuranceIn
from api.services import bookings
from models.visit import VisitState

router = APIRouter(tags=["visits"])


class BookingIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=60, examples=["doc-1-20261126-0900-0915"])
    insurance: InsuranceIn | None = Field(default=None, description="使用医保支付挂号费时的医保电子凭证")


# What FastAPI would document for the bearer token and the Idempotency-Key header if they were dependencies: the
# handler reads both itself (see the module docstring of `api.services.bookings`), and FastAPI's dependency solving
# cost more than a fifth of the API's CPU for this request.
_HEADERS_DOC = {
    "security": [{"OAuth2PasswordBearer": []}],
    "parameters": [
        {
            "name": IDEMPOTENCY_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "title": IDEMPOTENCY_HEADER},
            "description": "幂等键：重复提交同一请求时返回首次结果",
        }
    ],
}


@router.post(
    "/bookings",
    status_code=201,
    response_model=VisitState,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="预约挂号",
    openapi_extra=_HEADERS_DOC,
)
async def book(body: BookingIn, request: Request) -> JSONResponse:
    """Hold the slot for the payment window; answers at once with the visit and its `bill_id`. Patients only.

    The registration bill opens right after: `GET /visits/{visit_id}/payment` answers with the payment link and the
    deadline as soon as it is open. An unpaid hold is released when the window passes.

    409 `SLOT_TAKEN` (with `next_free` slots of the same doctor) when someone else holds it;
    403 `NOT_ELIGIBLE_FOR_REVISIT` without a valid revisit check for the slot's disease;
    403 `IDENTITY_NOT_VERIFIED` before real-name verification; 403 `CONSENT_REQUIRED` before the agreements;
    409 `DEPARTMENT_UNAVAILABLE` for a slot of a department disabled or outside the registered 诊疗科目.
    """
    token = bearer_of(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    return await bookings.book(request, request.app.state.ctx, token, key, body.slot_id, body.insurance)


class AssistedBookingIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=60, examples=["doc-1-20261126-0900-0915"])


@router.post(
    "/patients/{patient_id}/bookings",
    status_code=201,
    response_model=VisitState,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    summary="医生代患者预约",
)
async def book_for_patient(
    body: AssistedBookingIn,
    request: Request,
    actor: StaffDep,
    patient_id: Annotated[str, Path(max_length=40)],
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> JSONResponse:
    """8.1.3.4: a doctor books one of their own slots for a patient who cannot use the app (an elderly patient, say);
    an administrator may book any slot. Doctors and administrators only.

    The patient must meet the same conditions as when booking themselves (403 `IDENTITY_NOT_VERIFIED`,
    `CONSENT_REQUIRED`, `NOT_ELIGIBLE_FOR_REVISIT`, `BOOKING_BLOCKED`…), and the slot is decided the same way
    (409 `SLOT_TAKEN` with `next_free`). The answer is the visit with its `bill_id`; the patient is sent the payment
    link. 403 `FORBIDDEN` for another doctor's slot; 404 for an unknown patient or slot.
    """
    ctx = request.app.state.ctx
    return await bookings.book_for(request, ctx, actor, idempotency_key, patient_id, body.slot_id)


class BookingFastPath:
    """`POST /api/v1/bookings` as the app serves it at a rush: a well-formed request goes straight to `book`, past
    FastAPI's routing, request parsing and exception middleware, which cost about as much CPU as the booking itself
    (0.2 ms of 0.57 per refused attempt, measured in process). It sits inside the app's own middlewares (request id,
    access log, metrics, body limit, gateway), so the request is logged, counted and limited as any other. Anything
    else, and a body `BookingIn` does not accept, goes on to FastAPI, which answers as documented (422, 400 …)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            body = await _read_body(receive)
            payload = _booking(request, body)
            if payload is None:
                await self.app(scope, _replaying(body, receive), send)
                return
            request = Request(scope, _replaying(body, receive))
            response = await book(payload, request)
        except Exception as error:
            # What FastAPI's exception middleware would do: the app's handler for it (Problem, the body limit's 413 …).
            handler = _handler_for(scope["app"], error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)


def _booking(request: Request, body: bytes) -> BookingIn | None:
    """The request's `BookingIn`, or None for one FastAPI should answer (not JSON, or not what `BookingIn` takes)."""
    if request.headers.get("content-type", "").partition(";")[0].strip() != "application/json":
        return None
    try:
        return BookingIn.model_validate_json(body)
    except ValidationError:
        return None


def _handler_for(app: Any, error: Exception) -> Any:
    for kind in type(error).__mro__:
        if kind in app.exception_handlers:
            return app.exception_handlers[kind]
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for what comes after the body was read: the body once more, then whatever the client sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
