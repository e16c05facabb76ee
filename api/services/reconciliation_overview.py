"""The printable overview of a day's reconciliation (对账总览): the run's figures, two charts (the differences by kind;
the money each side counted, and what of it agreed) and the list of differences, as an HTML page and an A4 PDF.

Both render the same figures from `RunReport`. The HTML is one self-contained page (inline CSS and SVG, nothing
fetched) that prints as it shows; the PDF is set in STSong-Light like the medical record (api/services/record_pdf.py),
with reportlab's own charts, and is byte-identical for identical data (`invariant`). A day with very many differences
lists the first `LISTED` of them; the exports carry them all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from html import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from api.services.reconciliation_reports import DIFFERENCE_OUTCOMES, RunReport, money, summary_rows
from api.services.record_pdf import FONT
from models.reconciliation import KIND_NAMES, OUTCOME_NAMES, RESOLUTION_STATE_NAMES
from workflows.steps import yuan

LISTED = 1000
_COLOURS = ("#c0392b", "#2c7fb8", "#7f8c8d")  # channel, platform, agreed


@dataclass(frozen=True)
class Bars:
    """A bar chart: groups along the axis, one bar per series in each group."""

    title: str
    unit: str
    groups: list[str]
    series: list[tuple[str, list[float]]]  # (legend, one value per group)


def charts(report: RunReport) -> list[Bars]:
    run = report.run
    return [
        Bars(
            title="差错笔数",
            unit="笔",
            groups=[OUTCOME_NAMES[o] for o in DIFFERENCE_OUTCOMES],
            series=[("差错", [float(report.count(o)) for o in DIFFERENCE_OUTCOMES])],
        ),
        Bars(
            title="金额（元）",
            unit="元",
            groups=["收款", "退款"],
            series=[
                ("渠道", [run.channel_payment_fen / 100, run.channel_refund_fen / 100]),
                ("平台", [run.platform_payment_fen / 100, run.platform_refund_fen / 100]),
                ("相符", [run.matched_payment_fen / 100, run.matched_refund_fen / 100]),
            ],
        ),
    ]


LIST_HEADINGS = [
    "编号",
    "类型",
    "结果",
    "商户订单号",
    "退款单号",
    "渠道金额",
    "平台金额",
    "短款",
    "行号",
    "平台单据",
    "处理",
]


def listed_rows(report: RunReport) -> list[list[str]]:
    return [
        [
            str(i.item_id),
            KIND_NAMES[i.kind],
            OUTCOME_NAMES[i.outcome],
            i.out_trade_no or "",
            i.out_refund_no or "",
            money(i.channel_amount_fen),
            money(i.platform_amount_fen),
            yuan(i.shortfall_fen) if i.shortfall_fen else "",
            "" if i.line_no is None else str(i.line_no),
            i.platform_record_id or "",
            RESOLUTION_STATE_NAMES[i.resolution_state],
        ]
        for i in report.items[:LISTED]
    ]


def _more(report: RunReport) -> str | None:
    hidden = len(report.items) - LISTED
    return f"另有 {hidden} 笔差错未列出，完整明细请导出 CSV 或 XLSX。" if hidden > 0 else None


# --- HTML ----------------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
.hospital { color: #555; margin-bottom: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { width: 8em; }
.alert { border: 2px solid #c0392b; color: #c0392b; padding: 6px 10px; margin: 12px 0; font-weight: bold; }
.charts { display: flex; gap: 24px; flex-wrap: wrap; } .charts svg { border: 1px solid #ddd; }
@media print { body { margin: 0; } .charts { break-inside: avoid; } tr { break-inside: avoid; } @page { size: A4 landscape; margin: 12mm; } }
"""
_MONEY_COLUMNS = {5, 6, 7}


def overview_html(report: RunReport) -> str:
    run = report.run
    summary = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summary_rows(report))
    alert = (
        f'<div class="alert">有 {run.open_items} 笔差错待处理，未处理短款 {yuan(report.open_shortfall_fen)} 元</div>'
        if run.open_items
        else ""
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in LIST_HEADINGS)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if n in _MONEY_COLUMNS else f"<td>{escape(c)}</td>"
            for n, c in enumerate(row)
        )
        + "</tr>"
        for row in listed_rows(report)
    )
    listing = (
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if report.items else "<p>无差错。</p>"
    )
    more = f"<p>{escape(note)}</p>" if (note := _more(report)) else ""
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(report.title)}</h1><div class=hospital>{escape(report.hospital_name)}</div>{alert}"
        f'<table class="summary">{summary}</table>'
        f'<h2>图表</h2><div class="charts">{"".join(_svg(chart) for chart in charts(report))}</div>'
        f"<h2>差错明细（{len(report.items)} 笔）</h2>{listing}{more}</body></html>"
    )


