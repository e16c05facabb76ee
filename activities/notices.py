"""Notices: a row in the user's in-app inbox (what the app and the web pages show) plus a message through the notifier
on every configured channel (8.2.1.1: app push, SMS, WeChat), and an e-mail through the mailer for the notices the
settings send by e-mail (8.4.3.4: finance's daily reconciliation result), each exactly once."""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from typing import NamedTuple

import structlog
from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from temporalio import activity

from activities.adapters.errors import AdapterRefusal
from activities.adapters.mailer import Mailer
from activities.adapters.notifier import Notifier
from core.crypto.sm import FieldCipher
from models.common import Channel
from models.duty import ON_DUTY_PHARMACISTS
from models.notify import Notice
from models.tables import (
    Doctor,
    MfaFactor,
    Notification,
    Patient,
    Pharmacist,
    PharmacistDuty,
    RolePermission,
    StaffApplication,
    User,
    UserPermission,
)

# zh-CN texts per template. Params fill the `{name}` fields.
TEMPLATES: dict[str, tuple[str, str]] = {
    "bill_opened": ("待支付订单", "您有一笔{what}待支付，金额{amount}元{split}，请在{deadline}前完成支付。"),
    "bill_paid": ("支付成功", "{what}已支付成功，金额{amount}元{split}。订单 {bill_id}，查看详情：{link}"),
    "bill_closed": ("订单已关闭", "{what}超时未支付，订单已自动关闭。"),
    "refund_started": ("退款处理中", "您的退款{amount}元已提交，将原路退回：{eta}。"),
    "refund_done": ("退款成功", "您的退款{amount}元已原路退回。"),
    "refund_failed": ("退款未成功", "您的退款{amount}元未能完成：{reason}。医院财务将尽快处理，如有疑问请联系客服。"),
    "refund_failed_finance": ("退款失败待处理", "退款 {refund_id}（{amount}元）未能完成：{reason}。请核实后处理。"),
    "refund_rejected": ("退款申请未通过", "您的退款申请未通过：{reason}。"),
    "refund_requested": (
        "退款申请待审核",
        "患者申请退回处方 {prescription_id} 的药费（{reason}），药品尚未出库，请审核。",
    ),
    "refund_request_rejected": ("退款申请未通过", "医院未同意您对处方 {prescription_id} 的退款申请：{reason}。"),
    "special_refund_opened": (
        "特殊退款待协商",
        "订单 {bill_id} 的药品已出库，患者申请退款（{reason}）。请与供药方、物流方协商并记录各方意见后办结。",
    ),
    "exam_ordered": (
        "检查待缴费",
        "医生为您开具了检查：{names}，合计{amount}元。请在{deadline}前在检查单中缴费，缴费后按提示预约检查日期。",
    ),
    "exam_paid": (
        "检查已缴费",
        "您已缴纳检查费用：{names}。{booking}请在{valid_until}前完成检查，逾期未检查将自动退费。",
    ),
    "exam_booked": ("检查预约成功", "您已预约 {day} 的{name}，检查地点：{where}。{preparation}"),
    "exam_closed": ("检查单已关闭", "您的检查单（{names}）已关闭：{reason}。"),
    "exam_cancelled_by_hospital": (
        "检查已取消",
        "医院取消了您的检查：{names}（{reason}），检查费{amount}元将原路退回。",
    ),
    "exam_expired": ("检查已过期", "您的检查（{names}）超过有效期仍未执行，检查费{amount}元将原路退回。"),
    "insurance_not_used": ("医保结算未成功", "本单未能使用医保结算（{reason}），将按自费支付。"),
    "invoice_issued": ("电子票据已开具", "您的电子票据已开具：票据号码 {number}，金额{amount}元。查看：{link}"),
    "invoice_reversed": (
        "电子票据已冲红",
        "因全额退款，您的电子票据 {number} 已冲红（红字票据号码 {red}）。查看：{link}",
    ),
    "invoice_failed": ("电子票据开具失败", "订单 {bill_id} 的电子票据未能开具或冲红：{reason}。请在票据平台手工处理。"),
    "visit_booked": ("预约成功", "您已预约{doctor}医生 {time} 的在线复诊，挂号序号 {queue_no}。"),
    "visit_assigned": ("新的复诊订单", "患者已挂号您 {time} 的在线复诊，请及时接诊。"),
    "visit_reminder": ("复诊即将开始", "您预约的在线复诊将于 {time} 开始，请准时进入诊室。"),
    "visit_accepted": ("医生已接诊", "医生已接诊，请进入诊室与医生交流。"),
    "visit_aborted": ("复诊已中止", "医生中止了本次复诊：{reason}。{advice}挂号费将原路退回。"),
    "visit_cancelled": ("预约已取消", "您的预约已取消：{reason}。"),
    "visit_checked_in": ("患者已报到", "您 {time} 的在线复诊患者已报到，请及时接诊。"),
    "consult_invited": (
        "会诊邀请",
        "您受邀参加 {time} 的一次在线复诊会诊（{reason}）。请进入诊室查看患者资料，出具会诊意见，必要时可开具处方。",
    ),
    "consult_opinion": ("会诊意见已出具", "会诊医生已签署对您 {time} 在线复诊患者的会诊意见，请在诊室查看。"),
    "revisit_upload_approved": ("复诊资料审核通过", "您上传的就诊资料已审核通过，现可预约该病种的在线复诊。"),
    "revisit_upload_rejected": (
        "复诊资料未通过审核",
        "您上传的就诊资料未通过审核：{reason}。可重新上传清晰完整的资料。",
    ),
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
    "rx_routed": (
        "处方已派送药房",
        "您的处方已派送至{pharmacy}调剂（{reason}）。详细煎服方法与注意事项请在处方的用药指导中查看。",
    ),
    "refill_reminder": (
        "续方提醒",
        "您的处方 {prescription_id} 预计于 {ends} 服完。如需继续治疗，请预约{doctor}医生的{disease}复诊，"
        "医生可在复诊中为您续方。",
    ),
    "adverse_reaction_reported": (
        "用药不良反应报告",
        "患者报告了处方 {prescription_id} 的用药不良反应（{severity}，报告 {report_id}），请尽快查看并答复。",
    ),
    "adverse_reaction_received": (
        "已收到不良反应报告",
        "已收到您关于处方 {prescription_id} 的不良反应报告，药师将尽快答复。",
    ),
    "adverse_reaction_received_severe": (
        "已收到不良反应报告",
        "已收到您关于处方 {prescription_id} 的不良反应报告。症状严重时请立即停药，并尽快到医院就诊或拨打120。",
    ),
    "adverse_reaction_overdue": (
        "不良反应报告待答复",
        "处方 {prescription_id} 的不良反应报告（{severity}，报告 {report_id}）超过答复时限仍未答复。",
    ),
    "adverse_reaction_answered": ("药师答复", "关于处方 {prescription_id} 的不良反应：{action}。{advice}"),
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
    "onboarding_approved": (
        "资质审核通过",
        "您的{role}注册资质审核已通过，账号已开通。请重新登录{role}端开始使用。",
    ),
    "onboarding_rejected": (
        "资质审核未通过",
        "您的{role}注册资质审核未通过：{reason}。您可登录后补充或更正材料，再次提交审核。",
    ),
    "onboarding_review_reminder": (
        "资质审核待处理",
        "{role}注册申请 {staff_id} 已通过自动核验，等待审核，审核时限为 {due}，请及时审核。",
    ),
    "onboarding_review_overdue": (
        "资质审核已超时",
        "{role}注册申请 {staff_id} 已超过审核时限（{due}）仍未审核，现提交督办，请尽快审核。申请仍保持待审核状态。",
    ),
    "institution_registered": (
        "监管平台登记结果",
        "机构 {institution} 在监管平台的登记{result}（受理号 {ref}）。{detail}",
    ),
    "institution_suspended": (
        "机构核验未通过，已暂停诊疗服务",
        "机构 {name}（编号 {code}）经监管平台重新核验未能确认：{detail}。已暂停本院互联网诊疗服务（不再接受新的预约挂号，"
        "已有预约不受影响）。请核实执业许可状态，确认恢复后在机构登记管理中重新核验。",
    ),
    "institution_reinstated": (
        "机构核验通过，已恢复诊疗服务",
        "机构 {name}（编号 {code}）经监管平台重新核验确认有效，已恢复本院互联网诊疗服务。",
    ),
    "evaluation_low": (
        "收到差评，请及时处理",
        "患者对就诊 {visit_id}（{doctor}）的评价为医生 {doctor_rating} 星、科室 {department_rating} 星、医院 {hospital_rating} 星："
        "{comment}。请在服务评价管理中跟进处理。",
    ),
    "evaluation_reminder": (
        "差评待处理提醒",
        "就诊 {visit_id}（{doctor}）的差评尚未处理，请在服务评价管理中跟进并记录处理情况。",
    ),
    "complaint_received": (
        "收到患者投诉",
        "投诉 {complaint_id}（{category}，关于{subject}）：{text}。请在 {due} 前处理并答复患者。",
    ),
    "complaint_reminder": (
        "投诉待处理提醒",
        "投诉 {complaint_id} 尚未答复，答复时限为 {due}，请尽快处理。",
    ),
    "complaint_overdue": (
        "投诉已超过答复时限",
        "投诉 {complaint_id} 已超过答复时限（{due}）仍未答复，现提交督办，请尽快处理。",
    ),
    "complaint_answered": (
        "您的投诉已处理",
        "您关于{subject}的投诉（{complaint_id}）已处理：{response}",
    ),
    "catalog_change_proposed": (
        "药品目录变更待审核",
        "药品目录变更 {change_id}：{kind}{herb}（{summary}），请审核后发布。",
    ),
    "catalog_change_decided": (
        "药品目录变更审核结果",
        "您提交的药品目录变更 {change_id}（{kind}{herb}）{result}。{note}",
    ),
    "supervision_rejected": (
        "监管数据上传有记录被拒绝",
        "{day} 的{kind}已上传：监管平台接收 {accepted} 条，拒绝 {rejected} 条。请在监管数据上传记录中查看拒绝原因，"
        "更正后重新上传该日数据。",
    ),
    "reconciliation_balanced": (
        "对账平衡",
        "{channel} {date} 对账平衡：{matched} 笔收款、退款双方一致。渠道收款 {channel_paid} 元、退款 {channel_refunded} 元；"
        "平台收款 {platform_paid} 元、退款 {platform_refunded} 元（批次 {run_id}）。",
    ),
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
    "reconciliation_bad_debt": (
        "坏账告警",
        "截至 {date} 对账，尚未处理的短款（坏账）共 {count} 笔、{amount} 元，已超过告警阈值 {threshold} 元。"
        "请财务主管尽快核实追收或按规定核销，技术人员排查是否有系统性差错。",
    ),
    "gateway_illegal_access": (
        "接口非法访问告警",
        "接入应用 {app} 自 {time} 起一分钟内被网关拒绝的调用已达 {count} 次（最近一次：{code}）。"
        "请核查其密钥与来源，必要时在接入应用管理中停用该应用。",
    ),
}


