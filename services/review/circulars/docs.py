"""The circular's files, written from its snapshot alone: a .docx in the formal Chinese layout and an .xlsx
with every figure.

The .docx follows the usual layout of a government circular (GB/T 9704 in spirit): the issuing office
in red, the document number over a red rule, the title in 方正小标宋, the body in 仿宋 at 16 pt
(三号) with 28 pt lines, headings in 黑体 and 楷体, the signature and the date at the end. Chinese
font names are set as the eastAsia font of each run, so Word picks them for the Chinese text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

TITLE_FONT = "方正小标宋简体"
BODY_FONT = "仿宋_GB2312"
HEADING_FONT = "黑体"
SUBHEADING_FONT = "楷体_GB2312"
TABLE_FONT = "宋体"
LATIN_FONT = "Times New Roman"
RED = RGBColor(0xE6, 0x00, 0x12)
PART_COLUMNS = (
    ("measures", "宣传措施"),
    ("timeliness", "报送时效"),
    ("inspection", "检查"),
    ("deductions", "督办扣分"),
    ("bonus", "经验做法加分"),
)
LEVELS = {"blue": "蓝", "yellow": "黄", "red": "红"}
METHODS = {"phone": "电话", "on_site": "实地", "interview": "约谈"}
STATES = {"open": "督办中", "responded": "已反馈", "closed": "已办结"}
SOURCES = {
    "submission": "报送材料",
    "inspection": "检查记录",
    "supervision": "督办事项",
    "liaison": "联络员",
    "deadline": "截止时间",
}
_NUMERALS = "一二三四五六七八九十"
_AFTER_PBDR = (
    "w:shd",
    "w:tabs",
    "w:suppressAutoHyphens",
    "w:kinsoku",
    "w:wordWrap",
    "w:overflowPunct",
    "w:topLinePunct",
    "w:autoSpaceDE",
    "w:autoSpaceDN",
    "w:bidi",
    "w:adjustRightInd",
    "w:snapToGrid",
    "w:spacing",
    "w:ind",
    "w:contextualSpacing",
    "w:mirrorIndents",
    "w:suppressOverlap",
    "w:jc",
    "w:textDirection",
    "w:textAlignment",
    "w:textboxTightWrap",
    "w:outlineLvl",
    "w:divId",
    "w:cnfStyle",
    "w:rPr",
    "w:sectPr",
    "w:pPrChange",
)


# ---------------------------------------------------------------- words and figures


def zh_date(day: date) -> str:
    """2020-04-08 → 2020年4月8日."""
    return f"{day.year}年{day.month}月{day.day}日"


def zh_moment(iso: str) -> str:
    """A local moment in words; the end of a day is just the day."""
    at = datetime.fromisoformat(iso)
    if (at.hour, at.minute) == (23, 59):
        return zh_date(at.date())
    return f"{zh_date(at.date())}{at.hour}时{at.minute:02d}分"


def figure(value: float | None) -> str:
    """A score with two decimals, as tables show it."""
    return "—" if value is None else f"{value:.2f}"


def _short(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


# ---------------------------------------------------------------- .docx


def _font(run, east_asia: str, size: float, *, bold: bool = False, color: RGBColor | None = None) -> None:
    run.font.name = LATIN_FONT
    run.font.size = Pt(size)
    run.font.bold = bold
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), east_asia)
    if color is not None:
        run.font.color.rgb = color


def _paragraph(
    doc,
    text: str = "",
    *,
    font: str = BODY_FONT,
    size: float = 16,
    bold: bool = False,
    align=WD_ALIGN_PARAGRAPH.JUSTIFY,
    indent: bool = True,
    color: RGBColor | None = None,
):
    paragraph = doc.add_paragraph()
    paragraph.alignment = align
    fmt = paragraph.paragraph_format
    fmt.line_spacing_rule, fmt.line_spacing = WD_LINE_SPACING.EXACTLY, Pt(28)
    fmt.space_before = fmt.space_after = Pt(0)
    if indent:
        fmt.first_line_indent = Pt(size * 2)
    if text:
        _font(paragraph.add_run(text), font, size, bold=bold, color=color)
    return paragraph


def _red_rule(paragraph) -> None:
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for name, value in (("val", "single"), ("sz", "18"), ("space", "6"), ("color", "E60012")):
        bottom.set(qn(f"w:{name}"), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().insert_element_before(
        borders, *_AFTER_PBDR
    )  # schema order, or Word complains


def _cell_style(doc, name: str, east_asia: str, *, bold: bool):
    """A paragraph style for table cells: fonts set once here instead of on every run (large tables)."""
    if name in [style.name for style in doc.styles]:
        return doc.styles[name]
    style = doc.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    style.base_style = doc.styles["Normal"]
    style.font.name, style.font.size, style.font.bold = LATIN_FONT, Pt(10.5), bold
    style.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), east_asia)
    fmt = style.paragraph_format
    fmt.alignment = WD_ALIGN_PARAGRAPH.CENTER
    fmt.first_line_indent, fmt.space_before, fmt.space_after = Pt(0), Pt(0), Pt(0)
    fmt.line_spacing_rule = WD_LINE_SPACING.SINGLE
    return style


def _table(doc, header: list[str], rows: list[list[str]], widths_cm: list[float]) -> None:
    table = doc.add_table(rows=len(rows) + 1, cols=len(header))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    head, body = (
        _cell_style(doc, "通报表头", HEADING_FONT, bold=True),
        _cell_style(doc, "通报表格", TABLE_FONT, bold=False),
    )
    for column, width in zip(table.columns, widths_cm, strict=True):
        column.width = Cm(width)
    for row, values, style_id in zip(
        table.rows, [header] + rows, [head.style_id] + [body.style_id] * len(rows), strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            paragraph = cell.paragraphs[0]
            paragraph._p.style = style_id  # by id: the public setter looks the style up by name on every call
            paragraph.add_run(value)
    header_row = table.rows[0]._tr.get_or_add_trPr()
    repeat = OxmlElement("w:tblHeader")
    repeat.set(qn("w:val"), "true")
    header_row.append(repeat)  # the header row repeats on every page


def _page(doc) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = LATIN_FONT, Pt(16)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)


def summary_text(snapshot: dict[str, Any]) -> str:
    """The summary paragraph: who took part, averages per level, inspections, supervisions, commendations."""
    s = snapshot["summary"]
    levels = "；".join(
        f"{lv['name']}{lv['units']}家，平均{_short(lv['average'])}分，最高{_short(lv['highest'])}分、"
        f"最低{_short(lv['lowest'])}分"
        for lv in s["levels"]
    )
    return (
        f"根据《{snapshot['campaign']['name']}》活动方案和考核细则，按照截至{zh_moment(snapshot['as_of_local'])}"
        f"的审核、检查和督办记录，对各参加单位的工作情况进行了考核。本期共有{s['units']}家单位参加考核，"
        f"平均得分{_short(s['average'])}分"
        + (f"，其中{levels}" if levels else "")
        + f"。期间共检查{s['inspected']}家单位，督办{s['supervisions']}件（其中红色督办{s['red_supervisions']}件）；"
        f"通报表扬{len(snapshot['commended'])}家单位，通报批评{len(snapshot['criticised'])}家单位。现将有关情况通报如下："
    )


def write_docx(snapshot: dict[str, Any], snapshot_sha256: str) -> bytes:
    """The circular as a Word document."""
    doc = Document()
    _page(doc)
    campaign = snapshot["campaign"]
    doc.core_properties.title = snapshot["title"]
    doc.core_properties.author = campaign["organiser"] or campaign["name"]
    if campaign["organiser"]:
        office = _paragraph(
            doc,
            campaign["organiser"],
            font=TITLE_FONT,
            size=22,
            align=WD_ALIGN_PARAGRAPH.CENTER,
            indent=False,
            color=RED,
        )
        office.paragraph_format.line_spacing = Pt(36)
    number = _paragraph(doc, snapshot["document_number"], align=WD_ALIGN_PARAGRAPH.CENTER, indent=False)
    _red_rule(number)
    _paragraph(doc, indent=False)
    title = _paragraph(
        doc, snapshot["title"], font=TITLE_FONT, size=22, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False
    )
    title.paragraph_format.line_spacing = Pt(36)
    _paragraph(doc, indent=False)
    _paragraph(doc, "各参加单位：", indent=False)
    _paragraph(doc, summary_text(snapshot))

    sections = iter(_NUMERALS)
    _paragraph(doc, f"{next(sections)}、考核得分及排名", font=HEADING_FONT)
    header = ["排名", "单位", "总分"] + [name for _, name in PART_COLUMNS]
    for index, level in enumerate(snapshot["levels"]):
        _paragraph(
            doc, f"（{_NUMERALS[index]}）{level['name']}（{len(level['units'])}家）", font=SUBHEADING_FONT
        )
        rows = [
            [str(u["rank"]), u["name"], figure(u["total"])]
            + [figure(u["parts"][part]) for part, _ in PART_COLUMNS]
            for u in level["units"]
        ]
        _table(doc, header, rows, [1.2, 4.4, 1.6, 1.6, 1.6, 1.4, 1.6, 2.2])

    _paragraph(doc, f"{next(sections)}、通报表扬", font=HEADING_FONT)
    if snapshot["commended"]:
        rule = snapshot["rules"]["circular"]
        _paragraph(
            doc,
            f"以下单位工作扎实、措施到位，考核得分在本层级位居前{rule['commend_top']}名且不低于"
            f"{_short(rule['commend_min_score'])}分，予以通报表扬：",
        )
        names = "、".join(f"{u['name']}（{_short(u['total'])}分）" for u in snapshot["commended"])
        _paragraph(doc, names + "。")
    else:
        _paragraph(doc, "本期无符合表扬条件的单位。")

    _paragraph(doc, f"{next(sections)}、通报批评", font=HEADING_FONT)
    if snapshot["criticised"]:
        _paragraph(doc, "以下单位工作不到位，予以通报批评，请于接到本通报后认真整改：")
        for u in snapshot["criticised"]:
            _paragraph(doc, f"{u['name']}（{_short(u['total'])}分）：{'；'.join(u['reasons'])}。")
    else:
        _paragraph(doc, "本期无通报批评的单位。")

    _paragraph(doc, f"{next(sections)}、督办情况", font=HEADING_FONT)
    if snapshot["supervisions"]:
        _paragraph(doc, f"截至统计时间，共督办{len(snapshot['supervisions'])}件，具体如下：")
        rows = [
            [
                s["unit_name"],
                LEVELS.get(s["level"], s["level"]),
                METHODS.get(s["method"], s["method"]),
                s["reason"],
                STATES.get(s["state"], s["state"]),
            ]
            for s in snapshot["supervisions"]
        ]
        _table(doc, ["单位", "等级", "方式", "事由", "状态"], rows, [4.0, 1.4, 1.4, 7.0, 1.8])
    else:
        _paragraph(doc, "本期无督办事项。")

    _paragraph(doc, f"{next(sections)}、有关要求", font=HEADING_FONT)
    _paragraph(
        doc,
        "各单位要对照本通报，查找差距，补齐短板；被通报批评和督办的单位要逐项整改落实，"
        "确保宣传活动取得实效。",
    )
    _paragraph(doc, indent=False)
    _paragraph(doc, indent=False)
    signer = campaign["organiser"] or campaign["name"]
    _paragraph(doc, signer, align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False)
    _paragraph(
        doc, zh_date(date.fromisoformat(snapshot["issued_on"])), align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False
    )
    _paragraph(doc, indent=False)
    _paragraph(
        doc,
        f"（数据截至{zh_moment(snapshot['as_of_local'])}；数据快照 SHA-256：{snapshot_sha256}）",
        size=10.5,
        indent=False,
    )
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- .xlsx


def _sheet(book, title: str, header: list[str], rows: list[list[Any]], widths: Sequence[float]) -> None:
    # A write-only sheet streams its rows: several times faster than the normal mode on large campaigns.
    sheet = book.create_sheet(title)
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = "A2"
    bold, centred = Font(bold=True), Alignment(horizontal="center", vertical="center", wrap_text=True)
    sheet.append([_cell(sheet, value, font=bold, alignment=centred) for value in header])
    for row in rows:
        sheet.append(
            [
                _cell(sheet, value, number_format="0.00") if isinstance(value, float) else value
                for value in row
            ]
        )


def _cell(sheet, value: Any, **style) -> Cell:
    cell = WriteOnlyCell(sheet, value=value)
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell


def write_xlsx(snapshot: dict[str, Any], snapshot_sha256: str) -> bytes:
    """Every figure of the circular: ranking, every score line with its source, supervisions, and notes."""
    book = Workbook(write_only=True)
    commended = {u["unit_id"] for u in snapshot["commended"]}
    criticised = {u["unit_id"]: u["reasons"] for u in snapshot["criticised"]}
    measures = snapshot["measures"]
    ranking, details = [], []
    for level in snapshot["levels"]:
        for u in level["units"]:
            per_measure = {line["item"]: line["points"] for line in u["lines"] if line["part"] == "measures"}
            verdict = "表扬" if u["unit_id"] in commended else ("批评" if u["unit_id"] in criticised else "")
            ranking.append(
                [level["name"], u["rank"], u["code"], u["name"], float(u["total"])]
                + [float(u["parts"][part]) for part, _ in PART_COLUMNS]
                + [float(per_measure.get(m["code"], 0.0)) for m in measures]
                + ["是" if u["inspected"] else "否", verdict, "；".join(criticised.get(u["unit_id"], []))]
            )
            for line in u["lines"]:
                details.append(
                    [
                        u["code"],
                        u["name"],
                        level["name"],
                        dict(PART_COLUMNS)[line["part"]],
                        line["item"] or "",
                        float(line["points"]),
                        float(line["max_points"]),
                        SOURCES.get(line["source_type"], line["source_type"]),
                        line["source_id"] or "",
                        line["note"],
                    ]
                )
    _sheet(
        book,
        "排名",
        ["单位层级", "排名", "单位代码", "单位名称", "总分"]
        + [name for _, name in PART_COLUMNS]
        + [f"{m['code']} {m['name']}" for m in measures]
        + ["是否被检查", "表扬/批评", "批评原因"],
        ranking,
        [12, 6, 10, 24, 9] + [10] * len(PART_COLUMNS) + [12] * len(measures) + [10, 10, 60],
    )
    _sheet(
        book,
        "得分明细",
        [
            "单位代码",
            "单位名称",
            "单位层级",
            "考核项",
            "细项",
            "得分",
            "满分",
            "来源类型",
            "来源编号",
            "说明",
        ],
        details,
        [10, 24, 12, 12, 18, 8, 8, 10, 38, 70],
    )
    _sheet(
        book,
        "督办",
        ["单位代码", "单位名称", "等级", "方式", "事由", "状态", "督办时间", "督办编号"],
        [
            [
                s["unit_code"],
                s["unit_name"],
                LEVELS.get(s["level"], s["level"]),
                METHODS.get(s["method"], s["method"]),
                s["reason"],
                STATES.get(s["state"], s["state"]),
                s["opened_at"],
                s["supervision_id"],
            ]
            for s in snapshot["supervisions"]
        ],
        [10, 24, 6, 6, 50, 8, 28, 38],
    )
    rules = snapshot["rules"]["circular"]
    notes = [
        ["活动", snapshot["campaign"]["name"]],
        ["通报", snapshot["title"]],
        ["文号", snapshot["document_number"]],
        ["期别", f"{snapshot['period']}（{snapshot['period_name']}）"],
        ["版本", snapshot["revision"]],
        ["统计截止时间", snapshot["as_of_local"]],
        ["统计截止时间（UTC）", snapshot["as_of"]],
        ["印发日期", snapshot["issued_on"]],
        ["数据快照 SHA-256", snapshot_sha256],
        [
            "表扬规则",
            f"各层级得分前 {rules['commend_top']} 名且不低于 {_short(rules['commend_min_score'])} 分（有红色督办或被批评的除外）",
        ],
        ["批评规则", f"得分低于 {_short(rules['criticise_below'])} 分，或有红色督办"],
        ["考核细则", json.dumps(snapshot["rules"]["rubric"], ensure_ascii=False, sort_keys=True)],
        ["校验方法", "对数据快照文件（snapshot.json）计算 SHA-256，应与上面的值一致"],
    ]
    _sheet(book, "说明", ["项目", "内容"], notes, [22, 100])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
