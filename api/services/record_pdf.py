"""The medical record as an A4 PDF (门诊病历, 8.2.5), laid out in the order of 《中医病历书写基本规范》.

The text is set in reportlab's built-in CID font STSong-Light (Adobe-GB1): it needs no font file on the machine and
its text stays extractable, but it is not embedded, so the reader's viewer supplies the glyphs.
Identical documents give identical bytes: reportlab's `invariant` mode fixes the creation date and the file ID.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    Flowable,
    HRFlowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
    paragraph,
)

from models.common import HOSPITAL_TZ
from models.record import RecordAddendum, RecordDocument, RecordPrescription
from models.signature import SignatureRecord

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

# reportlab's list of characters that may not start a line (kinsoku) is Japanese: it lacks the full-width Chinese
# punctuation, so lines would begin with 「，」 or 「；」 against GB/T 15834. Extending it makes such a mark hang in
# the right margin instead; other users of reportlab in the process only gain the same rule.
_NO_LINE_START = "，。、；：！？）》」』】〕…—"
paragraph.ALL_CANNOT_START += "".join(c for c in _NO_LINE_START if c not in paragraph.ALL_CANNOT_START)

_MARGIN_X = 20 * mm
_MARGIN_TOP = 18 * mm
# Room below the frame for the page footer.
_MARGIN_BOTTOM = 22 * mm
_FRAME_WIDTH = A4[0] - 2 * _MARGIN_X

# A CID font has no bold face, so headings stand out by size alone.
_TITLE = ParagraphStyle("title", fontName=FONT, fontSize=18, leading=26, alignment=TA_CENTER)
_SUBTITLE = ParagraphStyle("subtitle", fontName=FONT, fontSize=14, leading=22, alignment=TA_CENTER, spaceAfter=6)
# wordWrap CJK breaks lines between any two characters: Chinese has no spaces to break at.
_BODY = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=17, wordWrap="CJK", spaceBefore=3)
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=9.5, leading=14, spaceBefore=0)
_HEADING = ParagraphStyle("heading", parent=_BODY, fontSize=12.5, leading=20, spaceBefore=10)
_DRAFT_NOTE = ParagraphStyle("draft", parent=_BODY, textColor=colors.HexColor("#b00020"))

_SEX = {"male": "男", "female": "女"}
_NOT_RECORDED = "（未记录）"


def render_record_pdf(doc: RecordDocument) -> bytes:
    # Laid out twice: 「共 y 页」 is known only after the first pass. The footer sits outside the frame, so the
    # second pass breaks pages exactly as the first.
    _, pages = _build(doc, total_pages=None)
    pdf, _ = _build(doc, total_pages=pages)
    return pdf


def _build(doc: RecordDocument, total_pages: int | None) -> tuple[bytes, int]:
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN_X,
        rightMargin=_MARGIN_X,
        topMargin=_MARGIN_TOP,
        bottomMargin=_MARGIN_BOTTOM,
        title=f"门诊病历 {doc.visit_id}",
        author=doc.hospital_name,
        subject="互联网医院门诊病历",
        creator="Qihuang",
        invariant=1,
    )
    decorate = _page_decorator(doc, total_pages)
    template.build(_story(doc), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue(), template.page


def _page_decorator(doc: RecordDocument, total_pages: int | None) -> Callable[[Any, Any], None]:
    draft = doc.signature is None

    def decorate(canvas: Any, template: Any) -> None:
        if draft:
            # Drawn before the page's content, so the text stays legible over it.
            canvas.saveState()
            canvas.setFillColor(colors.Color(0.88, 0.88, 0.88))
            canvas.setFont(FONT, 72)
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(45)
            canvas.drawCentredString(0, 0, "草稿 未签名")
            canvas.restoreState()
        canvas.saveState()
        canvas.setFont(FONT, 9)
        baseline = _MARGIN_BOTTOM / 2
        canvas.drawString(_MARGIN_X, baseline, f"就诊号：{doc.visit_id}")
        total = "?" if total_pages is None else str(total_pages)
        canvas.drawRightString(A4[0] - _MARGIN_X, baseline, f"第 {template.page} 页 共 {total} 页")
        canvas.restoreState()

    return decorate


def _markup(text: str) -> str:
    """User text as Paragraph markup: tags and entities escaped, line breaks kept."""
    return "<br/>".join(escape(line) for line in text.splitlines())


def _field(heading: str, text: str) -> Paragraph:
    return Paragraph(f"{heading}：{_markup(text) if text.strip() else _NOT_RECORDED}", _BODY)


def _local(moment: datetime, seconds: bool = False) -> str:
    return moment.astimezone(HOSPITAL_TZ).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _age(birth: date, on: date) -> str:
    """Age as Chinese records give it: years, or months (then days) for infants."""
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    if months >= 12:
        return f"{months // 12}岁"
    if months >= 1:
        return f"{months}月"
    return f"{(on - birth).days}天"


def _story(doc: RecordDocument) -> list[Flowable]:
    return [
        *_header(doc),
        *_sections(doc),
        *_prescriptions(doc.prescriptions),
        _field("医嘱", doc.record.orders),
        _signature_block(doc),
        *_addenda(doc),
    ]


def _header(doc: RecordDocument) -> list[Flowable]:
    visited = doc.visited_at.astimezone(HOSPITAL_TZ)
    patient = doc.patient
    age = _age(patient.birth_date, visited.date()) if patient.birth_date else "未知"
    cells = [
        [f"姓名：{patient.name}", f"性别：{_SEX.get(patient.sex or '', '未知')}", f"年龄：{age}"],
        [f"科别：{doc.department}", f"就诊时间：{_local(visited)}", f"就诊号：{doc.visit_id}"],
    ]
    info = Table(
        [[Paragraph(escape(cell), _SMALL) for cell in row] for row in cells],
        colWidths=[_FRAME_WIDTH * 0.3, _FRAME_WIDTH * 0.36, _FRAME_WIDTH * 0.34],
    )
    info.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return [
        Paragraph(escape(doc.hospital_name), _TITLE),
        Paragraph("互联网医院 门诊病历（复诊）", _SUBTITLE),
        info,
        HRFlowable(width="100%", thickness=1, color=colors.black, spaceBefore=4, spaceAfter=4),
    ]


def _coded(name: str, code: str | None) -> str:
    return escape(name) + (f"（{escape(code)}）" if code else "")


def _sections(doc: RecordDocument) -> list[Flowable]:
    record = doc.record
    disease = _coded(record.tcm_disease, record.tcm_disease_code)
    syndrome = _coded(record.tcm_syndrome, record.tcm_syndrome_code)
    western = (
        _coded(record.western_diagnosis, record.western_diagnosis_code)
        if record.western_diagnosis.strip()
        else _NOT_RECORDED
    )
    return [
        _field("主诉", record.chief_complaint),
        _field("现病史", record.present_illness),
        _field("既往史", record.past_history),
        _field("过敏史", record.allergy_history),
        _field("体格检查", record.physical_exam),
        _field("舌象", record.tongue),
        _field("脉象", record.pulse),
        Paragraph(f"中医诊断：病名 {disease}；证候 {syndrome}", _BODY),
        Paragraph(f"西医诊断：{western}", _BODY),
        _field("治法", record.treatment_principle),
    ]


def _prescriptions(prescriptions: list[RecordPrescription]) -> list[Flowable]:
    if not prescriptions:
        return [Paragraph("方药：本次就诊未开具处方", _BODY)]
    flowables: list[Flowable] = [Paragraph("方药：", _BODY)]
    for number, rx in enumerate(prescriptions, start=1):
        rows = [[Paragraph(text, _SMALL) for text in ("药名", "用量（g）", "煎法")]]
        rows += [
            [Paragraph(escape(cell), _SMALL) for cell in (item.herb, f"{item.dose_g:g}", item.decoction or "")]
            for item in rx.items
        ]
        table = Table(rows, colWidths=[_FRAME_WIDTH * 0.45, _FRAME_WIDTH * 0.2, _FRAME_WIDTH * 0.35], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.93, 0.93, 0.93)),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ]
            )
        )
        flowables += [
            Paragraph(f"处方 {number}（处方号：{escape(rx.prescription_id)}）", _SMALL),
            table,
            Paragraph(f"共 {rx.doses} 剂；用法：{_markup(rx.usage)}", _SMALL),
            Spacer(0, 4),
        ]
    return flowables


def _short(digest: str) -> str:
    return f"{digest[:16]}…{digest[-8:]}" if len(digest) > 24 else digest


def _signature_lines(signature: SignatureRecord) -> list[str]:
    """What a reader can check a signature against, as markup lines; records signed before SM2 keep a digest only."""
    lines = [f"签名时间：{_local(signature.signed_at, seconds=True)}"]
    electronic = signature.signature
    if electronic is None:
        lines.append("电子签名：无（仅存摘要）")
    else:
        lines.append(f"电子签名：SM2（{escape(electronic.algorithm)}）　密钥标识：{escape(electronic.key_id)}")
    lines.append(f"SM3 摘要：{escape(_short(signature.digest))}")
    token = signature.timestamp
    if token is None:
        lines.append("可信时间戳：无")
    else:
        lines.append(f"可信时间戳：{escape(token.tsa)}　时间：{_local(token.gen_time, seconds=True)}")
    return lines


def _signature_block(doc: RecordDocument) -> Flowable:
    doctor = f"医师：{escape(doc.doctor.name)}" + (f"　{escape(doc.doctor.title)}" if doc.doctor.title else "")
    flowables: list[Flowable] = [
        HRFlowable(width="100%", thickness=0.5, color=colors.grey, spaceBefore=10, spaceAfter=2),
        Paragraph(doctor, _BODY),
    ]
    if doc.signature is None:
        flowables += [
            Paragraph("未签名（草稿）", _DRAFT_NOTE),
            Paragraph("本病历尚未经医师电子签名，仅供预览，不作为正式病历使用。", _DRAFT_NOTE),
        ]
    else:
        flowables += [Paragraph(line, _SMALL) for line in _signature_lines(doc.signature)]
    # The block never starts at the foot of one page and ends on the next.
    return KeepTogether(flowables)


def _author(doc: RecordDocument, doctor_id: str) -> str:
    return doc.doctor.name if doctor_id == doc.doctor.id else f"医师 {doctor_id}"


def _addenda(doc: RecordDocument) -> list[Flowable]:
    if not doc.addenda:
        return []
    return [
        Paragraph("补充记录", _HEADING),
        *(_addendum(doc, number, addendum) for number, addendum in enumerate(doc.addenda, start=1)),
    ]


def _addendum(doc: RecordDocument, number: int, addendum: RecordAddendum) -> Flowable:
    title = f"补充记录 {number}　记录时间：{_local(addendum.written_at)}　{escape(_author(doc, addendum.doctor_id))}"
    lines = ["未签名"] if addendum.signature is None else _signature_lines(addendum.signature)
    return KeepTogether(
        [
            Paragraph(title, _BODY),
            Paragraph(_markup(addendum.text), _BODY),
            *(Paragraph(line, _SMALL) for line in lines),
        ]
    )