def _svg(chart: Bars, width: int = 420, height: int = 240) -> str:
    """A bar chart as inline SVG: value labels on the bars, a legend where there is more than one series."""
    left, right, top, bottom = 16, 16, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, values in chart.series for v in values), default=0) or 1
    group_w = plot_w / max(1, len(chart.groups))
    bar_w = group_w * 0.7 / max(1, len(chart.series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(chart.title)}" font-size="11">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(chart.title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#555"/>',
    ]
    for g, group in enumerate(chart.groups):
        x0 = left + g * group_w + group_w * 0.15
        for s, (_, values) in enumerate(chart.series):
            value = values[g]
            h = plot_h * value / peak
            x, y = x0 + s * bar_w, top + plot_h - h
            label = f"{value:,.0f}" if chart.unit == "笔" else f"{value:,.2f}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{_COLOURS[s % len(_COLOURS)]}"><title>{escape(group)} {label}{escape(chart.unit)}</title></rect>'
            )
            parts.append(
                f'<text x="{x + bar_w * 0.46:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{label}</text>'
            )
        parts.append(
            f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
            f"{escape(group)}</text>"
        )
    if len(chart.series) > 1:
        for s, (name, _) in enumerate(chart.series):
            x = left + s * 70
            parts.append(
                f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{_COLOURS[s % len(_COLOURS)]}"/>'
                f'<text x="{x + 14}" y="{height - 5}">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


# --- PDF -----------------------------------------------------------------------------------------------------------

_PAGE = landscape(A4)
_MARGIN = 12 * mm
_WIDTH = _PAGE[0] - 2 * _MARGIN
_TITLE = ParagraphStyle("recon-title", fontName=FONT, fontSize=16, leading=22)
_TEXT = ParagraphStyle("recon-text", fontName=FONT, fontSize=9, leading=12, wordWrap="CJK")
_HEADING = ParagraphStyle("recon-heading", parent=_TEXT, fontSize=12, leading=18, spaceBefore=8, spaceAfter=4)
_ALERT = ParagraphStyle("recon-alert", parent=_TEXT, fontSize=11, leading=16, textColor=colors.HexColor(_COLOURS[0]))


def overview_pdf(report: RunReport) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=_PAGE,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 4 * mm,
        title=report.title,
        author=report.hospital_name,
        subject="对账总览",
        creator="Qihuang",
        invariant=1,
    )

    def footer(canvas: object, template: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(FONT, 8)  # type: ignore[attr-defined]
        canvas.drawString(_MARGIN, _MARGIN / 2, f"对账批次 {report.run.run_id}")  # type: ignore[attr-defined]
        canvas.drawRightString(_PAGE[0] - _MARGIN, _MARGIN / 2, f"第 {template.page} 页")  # type: ignore[attr-defined]
        canvas.restoreState()  # type: ignore[attr-defined]

    document.build(_story(report), onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _story(report: RunReport) -> list[Flowable]:
    run = report.run
    story: list[Flowable] = [Paragraph(escape(report.title), _TITLE), Paragraph(escape(report.hospital_name), _TEXT)]
    if run.open_items:
        story.append(
            Paragraph(f"有 {run.open_items} 笔差错待处理，未处理短款 {yuan(report.open_shortfall_fen)} 元", _ALERT)
        )
    summary = Table(
        [[Paragraph(escape(k), _TEXT), Paragraph(escape(v), _TEXT)] for k, v in summary_rows(report)],
        colWidths=[28 * mm, _WIDTH - 28 * mm],
    )
    summary.setStyle(_grid())
    story += [Spacer(1, 4 * mm), summary, Paragraph("图表", _HEADING)]
    drawings = [_drawing(chart, _WIDTH / 2 - 4 * mm) for chart in charts(report)]
    story.append(Table([drawings], colWidths=[_WIDTH / 2] * 2))
    story.append(Paragraph(f"差错明细（{len(report.items)} 笔）", _HEADING))
    if report.items:
        rows = [[Paragraph(escape(c), _TEXT) for c in row] for row in [LIST_HEADINGS, *listed_rows(report)]]
        shares = [0.05, 0.05, 0.07, 0.17, 0.15, 0.08, 0.08, 0.07, 0.05, 0.15, 0.08]
        listing = Table(rows, colWidths=[_WIDTH * share for share in shares], repeatRows=1)
        listing.setStyle(_grid(header=True))
        story.append(listing)
    else:
        story.append(Paragraph("无差错。", _TEXT))
    if note := _more(report):
        story.append(Paragraph(escape(note), _TEXT))
    return story


def _grid(header: bool = False) -> TableStyle:
    style = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0f0f0")))
    return TableStyle(style)


def _drawing(chart: Bars, width: float, height: float = 62 * mm) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(width / 2, height - 12, chart.title, fontName=FONT, fontSize=10, textAnchor="middle"))
    bars = VerticalBarChart()
    bars.x, bars.y = 40, 36
    bars.width, bars.height = width - 60, height - 60
    bars.data = [values for _, values in chart.series]
    bars.categoryAxis.categoryNames = chart.groups
    bars.categoryAxis.labels.fontName = FONT
    bars.categoryAxis.labels.fontSize = 8
    bars.valueAxis.labels.fontName = FONT
    bars.valueAxis.labels.fontSize = 7
    peak = max((v for _, values in chart.series for v in values), default=0)
    bars.valueAxis.valueMin = 0
    bars.valueAxis.valueMax = peak * 1.15 if peak else 1  # room for the labels; an empty day still has an axis
    bars.barLabelFormat = "%.0f" if chart.unit == "笔" else "%.2f"
    bars.barLabels.fontName = FONT
    bars.barLabels.fontSize = 6
    bars.barLabels.nudge = 6
    for s in range(len(chart.series)):
        bars.bars[s].fillColor = colors.HexColor(_COLOURS[s % len(_COLOURS)])
    drawing.add(bars)
    if len(chart.series) > 1:
        legend = Legend()
        legend.x, legend.y = 40, 12
        legend.fontName, legend.fontSize = FONT, 8
        legend.alignment = "right"
        legend.columnMaximum = 1
        legend.colorNamePairs = [
            (colors.HexColor(_COLOURS[s % len(_COLOURS)]), name) for s, (name, _) in enumerate(chart.series)
        ]
        drawing.add(legend)
    return drawing