# E-mail subjects where an inbox line should say more than the title, with the banner that opens the mail when
# something is off: finance scans a mailbox of daily results, and one that is off must stand out there (8.4.3.4).
# Other notices sent by e-mail take their title as the subject and have no banner.
EMAIL_SUBJECTS: dict[str, tuple[str, str | None]] = {
    "reconciliation_balanced": ("【对账结果】{channel} {date} 对账平衡", None),
    "reconciliation_mismatch": (
        "【对账异常】{channel} {date} 对账差错 {count} 笔待处理",
        "对账结果异常，请尽快核实处理",
    ),
    "reconciliation_reminder": ("【对账异常】{channel} {date} 尚有 {count} 笔差错未处理", "差错账仍未处理完毕"),
    "reconciliation_unavailable": ("【对账异常】{channel} {date} 对账单未能取得", "当日未能完成对账"),
    "reconciliation_failed": ("【对账异常】{channel} {date} 对账未能完成", "当日未能完成对账"),
    "reconciliation_bad_debt": ("【坏账告警】截至 {date} 未处理短款 {amount} 元", "坏账已超过告警阈值"),
}
# The day's figures, shown as a table in the HTML part when a notice carries them (the reconciliation results).
_FIGURES = (
    ("渠道收款（元）", "channel_paid"),
    ("渠道退款（元）", "channel_refunded"),
    ("平台收款（元）", "platform_paid"),
    ("平台退款（元）", "platform_refunded"),
    ("双方一致（笔）", "matched"),
    ("长款（笔）", "channel_only"),
    ("短款（笔）", "platform_only"),
    ("金额不符（笔）", "amount_mismatch"),
    ("状态不符（笔）", "status_mismatch"),
)
_EMAIL_FOOTER = "本邮件由系统自动发送，请勿直接回复。"


