"""The agreements a patient accepts before any service, and their current versions.

Publishing a new text means a new `version`: every patient is then asked to accept it again before the next service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ConsentDocumentId = Literal["informed_consent", "privacy_policy"]


@dataclass(frozen=True)
class ConsentDocument:
    id: ConsentDocumentId
    version: str
    title: str
    text: str


INFORMED_CONSENT = ConsentDocument(
    id="informed_consent",
    version="1.0",
    title="互联网诊疗知情同意书",
    text=(
        "一、本平台提供的互联网诊疗服务仅限于常见病、慢性病的复诊，您须已在实体医疗机构就同一疾病确诊。"
        "首诊、急危重症及病情变化需要当面诊查的，请到医院就诊；如遇紧急情况，请立即拨打 120。\n"
        "二、医生将根据您提供的病历资料、舌象照片及问诊内容作出判断。资料不真实、不完整可能影响诊疗结果，"
        "相应后果由您本人承担。\n"
        "三、医生认为不适宜在线诊疗时，有权终止本次服务并建议您线下就诊，已支付的费用按规定退还。\n"
        "四、处方经药师审核后方可调配；中药饮片请遵医嘱煎服，服药期间如有不适，请停药并及时就医。\n"
        "五、本次诊疗的病历、处方及沟通记录将按国家规定保存，供您与医疗机构依法查阅。"
    ),
)

PRIVACY_POLICY = ConsentDocument(
    id="privacy_policy",
    version="1.0",
    title="隐私政策",
    text=(
        "一、为完成实名认证、挂号、诊疗、配药与配送，我们收集您的姓名、身份证号、手机号、收货地址及诊疗信息。\n"
        "二、身份证号、手机号、地址等敏感信息采用国密算法加密存储，对外展示时进行脱敏处理。\n"
        "三、除法律法规要求及向监管平台报送外，我们仅在提供服务所必需的范围内，"
        "向医疗机构、药房、支付机构和物流企业提供必要信息。\n"
        "四、您可以查阅、更正您的个人信息，或联系医院注销账号；病历等医疗记录按法定期限保存。"
    ),
)

CONSENT_DOCUMENTS: dict[str, ConsentDocument] = {doc.id: doc for doc in (INFORMED_CONSENT, PRIVACY_POLICY)}
