"""The published scope, admission conditions and booking rules of online revisits (8.1.1.1, 8.6.3 g), in zh-CN.

Every number comes from the settings the booking, revisit and no-show flows themselves run on, so what the public
reads is what the system enforces.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.schemas.catalogue import (
    DOCTOR_TITLES,
    SERVICE_TYPE_NAMES,
    Admission,
    BookingRules,
    DiseaseOut,
    FeeStandard,
    NoShowRule,
    ScopeDepartment,
    ServiceInfo,
    ServiceScope,
    ServiceTypeInfo,
)
from core.settings import Settings
from models.tables import Department, Disease


def _scope(settings: Settings, departments: Sequence[tuple[Department, Sequence[Disease]]]) -> ServiceScope:
    standards = settings.fee_standards_fen
    titles = [title for title in DOCTOR_TITLES if title in standards]
    titles += sorted(set(standards) - set(titles))
    return ServiceScope(
        summary=(
            "本院互联网医院仅为在本院实体医疗机构线下确诊的患者提供常见病、慢性病的在线复诊，"
            "不提供首诊；复诊仅限下列科室的可复诊病种。"
        ),
        service_types=[ServiceTypeInfo(code=code, name=f"{name}问诊") for code, name in SERVICE_TYPE_NAMES.items()],
        departments=[
            ScopeDepartment(
                id=department.id,
                name=department.name,
                diseases=[DiseaseOut.model_validate(disease) for disease in diseases],
            )
            for department, diseases in departments
            if diseases
        ],
        fee_standards=[FeeStandard(title=title, fees=dict(standards[title])) for title in titles],
    )


def _admission(settings: Settings) -> Admission:
    days = settings.revisit_window_days
    return Admission(
        revisit_window_days=days,
        conditions=[
            f"须为在本院线下就诊并已确诊的患者，且确诊日期在 {days} 天以内；预约的号源病种须与线下确诊的病种一致。",
            "预约前须完成复诊预判：系统向本院 HIS/电子病历核实线下就诊记录，通过后方可预约该病种的号源。",
            "就诊人须为本人，挂号支付前须完成实名认证。",
            "首诊、急危重症及病情变化需要面诊的患者不适用在线复诊，请到医院门诊或急诊就医。",
            "6 岁以下儿童复诊须由监护人陪同。",
        ],
    )


def _booking_rules(settings: Settings) -> BookingRules:
    pay_minutes = settings.registration_pay_window_s // 60
    limit, window, block = settings.no_show_limit, settings.no_show_window_days, settings.no_show_block_days
    return BookingRules(
        pay_window_minutes=pay_minutes,
        cancel_policy="医生接诊前可随时取消预约；已支付的挂号费按原支付渠道全额退还。医生接诊后不可取消。",
        no_show=NoShowRule(limit=limit, window_days=window, block_days=block),
        rules=[
            f"预约成功后号源为您保留 {pay_minutes} 分钟，请在此时间内支付挂号费；逾期未支付，预约自动取消、号源释放。",
            "挂号以支付挂号费为成功标志，支付成功后挂号信息同步至医院系统并分配就诊序号。",
            "医生加号的号源如指定了患者，仅该患者本人可以预约。",
            f"预约后未按时就诊且未取消的记为爽约；{window} 天内爽约满 {limit} 次的，{block} 天内不能预约挂号，"
            "如有异议可向医院申诉。",
            "医生停诊或替诊时，系统将通知已预约的患者，患者可改约其他号源或申请全额退款。",
        ],
    )


def service_info(settings: Settings, departments: Sequence[tuple[Department, Sequence[Disease]]]) -> ServiceInfo:
    return ServiceInfo(
        scope=_scope(settings, departments),
        admission=_admission(settings),
        booking_rules=_booking_rules(settings),
    )