def render_email(template: str, title: str, body: str, params: dict[str, str]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a notice's e-mail."""
    subject, banner = EMAIL_SUBJECTS.get(template, (title, None))
    subject = subject.format_map(_Defaulting(params))
    text = "\n\n".join(part for part in (f"！！{banner}！！" if banner else "", body, _EMAIL_FOOTER) if part)
    escaped = html.escape(body)
    link = params.get("link", "")
    if link.startswith(("https://", "http://")):
        escaped = escaped.replace(
            html.escape(link), f'<a href="{html.escape(link, quote=True)}">{html.escape(link)}</a>'
        )
    page = []
    if banner:
        page.append(
            '<div style="background:#c62828;color:#fff;padding:12px 16px;font-size:18px;font-weight:bold">'
            f"{html.escape(banner)}</div>"
        )
    page.append(f'<h2 style="font-size:18px">{html.escape(title)}</h2>')
    page.append(f'<p style="font-size:15px;line-height:1.6">{escaped}</p>')
    cell = "padding:4px 12px;border:1px solid #ddd"
    rows = [
        f'<tr><th style="text-align:left;{cell}">{html.escape(label)}</th>'
        f'<td style="text-align:right;{cell}">{html.escape(params[key])}</td></tr>'
        for label, key in _FIGURES
        if key in params
    ]
    if rows:
        page.append(f'<table style="border-collapse:collapse;font-size:14px">{"".join(rows)}</table>')
    page.append(f'<p style="color:#888;font-size:12px">{_EMAIL_FOOTER}</p>')
    document = (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"></head><body>{"".join(page)}</body></html>'
    )
    return subject, text, document


class Recipient(NamedTuple):
    user_id: str
    phone: str | None
    email: str | None = None


log = structlog.get_logger()


def with_links(params: dict[str, str], base: str) -> dict[str, str]:
    """Params with a `link` given as a path (`/bills/…`) made absolute against where patients open them."""
    link = params.get("link", "")
    return {**params, "link": f"{base}{link}"} if link.startswith("/") and base else params


def render(template: str, params: dict[str, str]) -> tuple[str, str]:
    title, body = TEMPLATES[template]
    return title, body.format_map(_Defaulting(params))


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return ""


class NoticeActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        notifier: Notifier,
        channels: Sequence[Channel] = (Channel.APP,),
        links_base: str = "",
        *,
        mailer: Mailer | None = None,
        email_templates: Collection[str] = (),
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._notifier = notifier
        self._channels = tuple(dict.fromkeys(channels))
        self._links_base = links_base
        self._mailer = mailer
        self._email_templates = frozenset(email_templates)

    async def _recipients(self, session: AsyncSession, user_ref: str) -> list[Recipient]:
        """Who `patient:<id>`, `applicant:<staff id>`, `doctor:<id>`, `pharmacist:<id>`, `role:<role>` (or
        `role:<role>/<permission>`: those of the role who hold the permission, as `api.permissions` decides it), or the
        pharmacists signed in for duty now (`duty:pharmacist`) are. A patient's phone is the one of their real-name
        data; staff have the one they proved for SMS sign-in, if any, and the e-mail address on their account."""
        kind, _, ref = user_ref.partition(":")
        if kind == "patient":
            row = (
                await session.execute(
                    select(col(Patient.user_id), col(Patient.phone_enc)).where(col(Patient.id) == ref)
                )
            ).first()
            return [Recipient(row.user_id, self._cipher.decrypt("phone", row.phone_enc))] if row else []
        if kind == "applicant":
            # A doctor or pharmacist applying (8.5.2.2, 8.5.3.2): the phone given with the application.
            row = (
                await session.execute(
                    select(col(StaffApplication.user_id), col(StaffApplication.phone_enc)).where(
                        col(StaffApplication.id) == ref
                    )
                )
            ).first()
            return [Recipient(row.user_id, self._cipher.decrypt("phone", row.phone_enc))] if row else []
        if kind in ("doctor", "pharmacist"):
            table = Doctor if kind == "doctor" else Pharmacist
            users = (await session.execute(select(col(table.user_id)).where(col(table.id) == ref))).scalars()
        elif kind == "role":
            role, _, permission = ref.partition("/")
            members = select(col(User.id)).where(col(User.role) == role, col(User.disabled).is_(False))
            if permission:
                # A personal grant or revocation decides; else the role's own permissions do.
                personal = (
                    select(col(UserPermission.granted))
                    .where(col(UserPermission.user_id) == col(User.id), col(UserPermission.permission) == permission)
                    .scalar_subquery()
                )
                by_role = exists().where(
                    col(RolePermission.role) == col(User.role), col(RolePermission.permission) == permission
                )
                members = members.where(func.coalesce(personal, by_role))
            users = (await session.execute(members)).scalars()
        elif user_ref == ON_DUTY_PHARMACISTS:
            users = (
                await session.execute(
                    select(col(Pharmacist.user_id))
                    .join(PharmacistDuty, col(PharmacistDuty.pharmacist_id) == col(Pharmacist.id))
                    .where(col(PharmacistDuty.ended_at).is_(None))
                )
            ).scalars()
        else:
            raise ValueError(f"unknown recipient {user_ref!r}")
        return await self._staff(session, list(users))

    async def _staff(self, session: AsyncSession, user_ids: list[str]) -> list[Recipient]:
        contacts = {
            row.id: row
            for row in await session.execute(
                select(col(User.id), col(User.email_enc), col(MfaFactor.sms_phone_enc))
                .outerjoin(
                    MfaFactor,
                    and_(col(MfaFactor.user_id) == col(User.id), col(MfaFactor.sms_enrolled_at).is_not(None)),
                )
                .where(col(User.id).in_(user_ids))
            )
        }
        # The phone under the same column name as the patients' phone: the sign-in code wrote it under "phone".
        return [
            Recipient(
                user_id,
                self._cipher.decrypt("phone", contacts[user_id].sms_phone_enc),
                self._cipher.decrypt("email", contacts[user_id].email_enc),
            )
            if user_id in contacts
            else Recipient(user_id, None)
            for user_id in user_ids
        ]

    @activity.defn
    async def send_notice(self, notice: Notice) -> int:
        """Write the inbox rows and send each message once; returns how many recipients were reached."""
        params = with_links(notice.params, self._links_base)
        title, body = render(notice.template, params)
        async with self._sessions() as session:
            recipients = await self._recipients(session, notice.user_ref)
            for user_id, *_ in recipients:
                await session.execute(
                    insert(Notification)
                    .values(
                        key=f"{notice.key}:{user_id}",
                        user_id=user_id,
                        template=notice.template,
                        title=title,
                        body=body,
                        params=params,
                    )
                    .on_conflict_do_nothing(index_elements=["key"])
                )
            await session.commit()
        for recipient in recipients:
            user_id, phone = recipient.user_id, recipient.phone
            for channel in self._channels:
                if channel is Channel.EMAIL:
                    await self._email(notice, recipient, title, body, params)
                    continue
                if channel is Channel.SMS and phone is None:
                    continue  # nobody to text; the inbox and the other channels still reach them
                # The notifier dedupes on the key, so a retry after a partial send does not message anyone twice.
                # App push keeps the key it had before there were channels, so a retry across an upgrade sends once.
                key = f"{notice.key}:{user_id}" if channel is Channel.APP else f"{notice.key}:{user_id}:{channel}"
                await self._notifier.send(
                    idempotency_key=key, channel=channel, phone=phone, user_id=user_id, title=title, body=body
                )
        return len(recipients)

    async def _email(self, notice: Notice, recipient: Recipient, title: str, body: str, params: dict[str, str]) -> None:
        if self._mailer is None or recipient.email is None or notice.template not in self._email_templates:
            return
        subject, text, page = render_email(notice.template, title, body, params)
        try:
            # The mailer dedupes on the key like the notifier: a retried notice mails nobody twice.
            await self._mailer.send(
                idempotency_key=f"{notice.key}:{recipient.user_id}:{Channel.EMAIL}",
                to=recipient.email,
                subject=subject,
                text=text,
                html=page,
            )
        except AdapterRefusal as refusal:
            # An address the server refuses for good fails no flow: the inbox and the other channels reached them.
            log.warning("notice e-mail refused", template=notice.template, user_id=recipient.user_id, code=refusal.code)
