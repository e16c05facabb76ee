"""医保 at payment: the credential a patient presented for a bill, and what the platform settled for it.

The settlement rows are the platform's own book of 医保 settlements, which the daily 3201/3202 check compares with
the 医保 platform's (activities/insurance_settlements.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.tables._types import Timestamp


class InsuranceCredential(SQLModel, table=True):
    """How a patient pays one bill with 医保 (PII: SM4 at rest).

    In-hospital path: the 医保电子凭证 token they presented (`cert_no_enc`). Mobile path (`mobile`): no token; the
    patient's own verified ID card is the credential of 1101/2201, and the payment authorization the platform reported
    (`pay_auth_no_enc`, `authorized_at`) is the consent 6201/6202/6203 carry.
    """

    __tablename__ = "insurance_credentials"

    bill_id: str = Field(primary_key=True, max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    cert_type: str = Field(max_length=2)  # mdtrt_cert_type: 01 电子凭证, 02 身份证 (mobile path)
    cert_no_enc: str | None = None
    # acct_used_flag: the patient allows paying their part from the personal account first.
    use_account: bool = True
    mobile: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    pay_auth_no_enc: str | None = None
    authorized_at: datetime | None = Timestamp(nullable=True)
    created_at: datetime = Timestamp(default_now=True)


class InsuranceSettlement(SQLModel, table=True):
    """One bill's 医保 visit and settlement at the platform.

    `status`: registered (2201/2204 done, not settled), settled (2207), unknown (2207 sent, no usable answer: reverse
    it with 2601 before settling again), cancelled (2208), released (never settled; fees and visit withdrawn).

    Mobile path (`mobile`): registered means the order is uploaded (6201: `pay_ord_id`, `pay_token`, our
    `med_org_ord`), settled that 6202 (or 6301 after it) said so, unknown that a 6202 went unanswered (6301 tells),
    cancelled that 6203 gave it back; the order id stands as its `setl_id`. After a partial refund beyond the self-pay
    part the row holds the settlement of what remains.
    """

    __tablename__ = "insurance_settlements"

    bill_id: str = Field(primary_key=True, max_length=80)
    patient_id: str = Field(foreign_key="patients.id", index=True)
    psn_no: str = Field(max_length=40)
    insutype: str = Field(max_length=6)
    insuplc_admdvs: str = Field(max_length=6)
    mdtrt_id: str = Field(max_length=40)
    ipt_otp_no: str = Field(max_length=80)
    chrg_bchno: str = Field(max_length=40)
    status: str = Field(max_length=16, index=True)
    attempt: int = 0
    msgid: str | None = Field(default=None, max_length=40)
    setl_id: str | None = Field(default=None, max_length=40, index=True)
    total_fen: int = Field(default=0, ge=0)
    fund_fen: int = Field(default=0, ge=0)
    account_fen: int = Field(default=0, ge=0)
    cash_fen: int = Field(default=0, ge=0)
    clr_optins: str | None = Field(default=None, max_length=6)
    clr_type: str | None = Field(default=None, max_length=6)
    settled_at: datetime | None = Timestamp(nullable=True, index=True)
    cancelled_at: datetime | None = Timestamp(nullable=True)
    cancel_setl_id: str | None = Field(default=None, max_length=40)
    mobile: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    med_org_ord: str | None = Field(default=None, max_length=40)
    pay_ord_id: str | None = Field(default=None, max_length=40, index=True)
    pay_token: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Timestamp(default_now=True)
