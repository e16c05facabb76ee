"""Notices: a row in the user's in-app inbox plus a message through the notifier (SMS/push), each exactly once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.notifier import Notifier
from core.crypto.sm import FieldCipher
from models.duty import ON_DUTY_PHARMACISTS
from models.notify import Notice
from models.tables import Doctor, Notification, Patient, Pharmacist, PharmacistDuty, User

# zh-CN texts per template. Params fill the `{name}` fields.
TEMPLATES: dict[str, tuple[str, str]] = {
    "bill_opened": ("待支付订单", "您有一笔{what}待支付，金额{amount}元，请在{deadline}前完成支付。"),
    "bill_paid": ("支付成功", "{what}已支付成功，金额{amount}元。详情见订单 {bill_id}。"),
    "bill_closed": ("订单已关闭", "{what}超时未支付，订单已自动关闭。"),
    "refund_started": ("退款处理中", "您的退款{amount}元已提交，原路退回，预计{eta}到账。"),
    "refund_done": ("退款成功", "您的退款{amount}元已原路退回。"),
    "visit_booked": ("预约成功", "您已预约{doctor}医生 {time} 的在线复诊，挂号序号 {queue_no}。"),
    "visit_assigned": ("新的复诊订单", "患者已挂号您 {time} 的在线复诊，请及时接诊。"),
    "visit_reminder": ("复诊即将开始", "您预约的在线复诊将于 {time} 开始，请准时进入诊室。"),
    "visit_accepted": ("医生已接诊", "医生已接诊，请进入诊室与医生交流。"),
    "visit_aborted": ("复诊已中止", "医生中止了本次复诊：{reason}。{advice}挂号费将原路退回。"),
    "visit_cancelled": ("预约已取消", "您的预约已取消：{reason}。"),
    "visit_checked_in": ("患者已报到", "您 {time} 的在线复诊患者已报到，请及时接诊。"),
    "visit_no_show": (
        "爽约提醒",
        "您预约的 {time} 在线复诊直到就诊时段结束仍未报到，已记为爽约。按医院规定，爽约不退挂号费；"
        "多次爽约将暂停预约资格。",
    ),
    "visit_substituted": (
        "医生替诊",
        "因{doctor}医生临时调班（{reason}），您 {time} 的在线复诊改由{substitute}医生接诊。"
        "如不接受，可在医生接诊前取消预约，挂号费全额退回。",
    ),
    "visit_handed_over": ("替诊安排", "您 {time} 的在线复诊已改由{substitute}医生替诊。"),
    "visit_leave_offer": (
        "医生停诊",
        "因{doctor}医生停诊（{reason}），您 {time} 的在线复诊无法进行。请在 {deadline} 前选择：改约同病种的其他号源"
        "（挂号费不高于{amount}元，低于的差额退回），或全额退款{amount}元。逾期未选择将自动全额退款。",
    ),
    "visit_leave_refunded": (
        "停诊退款",
        "因{doctor}医生停诊，您 {time} 的预约已取消（{how}），挂号费{amount}元原路退回。",
    ),
    "visit_rebooked": ("改约成功", "您已改约至{doctor}医生 {time} 的在线复诊，挂号序号 {queue_no}。{difference}"),
    "schedule_substitute": (
        "替诊安排",
        "您将替{doctor}医生出诊（{time} 开始），该时段已预约的 {count} 位患者由您接诊。",
    ),
    "schedule_change_done": (
        "排班调整已处理",
        "您 {time} 的出诊{what}已处理完毕：涉及患者 {count} 位，其中改约 {rebooked} 位、退款 {refunded} 位、"
        "替诊 {substituted} 位、取消未支付预约 {cancelled} 位。",
    ),
    "rx_to_review": ("待审处方", "有新的处方 {prescription_id} 等待审核。"),
    "rx_to_review_forced": (
        "待审处方（医生坚持原方）",
        "处方 {prescription_id} 曾被药师退回（{flag}），医生未作修改并再次签名，理由：{justification}。"
        "该处方将按强制生效特别记录，请审核。",
    ),
    "rx_review_overdue": ("审方超时", "处方 {prescription_id} 已超过审方时限仍未审核。"),
    "rx_returned": ("处方被退回", "处方 {prescription_id} 被药师退回：{reason}。请修改后重新提交。"),
    "rx_approved": ("处方已审核", "您的处方已通过药师审核，请确认取药方式并支付。"),
    "rx_paid": ("用药提醒", "处方已支付。用法：{usage}。如有不适请及时联系医生。"),
    "rx_void": ("处方已作废", "处方 {prescription_id} 已作废：{reason}。"),
    "pickup_code": ("提货码", "您的处方药品提货码为 {code}，签收时请出示，请勿告知他人。"),
    "shipped": ("药品已发货", "您的药品已发出，运单号 {waybill_no}。"),
    "delivered": ("药品已送达", "您的药品已送达，请凭提货码签收。"),
    "signed": ("签收完成", "处方 {prescription_id} 的药品已签收。"),
    "pharmacist_duty_gap": (
        "无药师在岗",
        "自 {since} 起没有药师签到在岗（审方时间 {hours}），在线处方无法及时审核，请尽快安排药师签到。",
    ),
    "identity_verified": ("实名认证通过", "您的实名认证已通过。"),
    "identity_rejected": ("实名认证未通过", "实名认证未通过：{reason}。"),
    "reconciliation_mismatch": (
        "对账差错待处理",
        "{channel} {date} 对账发现差错 {count} 笔（长款 {channel_only}、短款 {platform_only}、金额不符 {amount_mismatch}、"
        "状态不符 {status_mismatch}）。渠道收款 {channel_paid} 元、退款 {channel_refunded} 元；平台收款 {platform_paid} 元、"
        "退款 {platform_refunded} 元。请在对账管理中逐笔处理（批次 {run_id}）。",
    ),
    "reconciliation_reminder": (
        "差错账待处理",
        "{channel} {date} 对账尚有 {count} 笔差错未处理（批次 {run_id}），请尽快处理。",
    ),
    "reconciliation_unavailable": (
        "对账单未能取得",
        "{channel} {date} 的对账单在 {hours} 小时内仍未取得，已停止自动重试。请核实后在对账管理中重新发起对账（批次 {run_id}）。",
    ),
    "reconciliation_failed": (
        "对账未能完成",
        "{channel} {date} 对账未能完成：{reason}。请核实后在对账管理中重新发起对账（批次 {run_id}）。",
    ),
    "gateway_illegal_access": (
        "接口非法访问告警",
        "接入应用 {app} 自 {time} 起一分钟内被网关拒绝的调用已达 {count} 次（最近一次：{code}）。"
        "请核查其密钥与来源，必要时在接入应用管理中停用该应用。",
    ),
}


def render(template: str, params: dict[str, str]) -> tuple[str, str]:
    title, body = TEMPLATES[template]
    return title, body.format_map(_Defaulting(params))


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return ""


class NoticeActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cipher: FieldCipher, notifier: Notifier) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._notifier = notifier

    async def _recipients(self, session: AsyncSession, user_ref: str) -> list[tuple[str, str | None]]:
        """(user id, phone) for `patient:<id>`, `doctor:<id>`, `pharmacist:<id>`, `role:<role>`, or the pharmacists
        signed in for duty now (`duty:pharmacist`)."""
        kind, _, ref = user_ref.partition(":")
        if kind == "patient":
            row = (
                await session.execute(
                    select(col(Patient.user_id), col(Patient.phone_enc)).where(col(Patient.id) == ref)
                )
            ).first()
            return [(row.user_id, self._cipher.decrypt("phone", row.phone_enc))] if row else []
        if kind in ("doctor", "pharmacist"):
            table = Doctor if kind == "doctor" else Pharmacist
            user_id = (await session.execute(select(col(table.user_id)).where(col(table.id) == ref))).scalar()
            return [(user_id, None)] if user_id else []
        if kind == "role":
            users = (
                await session.execute(select(col(User.id)).where(col(User.role) == ref, col(User.disabled).is_(False)))
            ).scalars()
            return [(user_id, None) for user_id in users]
        if user_ref == ON_DUTY_PHARMACISTS:
            on_duty = (
                await session.execute(
                    select(col(Pharmacist.user_id))
                    .join(PharmacistDuty, col(PharmacistDuty.pharmacist_id) == col(Pharmacist.id))
                    .where(col(PharmacistDuty.ended_at).is_(None))
                )
            ).scalars()
            return [(user_id, None) for user_id in on_duty]
        raise ValueError(f"unknown recipient {user_ref!r}")

    @activity.defn
    async def send_notice(self, notice: Notice) -> int:
        """Write the inbox rows and send each message once; returns how many recipients were reached."""
        title, body = render(notice.template, notice.params)
        async with self._sessions() as session:
            recipients = await self._recipients(session, notice.user_ref)
            for user_id, _ in recipients:
                await session.execute(
                    insert(Notification)
                    .values(
                        key=f"{notice.key}:{user_id}",
                        user_id=user_id,
                        template=notice.template,
                        title=title,
                        body=body,
                        params=notice.params,
                    )
                    .on_conflict_do_nothing(index_elements=["key"])
                )
            await session.commit()
        for user_id, phone in recipients:
            # The notifier dedupes on the key, so a retry after a partial send does not text anyone twice.
            await self._notifier.send(
                idempotency_key=f"{notice.key}:{user_id}", phone=phone, user_id=user_id, title=title, body=body
            )
        return len(recipients)
