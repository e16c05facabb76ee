"""The one settings object. Everything configurable comes from the environment here and nowhere else."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.common import Channel

# Development keys. `Settings.check()` refuses them when QIHUANG_ENV=production.
_DEV_PII_KEY = "00112233445566778899aabbccddeeff"
_DEV_INDEX_KEY = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
_DEV_NOTIFY_SECRET = "sandbox-notify-secret"
_DEV_SIGNING_SECRET = "sandbox-signing-secret"
_DEV_LEDGER_KEY_FILE = ".qihuang/ledger-sm2.pem"
_DEV_PAYLOAD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


class CampusSettings(BaseModel):
    """A campus (院区) that takes payments under a merchant of its own and is reconciled on its own."""

    name: str
    # The payment channel's settings for this campus's merchant, overriding the hospital's (e.g. "wechatpay_mch_id",
    # "wechatpay_private_key_path", "alipay_app_id"); empty where it shares them.
    payment: dict[str, Any] = {}


class MerchantRule(BaseModel):
    """Which campus's merchant takes a bill: the first rule whose conditions all hold (one left out always holds)."""

    campus: str  # a code of `Settings.campuses`
    department: str | None = None  # the department of the bill's visit (departments.id)
    kind: str | None = Field(default=None, pattern="^(registration|prescription|exam)$")  # the bill's kind


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QIHUANG_", extra="ignore")

    env: str = "development"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/qihuang",
        validation_alias="DATABASE_URL",
    )
    temporal_address: str = Field(default="127.0.0.1:7233", validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    # Workflows and database steps poll this queue; calls to outside systems run on `<task_queue>-integrations`,
    # so a slow HIS or courier never starves booking or payment.
    task_queue: str = "qihuang"
    max_concurrent_activities: int = 50
    # Added to the worker process's nice value at start. Where the worker shares its CPUs with the API (one host, as
    # the dev stack runs), a positive value lets the API answer first at a release-time rush while the flows it
    # started catch up a moment later; on a host of its own it changes nothing.
    worker_nice: int = Field(default=0, ge=0, le=19)

    # SM4 key (hex, 16 bytes) for PII at rest and HMAC-SM3 key (hex) for blind indexes.
    pii_key: str = _DEV_PII_KEY
    blind_index_key: str = _DEV_INDEX_KEY
    # Shared secret the sandbox payment channel and courier sign their callbacks with.
    sandbox_notify_secret: str = _DEV_NOTIFY_SECRET
    # SM4 keys for Temporal payloads (core/payload_codec.py), id → 32 hex digits or base64, as JSON in
    # QIHUANG_PAYLOAD_KEYS. New payloads use `payload_key_id`; the other keys only open what they once sealed, so an
    # old key stays listed until no history within the namespace's retention was written with it.
    payload_keys: dict[str, str] = {"dev-1": _DEV_PAYLOAD_KEY}
    payload_key_id: str = "dev-1"
    # Pages of the Temporal UI allowed to call the codec endpoints (api/routers/temporal_codec.py), as a JSON list.
    temporal_ui_origins: list[str] = ["http://127.0.0.1:8233", "http://localhost:8233"]
    # Development only: the codec endpoints also answer callers on this machine without a token, because the dev UI
    # has no login to pass one. Refused in production.
    temporal_codec_open_loopback: bool = False

    # Absolute lifetime of a sign-in: its token is refused after this however busy it is.
    token_ttl_seconds: int = 8 * 3600

    # --- Sign-in security (9.3.1.2.2–9.3.1.2.5) ------------------------------------------------------------------
    # A token unused for this long is refused (9.3.1.2.4): staff sit at shared hospital desks, patients on their phones.
    session_idle_staff_s: int = Field(default=30 * 60, gt=0)
    session_idle_patient_s: int = Field(default=4 * 3600, gt=0)
    # Password changes, second-factor enrolment and permission changes need a sign-in at most this old.
    reauth_max_age_s: int = Field(default=5 * 60, gt=0)
    # `login_max_failures` failed sign-ins of one login name within `login_failure_window_s` lock it for
    # `login_lock_s`; counted in PostgreSQL, so every API process sees the same count.
    login_max_failures: int = Field(default=5, gt=0)
    login_failure_window_s: int = Field(default=15 * 60, gt=0)
    login_lock_s: int = Field(default=30 * 60, gt=0)
    # Public staff registration (POST /staff-applications, no sign-in): at most this many attempts per client address
    # per minute, counted with the integration gateway's limiter (api.gateway.limits); each costs a scrypt hash.
    staff_registration_per_minute: int = Field(default=20, gt=0)
    # Staff (doctors, pharmacists, admins, finance) must sign in with a second factor; one who has none yet gets a
    # token that can only enrol one.
    mfa_required_for_staff: bool = False
    # How long a sign-in may wait for its second factor, and an SMS code stays valid.
    mfa_challenge_ttl_s: int = Field(default=5 * 60, gt=0)

    # Business windows, in seconds. Hospitals configure these; dev shortens them so the demo can show them.
    registration_pay_window_s: int = 15 * 60
    # How long a booking's answer waits for its Visit flow to start. Usually the start takes milliseconds and the
    # answer follows it; when the Temporal server is slow (a release-time rush on a shared host) the answer goes out
    # once PostgreSQL has decided and the start completes in the background (`api.services.bookings.start_visit`).
    booking_start_wait_ms: int = Field(default=1000, ge=0)
    prescription_pay_window_s: int = 24 * 3600
    doctor_accept_window_s: int = 30 * 60
    review_sla_s: int = 30 * 60
    # How long a pharmacist's claim on a prescription in the review queue keeps other pharmacists off it.
    review_claim_ttl_s: int = Field(default=15 * 60, gt=0, le=24 * 3600)
    delivery_sla_s: int = 72 * 3600
    # Exam orders (检查/检验): the patient pays within `exam_pay_window_s`; a paid order is valid `exam_valid_days`
    # (exams not performed by then are refunded), and exams that need a time are booked up to `exam_booking_days`
    # ahead.
    exam_pay_window_s: int = Field(default=24 * 3600, gt=0)
    exam_valid_days: int = Field(default=30, gt=0)
    exam_booking_days: int = Field(default=14, gt=0)
    revisit_window_days: int = Field(default=180, gt=0)
    revisit_eligibility_days: int = Field(default=90, gt=0)
    pickup_code_attempts: int = 5
    # Routing a paid prescription to a pharmacy (8.3.4, 8.3.7.1). When the hospital's own pharmacy and a partner
    # pharmacy (configured under /admin/pharmacies) both can take it, `own` or `partner` goes first. The own
    # pharmacy delivers to addresses starting with one of `own_pharmacy_regions` (JSON list; empty: anywhere) and
    # decocts (代煎) when `own_pharmacy_decoction`.
    pharmacy_routing_prefer: str = Field(default="own", pattern="^(own|partner)$")
    own_pharmacy_regions: list[str] = []
    own_pharmacy_decoction: bool = True
    # 续方提醒: the patient is reminded this long before the prescribed days run out (counted from sign-off).
    refill_reminder_lead_s: int = Field(default=2 * 24 * 3600, ge=0)
    # An adverse reaction report no pharmacist has answered within this is escalated to the admins.
    adverse_reaction_response_sla_s: int = Field(default=2 * 3600, gt=0)
    # A patient's complaint (8.6.7 e) is due for an answer within `complaint_answer_within_s`; until then the admins
    # are reminded every `complaint_remind_every_s`. Past it the complaint is escalated to every admin and waits on.
    complaint_answer_within_s: int = Field(default=3 * 24 * 3600, gt=0)
    complaint_remind_every_s: int = Field(default=24 * 3600, gt=0)
    # 8.3.1.1: business hours (Beijing time, on these ISO weekdays, 1 = Monday) need a pharmacist signed in for duty.
    # The duty check runs every `pharmacist_duty_check_every_s` and alerts the admins once per gap that has lasted
    # `pharmacist_duty_grace_s` (a short hand-over between pharmacists raises none).
    pharmacist_duty_opens: time = time(8, 0)
    pharmacist_duty_closes: time = time(18, 0)
    pharmacist_duty_weekdays: list[int] = [1, 2, 3, 4, 5, 6, 7]
    pharmacist_duty_check_every_s: int = Field(default=5 * 60, gt=0)
    pharmacist_duty_grace_s: int = Field(default=10 * 60, ge=0)
    # After a doctor's leave (停诊) patients choose rebooking or a refund within this window, else they are refunded.
    leave_choice_window_s: int = Field(default=24 * 3600, gt=0)
    # 8.6.8: `no_show_limit` no-shows within `no_show_window_days` block booking for `no_show_block_days`.
    no_show_limit: int = 3
    no_show_window_days: int = 90
    no_show_block_days: int = 30
    # 8.6.1 c: fee standard (fen) per doctor title and service type, used when a schedule names no fee and the
    # doctor has no fee of their own for that service type. JSON in QIHUANG_FEE_STANDARDS_FEN.
    fee_standards_fen: dict[str, dict[str, int]] = {
        "主任医师": {"text": 5000, "phone": 8000, "video": 10000},
        "副主任医师": {"text": 3000, "phone": 5000, "video": 6000},
        "主治医师": {"text": 2000, "phone": 3000, "video": 4000},
        "医师": {"text": 1000, "phone": 1500, "video": 2000},
    }

    # Adapter choice per protocol: the name of an implementation registered under the `qihuang.adapters` entry points.
    adapter_his: str = "sandbox"
    adapter_payment: str = "sandbox"
    adapter_pharmacy: str = "sandbox"
    adapter_courier: str = "sandbox"
    adapter_notifier: str = "sandbox"
    adapter_realname: str = "sandbox"
    adapter_rtc: str = "sandbox"
    # Staff onboarding and institution registration (8.5.2–8.5.4): the medical-practitioner registry (国家卫健委 医师
    # 执业注册) and the provincial supervision platform (医疗服务与执业监管平台).
    adapter_practitioner: str = "sandbox"
    adapter_supervision: str = "sandbox"
    # An application that passed the checks is due for the admins' review within `staff_review_window_s`; the
    # reviewers are reminded `staff_review_reminders_s` (seconds, JSON list) before that deadline. Past it the
    # application is escalated to every admin and stays awaiting review: it is never decided by the clock.
    staff_review_window_s: int = Field(default=5 * 24 * 3600, gt=0)
    staff_review_reminders_s: list[int] = [2 * 24 * 3600, 24 * 3600]
    # Approved institutions are looked up on the supervision platform again this often (8.5.4.4), so a revoked or
    # expired licence suspends them without waiting for an admin.
    institution_reverify_every_s: int = Field(default=24 * 3600, gt=0)
    # Online revisits and prescriptions that changed are uploaded to the supervision platform this often (8.6.6).
    supervision_upload_every_s: int = Field(default=3600, gt=0)
    # Evaluations (8.6.7): how long after a visit ended its patient may evaluate it, whether a new evaluation is shown
    # publicly at once (else only once an admin publishes it), and how often a low rating not yet followed up is
    # brought up again to the staff who handle feedback.
    evaluation_window_days: int = Field(default=30, gt=0)
    evaluation_public_by_default: bool = True
    evaluation_remind_every_s: int = Field(default=24 * 3600, gt=0)
    # Optional systems, off when empty: a liveness and face-match provider checked during patients' real-name
    # verification (8.5.1.4; patients then send its token with their identity), and a consortium chain the evidence
    # ledger's signed tree heads are anchored on.
    adapter_liveness: str = ""
    adapter_ledger_anchor: str = ""
    # Where notices go besides the in-app inbox (8.2.1.1): "app" (push), "sms" (to recipients with a phone on
    # record), "wechat", "email" (to staff with an address on record, for the templates below); JSON list in
    # QIHUANG_NOTIFY_CHANNELS.
    notify_channels: list[Channel] = [Channel.APP, Channel.SMS, Channel.EMAIL]
    # The notices that go by e-mail too (template names, JSON list): the daily reconciliation result and finance's
    # reconciliation alerts (8.4.3.4), which finance keeps and forwards as mail.
    notify_email_templates: list[str] = [
        "reconciliation_balanced",
        "reconciliation_mismatch",
        "reconciliation_reminder",
        "reconciliation_unavailable",
        "reconciliation_failed",
        "reconciliation_bad_debt",
    ]
    # Sandbox behaviour: added latency and the share of calls that fail with a retryable error.
    sandbox_latency_ms: int = 0
    sandbox_failure_rate: float = 0.0

    # --- E-mail: notices by e-mail to staff (the daily reconciliation result to finance, 8.4.3.4) --------------------
    # "sandbox" records each e-mail instead of sending it; "smtp" sends through the mail server below; empty: none.
    adapter_mailer: str = "sandbox"
    # smtp: the server, how the connection is secured ("starttls" on the submission port 587, "ssl" for implicit TLS
    # on 465, "none" only for a relay on the same host or private network), and the account, if the server wants
    # AUTH (no username: no AUTH). The sender address is required; its domain also names the Message-IDs.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: str = Field(default="starttls", pattern="^(starttls|ssl|none)$")
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    # The sender's display name; empty: `hospital_name`.
    smtp_from_name: str = ""
    # PEM bundle the server's certificate must chain to, for a server with a private CA; empty: the system's CAs.
    smtp_ca_file: str = ""
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    # --- The hospital's EMR, a source of offline diagnoses for the revisit check (8.1.2) --------------------------------
    adapter_emr: str = "sandbox"
    # fhir: the FhirConfig of activities/adapters/emr/fhir.py as JSON (base_url, hospital_identifier_system, …).
    emr_fhir: dict[str, Any] = {}
    # Where the revisit check looks for the offline diagnosis: "his", "emr", "regional" or several joined by commas
    # (evidence merged); "both" means "his,emr". Uploads a doctor approved count whatever is set here.
    revisit_sources: str = Field(default="his", pattern="^(both|(his|emr|regional)(,(his|emr|regional))*)$")
    # --- The regional health-record platform (区域全民健康信息平台), the third source (8.1.2.2 c) ---------------------
    adapter_regional: str = "sandbox"
    # This hospital's institution code there (医疗机构代码): only its own diagnoses count for a revisit.
    hospital_org_code: str = "H110101000001"

    # --- 医保: the national medical insurance platform (国家医疗保障信息平台) ---------------------------------------------
    adapter_insurance: str = "sandbox"
    # nhsa: the NhsaConfig of activities/adapters/insurance/nhsa.py as JSON (base_url, fixmedins_code, paasid, …).
    insurance_nhsa: dict[str, Any] = {}

    # --- Electronic signatures of doctors and pharmacists (SM2) ---------------------------------------------------------
    adapter_signer: str = "sandbox"
    # sandbox: the secret each person's sandbox key is derived from.
    sandbox_signing_secret: str = _DEV_SIGNING_SECRET

    # --- Trusted timestamps (RFC 3161) for signatures and the evidence ledger ------------------------------------------
    adapter_tsa: str = "sandbox"
    # rfc3161: the TSA's URL, the PEM file of the certificate(s) its tokens must chain to, and optional basic auth.
    tsa_url: str = ""
    tsa_trust_anchors_file: str = ""
    tsa_hash_algorithm: str = Field(default="sm3", pattern="^(sm3|sha256)$")
    tsa_username: str = ""
    tsa_password: str = ""
    tsa_timeout_s: float = Field(default=10.0, gt=0)
    # sandbox: where its SM2 root and TSA keys are kept, so tokens issued before a restart still verify; empty keeps
    # them in memory for the life of the process.
    tsa_sandbox_key_dir: str = ""
    # The evidence ledger's SM2 key (PKCS#8 PEM), which signs its tree heads. The development default is created on
    # first use (owner-only); production must name its own key file, which is never created for it.
    ledger_signing_key_file: str = _DEV_LEDGER_KEY_FILE

    # --- WeChat Pay API v3 (QIHUANG_ADAPTER_PAYMENT=wechatpay) ------------------------------------------------------
    # The merchant's API private key (PEM) and its certificate serial number sign our requests. WeChat Pay's public key
    # (微信支付公钥, PEM) and its id `PUB_KEY_ID_…` verify its responses and callbacks; the APIv3 key (32 characters)
    # decrypts callbacks. An empty refund notify URL leaves the one configured on the merchant platform in force.
    wechatpay_mch_id: str = ""
    wechatpay_appid: str = ""
    wechatpay_merchant_serial_no: str = ""
    wechatpay_private_key_path: str = ""
    wechatpay_public_key_path: str = ""
    wechatpay_public_key_id: str = ""
    wechatpay_apiv3_key: str = ""
    wechatpay_notify_url: str = ""
    wechatpay_refund_notify_url: str = ""
    wechatpay_base_url: str = "https://api.mch.weixin.qq.com"
    # jsapi: JSAPI prepay when the payer's openid is known, Native (QR code) otherwise; native: always Native.
    wechatpay_pay_mode: str = Field(default="jsapi", pattern="^(jsapi|native)$")
    # Responses and callbacks signed further than this from our clock are refused (replay protection).
    wechatpay_replay_window_s: int = Field(default=300, gt=0)
    wechatpay_timeout_s: float = Field(default=10.0, gt=0)
    # --- end WeChat Pay ----------------------------------------------------------------------------------------------

    # --- Alipay, classic OpenAPI gateway, public-key mode, RSA2 (QIHUANG_ADAPTER_PAYMENT=alipay) ---------------------
    # The app's RSA private key (PEM, or the bare base64 Alipay's key tool saves) signs our requests; Alipay's public
    # key (支付宝公钥, not the app's) verifies its answers and notifies. Notifies must name this app_id and seller_id
    # (the merchant's 2088… PID). pay_product: precreate (当面付 QR code) or wap (手机网站支付 page URL).
    alipay_app_id: str = ""
    alipay_app_private_key_path: str = ""
    alipay_public_key_path: str = ""
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"
    alipay_notify_url: str = ""
    alipay_return_url: str = ""
    alipay_seller_id: str = ""
    alipay_pay_product: str = Field(default="precreate", pattern="^(precreate|wap)$")
    # Notifies whose notify_time is further than this from our clock are refused (replay protection).
    alipay_notify_window_s: int = Field(default=900, gt=0)
    alipay_timeout_s: float = Field(default=10.0, gt=0)
    # --- end Alipay -------------------------------------------------------------------------------------------------

    # --- Integration gateway (8.5.8): partner systems calling /api/v1/integration/ with SM2-signed requests -------
    # A request whose X-Timestamp is further than this from our clock is refused; its nonce is kept this long.
    gateway_timestamp_window_s: int = Field(default=300, gt=0)
    # Refused calls per application per minute (callers naming no known app share one count): the first
    # `gateway_audit_per_minute` are audited and logged, so an attack cannot flood the audit table, and reaching
    # `gateway_alert_threshold` notifies the admins once for that minute.
    gateway_audit_per_minute: int = Field(default=20, ge=0)
    gateway_alert_threshold: int = Field(default=10, gt=0)
    # Circuit breakers (api/resilience.py): consecutive failures of a dependency that open its breaker, how long it
    # stays open before one probe is let through, and how long a call may take before it counts as a failure.
    gateway_breaker_failures: int = Field(default=5, gt=0)
    gateway_breaker_reset_s: float = Field(default=30.0, gt=0)
    gateway_dependency_timeout_s: float = Field(default=5.0, gt=0)
    # GET /metrics wants `Authorization: Bearer <metrics_token>` when set; empty leaves it open, for a deployment that
    # keeps /metrics off the public load balancer.
    metrics_token: str = ""
    # Set (to an empty directory shared by the API processes of one host) when several worker processes serve the
    # API: each process then writes its metrics there and /metrics sums them (prometheus_client's multiprocess mode).
    prometheus_multiproc_dir: str = Field(default="", validation_alias="PROMETHEUS_MULTIPROC_DIR")
    # --- end integration gateway ----------------------------------------------------------------------------------

    # --- Reconciliation (对账, 8.4.3) ---------------------------------------------------------------------------------
    # Campuses reconciled each on its own (a Schedule per channel per campus), code → CampusSettings as JSON, e.g.
    # {"east": {"name": "东院区", "payment": {"wechatpay_mch_id": "1900000109"}}}. Empty: the hospital is reconciled
    # as one. Bills that name no campus belong to the first one listed.
    campuses: dict[str, CampusSettings] = {}
    # Differences still open where the hospital is short (bad debts), in fen across every channel and campus, above
    # which each day's reconciliation alerts these recipients (finance, and the admins who run the platform).
    reconciliation_bad_debt_alert_fen: int = Field(default=100_000, ge=0)
    reconciliation_bad_debt_alert_to: list[str] = ["role:finance", "role:admin"]
    # --- end reconciliation --------------------------------------------------------------------------------------

    # --- Bills and refunds (8.4.1, 8.4.2) -------------------------------------------------------------------------
    # Which campus's merchant takes a bill, by department and kind (JSON list of MerchantRule, first match wins);
    # a bill no rule matches goes to the first campus of `campuses`.
    payment_merchant_rules: list[MerchantRule] = []
    # E-invoices (医疗收费电子票据), issued once a bill is paid and reversed in red after a full refund.
    adapter_invoice: str = "sandbox"
    # When a refund reaches the patient, per payment channel, as patients are told (8.4.2); `insurance` is the 医保
    # part. Channels not listed are told `refund_arrival_default`.
    refund_arrival: dict[str, str] = {
        "sandbox": "即时到账",
        "wechatpay": "退回微信零钱的即时到账，退回银行卡的1-3个工作日到账",
        "alipay": "退回支付宝余额的即时到账，退回银行卡的1-3个工作日到账",
        "insurance": "经医保平台即时退回统筹基金和个人账户",
    }
    refund_arrival_default: str = "1-7个工作日到账"
    # Where links in notices lead (the patient app); empty: the API itself (`{api_base_url}/api/v1`).
    patient_app_url: str = ""
    # --- end bills and refunds ------------------------------------------------------------------------------------

    # How documents the hospital issues (medical records, invoices) name it.
    hospital_name: str = "岐黄中医互联网医院"
    # The diagnosis-and-treatment subjects (诊疗科目) on the practice licence (医疗机构执业许可证) of the physical
    # hospital this internet hospital relies on, code of 《医疗机构诊疗科目名录》 → name, as JSON. An internet
    # hospital may not practise beyond them (互联网诊疗管理办法), so every department names one: a department whose
    # subject is not listed here is refused by the admin endpoints and left out of the public catalogue.
    registered_subjects: dict[str, str] = {
        "50": "中医科",
        "50.01": "内科专业",
        "50.02": "外科专业",
        "50.03": "妇产科专业",
        "50.04": "儿科专业",
        "50.13": "针灸科专业",
        "50.14": "推拿科专业",
    }
    log_level: str = "INFO"
    api_base_url: str = "http://127.0.0.1:8000"

    @field_validator("campuses")
    @classmethod
    def _campus_codes(cls, campuses: dict[str, CampusSettings]) -> dict[str, CampusSettings]:
        # Codes go into workflow, schedule and run ids.
        for code in campuses:
            if not (0 < len(code) <= 16 and code.isascii() and all(c.isalnum() or c == "_" for c in code)):
                raise ValueError(f"campus code {code!r}: 1–16 letters, digits or _")
            if code != code.lower():
                raise ValueError(f"campus code {code!r}: lower case")
        return campuses

    @field_validator("registered_subjects")
    @classmethod
    def _subject_codes(cls, subjects: dict[str, str]) -> dict[str, str]:
        # Codes are stored in departments.subject_code.
        for code, name in subjects.items():
            if not 0 < len(code) <= 16 or not name:
                raise ValueError(f"registered subject {code!r}: a code of 1–16 characters and a name")
        return subjects

    @model_validator(mode="after")
    def _merchant_rules_name_campuses(self) -> Settings:
        unknown = {rule.campus for rule in self.payment_merchant_rules} - set(self.campuses)
        if unknown:
            raise ValueError(f"payment_merchant_rules name campuses not in campuses: {sorted(unknown)}")
        return self

    @property
    def links_base(self) -> str:
        return (self.patient_app_url or f"{self.api_base_url.rstrip('/')}/api/v1").rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def check(self) -> None:
        """Refuse to run production with the development keys and secrets."""
        if not self.is_production:
            return
        dev_values = {
            "QIHUANG_PII_KEY": (self.pii_key, _DEV_PII_KEY),
            "QIHUANG_BLIND_INDEX_KEY": (self.blind_index_key, _DEV_INDEX_KEY),
            "QIHUANG_SANDBOX_NOTIFY_SECRET": (self.sandbox_notify_secret, _DEV_NOTIFY_SECRET),
            "QIHUANG_SANDBOX_SIGNING_SECRET": (self.sandbox_signing_secret, _DEV_SIGNING_SECRET),
            "QIHUANG_LEDGER_SIGNING_KEY_FILE": (self.ledger_signing_key_file, _DEV_LEDGER_KEY_FILE),
        }
        unset = [name for name, (value, dev) in dev_values.items() if value == dev]
        if _DEV_PAYLOAD_KEY in self.payload_keys.values():
            unset.append("QIHUANG_PAYLOAD_KEYS")
        if self.temporal_codec_open_loopback:
            raise RuntimeError("QIHUANG_TEMPORAL_CODEC_OPEN_LOOPBACK is for development only")
        if unset:
            raise RuntimeError(f"production needs its own {', '.join(unset)}")

    @property
    def async_database_url(self) -> str:
        """SQLAlchemy URL for asyncpg."""
        return "postgresql+asyncpg://" + self._database_url_rest()

    @property
    def libpq_database_url(self) -> str:
        """The same database as a plain `postgresql://` URL, for asyncpg itself."""
        return "postgresql://" + self._database_url_rest()

    def _database_url_rest(self) -> str:
        url = self.database_url
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return url[len(prefix) :]
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url.split('://')[0]}://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
