"""The FastAPI application. `uvicorn api.main:app` serves it; tests call `create_app(...)` with their own pieces.

Nothing connects at import time: the database engine and the Temporal client are made in the lifespan.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from temporalio.client import Client

from activities.adapters.registry import load_adapters
from api import metrics
from api.context import AppContext
from api.errors import install_error_handlers
from api.gateway.middleware import IntegrationGateway
from api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from api.openapi import install_openapi
from api.routers import (
    admin_access,
    admin_audit,
    admin_departments,
    admin_doctors,
    admin_institutions,
    admin_staff,
    admin_supervision,
    aftercare,
    auth,
    bills,
    booking_blocks,
    bookings,
    callbacks,
    catalog,
    catalogue,
    complaints,
    consent_documents,
    consult,
    consultations,
    doctor_day,
    evaluations,
    exams,
    health,
    integration,
    integration_apps,
    me,
    mfa,
    notifications,
    pharmacies,
    pharmacists,
    prescriptions,
    reconciliation,
    records,
    refunds,
    renewals,
    revisit_uploads,
    revisits,
    sandbox,
    schedule_changes,
    schedules,
    staff_applications,
    statistics,
    temporal_codec,
    visits,
)
from api.services import bookings as bookings_service
from api.services.identity import identity_verifier
from core.crypto.sm import FieldCipher
from core.db import fill_pool, make_engine, make_pool, make_sessionmaker
from core.logging import configure_logging
from core.settings import Settings, get_settings
from core.temporal import connect

API_PREFIX = "/api/v1"
# Request bodies bigger than this are refused with 413; no endpoint takes more than a small JSON document.
MAX_BODY_BYTES = 1024 * 1024

_DESCRIPTION = """\
岐黄中医互联网医院的 HTTP API：挂号、复诊、处方、支付、配送等业务均以持久化工作流运行。

- 登录：`POST /api/v1/auth/token`（OAuth2 密码模式）获取不透明令牌，之后以 `Authorization: Bearer <令牌>` 调用。
- 错误：统一为 RFC 9457 `application/problem+json`，`code` 为稳定的机器可读错误码，`title`/`detail` 为中文说明。
- 幂等：创建或支付类 POST 接受 `Idempotency-Key` 请求头，重复请求返回首次结果并带 `Idempotent-Replayed: true`。
- 时间均带时区（UTC 存储），日期参数按北京时间（Asia/Shanghai）理解；金额单位为分。
- 每个响应带 `X-Request-ID`，反馈问题时请提供。
"""

# In matching order: booking first, as it takes nearly every request at a release time (see `api.routers.bookings`).
_ROUTERS = (
    bookings.router,
    health.router,
    auth.router,
    mfa.router,
    me.router,
    consent_documents.router,
    catalogue.router,
    catalog.router,
    schedules.router,
    admin_doctors.router,
    admin_departments.router,
    admin_access.router,
    staff_applications.router,
    admin_staff.router,
    admin_institutions.router,
    admin_supervision.router,
    admin_audit.router,
    statistics.router,
    notifications.router,
    revisits.router,
    revisit_uploads.router,
    visits.router,
    doctor_day.router,
    consultations.router,
    records.router,
    schedule_changes.router,
    booking_blocks.router,
    prescriptions.router,
    renewals.router,
    pharmacists.router,
    pharmacies.router,
    aftercare.router,
    evaluations.router,
    complaints.router,
    exams.router,
    bills.router,
    refunds.router,
    reconciliation.router,
    callbacks.router,
    temporal_codec.router,
    consult.router,
    integration_apps.router,
    integration.router,
)


def create_app(settings: Settings | None = None, *, temporal_client: Client | None = None) -> FastAPI:
    """Build the app; `temporal_client` replaces the connection the lifespan would otherwise open."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or get_settings()
        if settings is None:
            configure_logging(current.log_level)  # a served app; tests keep their own logging
        current.check()
        engine = make_engine(current)
        pg = await make_pool(current, prepare=partial(bookings_service.prepare_connection, settings=current))
        await fill_pool(pg)
        try:
            sessions = make_sessionmaker(engine)
            temporal = temporal_client or await connect(current)
            adapters = load_adapters(sessions, current)
            app.state.ctx = AppContext(
                settings=current,
                sessions=sessions,
                pg=pg,
                temporal=temporal,
                cipher=FieldCipher(current.pii_key, current.blind_index_key),
                adapters=adapters,
                on_identity_submitted=identity_verifier(temporal, current.task_queue),
            )
            if settings is None:
                # A served app: what is alive now (the app, its routes and models, the libraries) lives as long as
                # the process. Kept out of the collector's full passes, which otherwise walk all of it (~0.3 M
                # objects, 150 ms on an idle core) and stall every request under way, often at a rush.
                gc.freeze()
            yield
            await bookings_service.finish_starts(timeout_s=10)
            await app.state.ctx.refusals.flush()
        finally:
            await pg.close()
            await engine.dispose()

    app = FastAPI(
        title="岐黄 Qihuang API",
        description=_DESCRIPTION,
        version="1.0.0",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    # The last added runs first: the request id and access log wrap everything, including a 413. The gateway checks
    # integration calls before routing, on a body already held to the size limit; innermost, booking's lean path.
    app.add_middleware(bookings.BookingFastPath, path=API_PREFIX + "/bookings")
    app.add_middleware(IntegrationGateway)
    larger = consult.LARGE_BODIES + revisit_uploads.LARGE_BODIES + staff_applications.LARGE_BODIES
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=MAX_BODY_BYTES, larger=larger)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    install_openapi(app)
    for router in _ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    # The simulators exist only where a sandbox payment channel, 医保 platform or courier is in use (dev, tests, demo).
    configured = settings or get_settings()
    sandboxes = (configured.adapter_payment, configured.adapter_insurance, configured.adapter_courier)
    if "sandbox" in sandboxes:
        app.include_router(sandbox.router, prefix=API_PREFIX)
    return app


app = create_app()
