"""The caller's own account. Agreements and the identity submission are plain writes: they have no lifecycle here
(verifying the identity does, and runs as a workflow started through `AppContext.on_identity_submitted`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.auth import ActorDep, PatientDep, RecentActorDep, check_role
from api.consents import consent_statuses, record_consent
from api.deps import CipherDep, ContextDep, SessionDep
from api.errors import Problem, problem_responses
from api.hospital_time import hospital_today
from api.identity import identity_columns, normalize_id_card, submission_digest
from api.profiles import patient_profile
from api.queries.patients import store_identity
from api.schemas.me import ConsentIn, ConsentsOut, EmailIn, EmailOut, IdentityAccepted, IdentityIn, MeOut
from api.services.contact import email_of, set_email
from models.common import Role

router = APIRouter(prefix="/me", tags=["me"])


@router.get("", response_model=MeOut, responses=problem_responses(401), summary="当前用户")
async def me(actor: ActorDep, session: SessionDep, cipher: CipherDep) -> MeOut:
    """Who is logged in; for patients also the masked identity, verification state and agreements; for staff the
    masked e-mail address notices are mailed to."""
    if actor.role is Role.PATIENT:
        profile = await patient_profile(session, cipher, actor.ref) if actor.ref else None
        return MeOut(user_id=actor.user_id, role=actor.role, display_name=actor.display_name, patient=profile)
    email = await email_of(session, cipher, actor.user_id)
    return MeOut(user_id=actor.user_id, role=actor.role, display_name=actor.display_name, email_masked=email)


@router.put(
    "/email",
    response_model=EmailOut,
    responses=problem_responses(401, 403, 422),
    summary="设置接收通知的电子邮件地址",
)
async def put_email(
    body: EmailIn, request: Request, actor: RecentActorDep, session: SessionDep, cipher: CipherDep
) -> EmailOut:
    """Staff set (or clear, with null) the address notices sent by e-mail reach them at, such as finance's daily
    reconciliation result. Needs a recent sign-in (401 `REAUTH_REQUIRED`), since it decides where those go;
    422 `INVALID_EMAIL`. Patients are reached in the app and by SMS (403)."""
    check_role(actor, Role.DOCTOR, Role.PHARMACIST, Role.ADMIN, Role.FINANCE)
    masked = await set_email(session, cipher, actor, actor.user_id, body.email, request)
    return EmailOut(user_id=actor.user_id, email_masked=masked)


@router.post(
    "/consents",
    response_model=ConsentsOut,
    status_code=201,
    responses={200: {"description": "此版本此前已同意，未重复记录"}, **problem_responses(401, 403, 409, 422)},
    summary="同意协议",
)
async def accept_consent(
    body: ConsentIn, actor: PatientDep, session: SessionDep, request: Request, response: Response
) -> ConsentsOut:
    """Record that the patient accepted the current version of a document (with the client's IP address)."""
    assert actor.ref is not None
    client_ip = request.client.host if request.client else None
    if not await record_consent(session, actor.ref, body.document, body.version, client_ip):
        response.status_code = 200
    consents = await consent_statuses(session, actor.ref)
    return ConsentsOut(consents=consents, complete=all(consent.accepted for consent in consents))


@router.put(
    "/identity",
    response_model=IdentityAccepted,
    status_code=202,
    responses=problem_responses(401, 403, 422),
    summary="提交实名信息",
)
async def submit_identity(
    body: IdentityIn, actor: PatientDep, session: SessionDep, ctx: ContextDep
) -> IdentityAccepted:
    """Store the identity encrypted and start its verification; `GET /me` shows the outcome.

    422 `INVALID_ID_CARD` when the ID number is not a valid 18-character resident ID (GB 11643 check character).
    Where the hospital checks faces too (8.5.1.4), `liveness_token` from the liveness SDK is required (422
    `LIVENESS_REQUIRED`) and the verification also needs the live face to match the ID card's holder.
    """
    assert actor.ref is not None
    liveness = ctx.adapters.liveness is not None
    if liveness and body.liveness_token is None:
        raise Problem(
            422,
            "LIVENESS_REQUIRED",
            "请先完成活体检测",
            "实名认证须同时完成活体检测与人脸比对，请在应用中完成检测后再提交。",
            errors=[{"field": "body.liveness_token", "message": "缺少活体检测凭证", "type": "missing"}],
        )
    id_card = normalize_id_card(body.id_card_no, hospital_today())
    if id_card is None:
        raise Problem(
            422,
            "INVALID_ID_CARD",
            "身份证号码无效",
            "请填写 18 位居民身份证号码，并核对最后一位校验码。",
            errors=[{"field": "body.id_card_no", "message": "身份证号码无效", "type": "id_card"}],
        )
    columns = identity_columns(ctx.cipher, name=body.name, id_card=id_card, phone=body.phone, address=body.address)
    submission = submission_digest(ctx.cipher, body.name, id_card, body.phone)
    await store_identity(session, actor.ref, columns=columns, submission=submission)
    if ctx.on_identity_submitted is not None:
        if liveness:
            await ctx.on_identity_submitted(actor.ref, submission, body.liveness_token)
        else:
            await ctx.on_identity_submitted(actor.ref, submission)
    return IdentityAccepted()
