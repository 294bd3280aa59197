"""The campaign definition format: the shipped Huaibei definition, and broken ones refused by field and line."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from services.intake.definition import DefinitionInvalid, canonical_json, definition_sha256, parse_definition
from tests.intake.support import as_json, as_yaml, huaibei_data, huaibei_text


def refused(text: str, fmt: str | None = None) -> list:
    """The issues a definition is refused with (fails the test if it is accepted)."""
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(text, fmt=fmt)
    return caught.value.issues


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing needle."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def test_huaibei_definition_encodes_the_brief():
    d = parse_definition(huaibei_text())
    assert d.code == "huaibei-2020" and d.name == "淮北市网上信访宣传月"
    assert [m.code for m in d.measures] == [f"M{n}" for n in range(1, 8)]
    assert [m.name for m in d.measures][:2] == ["专题会议", "网上信访宣传角"]
    assert all(m.evidence.min_count >= 1 and m.evidence.kinds for m in d.measures)
    assert [t.code for t in d.topics] == [f"T{n}" for n in range(1, 7)]
    assert (d.windows.publicity.start, d.windows.publicity.end) == (date(2020, 3, 9), date(2020, 3, 31))
    assert (d.windows.inspection.start, d.windows.inspection.end) == (date(2020, 3, 21), date(2020, 3, 31))
    # "by 12 March" / "by 5 April": the end of that day in Beijing, kept in UTC
    assert d.deadline_for("liaison").due == datetime(2020, 3, 12, 15, 59, 59, tzinfo=UTC)
    assert d.deadline_for("summary_report").due == datetime(2020, 4, 5, 15, 59, 59, tzinfo=UTC)
    assert d.deadline_for("measure:M7").code == "summary"
    counties = sorted(u.name for u in d.units if u.level == "county")
    assert counties == sorted(["相山区信访局", "杜集区信访局", "烈山区信访局", "濉溪县信访局"])
    members = [u for u in d.units if u.level == "member"]
    assert len(members) >= 10
    root = next(u for u in d.units if u.parent is None)
    assert root.level == "city" and not root.participates
    liaisons = [u.liaison for u in d.units if u.participates]
    assert all(liaison and liaison.email.endswith("@example.org") for liaison in liaisons)
    assert [m.code for m in d.materials] == ["A1", "A2", "A3", "A4"]
    assert (
        d.rubric.total == 100
        and d.rubric.supervision_deductions.interview > d.rubric.supervision_deductions.phone
    )


def test_same_content_has_the_same_hash_in_yaml_json_or_another_layout():
    data = huaibei_data()
    original = definition_sha256(parse_definition(huaibei_text()))
    assert definition_sha256(parse_definition(as_json(data))) == original
    assert definition_sha256(parse_definition(as_yaml(data))) == original
    changed = copy.deepcopy(data)
    changed["measures"][0]["weight"] = 2
    assert definition_sha256(parse_definition(as_yaml(changed))) != original


def test_missing_measure_code_names_the_field_and_line():
    text = huaibei_text().replace("  - code: M3\n", "  - \n", 1)
    issues = refused(text)
    assert [(i.field, i.line) for i in issues] == [("measures[2].code", line_of(text, "name: 宣传橱窗"))]
    assert issues[0].message == "缺少必填字段"


def test_deadline_before_the_window_is_refused():
    text = huaibei_text().replace("due: 2020-03-12", "due: 2020-03-01", 1)
    issues = refused(text)
    assert [(i.field, i.line) for i in issues] == [("deadlines[0].due", line_of(text, "due: 2020-03-01"))]
    assert "早于宣传期开始" in issues[0].message and "before the publicity window" in issues[0].message_en


def test_unknown_parent_unit_is_refused():
    text = huaibei_text().replace(
        "parent: HB\n    liaison: {name: 孙浩", "parent: HQ\n    liaison: {name: 孙浩", 1
    )
    issues = refused(text)
    assert [(i.field, i.line) for i in issues] == [("units[5].parent", line_of(text, "parent: HQ"))]
    assert "HQ" in issues[0].message


@pytest.mark.parametrize(
    "section, old, new",
    [
        ("measures", "  - code: M7\n", "  - code: M6\n"),
        ("topics", "{code: T6,", "{code: T5,"),
        ("units", "  - code: HBJ\n", "  - code: JTJ\n"),
        ("deadlines", "  - code: summary\n", "  - code: liaison\n"),
    ],
)
def test_duplicate_codes_are_refused(section, old, new):
    text = huaibei_text().replace(old, new, 1)
    duplicates = [i for i in refused(text) if "重复" in i.message]
    assert len(duplicates) == 1
    assert duplicates[0].field.startswith(f"{section}[") and duplicates[0].field.endswith("].code")
    assert duplicates[0].line == line_of(text, new.strip(), 2)  # the second occurrence


def test_json_errors_name_the_field_and_line_too():
    data = huaibei_data()
    del data["measures"][1]["name"]
    text = as_json(data)
    issues = refused(text)
    assert [i.field for i in issues] == ["measures[1].name"]
    assert issues[0].line == line_of(text, '"code": "M2"') - 1  # the item's opening brace


def test_syntax_errors_give_the_line():
    text = huaibei_text().replace("name: 淮北市网上信访宣传月\n", "name: [淮北市网上信访宣传月\n", 1)
    issues = refused(text)
    assert len(issues) == 1 and issues[0].line is not None and "YAML" in issues[0].message
    json_issues = refused('{"code": "x",\n "name": }', fmt="json")
    assert json_issues[0].line == 2 and "JSON" in json_issues[0].message


@pytest.mark.parametrize(
    "old, new, field, words",
    [
        ("organiser:", "organizer:", "organizer", "不认识的字段"),
        ("email: li.ming@example.org", "email: li.ming-at-example.org", "units[1].liaison.email", "电子邮箱"),
        ("timezone: Asia/Shanghai", "timezone: Mars/Olympus", "timezone", "时区"),
        ("start: 2020-03-09", "start: 2020-03-32", "windows.publicity.start", "日期"),
        (
            "min_count: 1, kinds: [photo]}",
            "min_count: 1, kinds: [photograph]}",
            "measures[2].evidence.kinds[0]",
            "允许的范围",
        ),
    ],
)
def test_field_errors_in_chinese(old, new, field, words):
    text = huaibei_text().replace(old, new, 1)
    issues = refused(text)
    assert any(i.field == field and words in i.message and i.line == line_of(text, new) for i in issues), (
        issues
    )


def test_levels_must_descend_the_tree():
    text = huaibei_text().replace(
        "level: member\n    parent: HB\n    liaison: {name: 孙浩",
        "level: city\n    parent: HB\n    liaison: {name: 孙浩",
        1,
    )
    issues = refused(text)
    assert [i.field for i in issues] == ["units[5].level"]


def test_rubric_parts_must_add_up_and_name_known_deadlines():
    text = (
        huaibei_text()
        .replace("    points: 60 ", "    points: 50 ", 1)
        .replace("deadlines: [liaison, summary]", "deadlines: [liaison, final]")
    )
    issues = refused(text)
    assert sorted(i.field for i in issues) == ["rubric.timeliness.deadlines[1]", "rubric.total"]


def test_duplicate_keys_and_a_non_mapping_document_are_refused():
    text = huaibei_text().replace(
        "timezone: Asia/Shanghai\n", "timezone: Asia/Shanghai\ntimezone: Asia/Shanghai\n", 1
    )
    issues = refused(text)
    assert issues[0].field == "timezone" and issues[0].line == line_of(text, "timezone:", 2)
    assert refused("- just\n- a list\n")[0].line == 1


def test_material_files_must_stay_inside_the_definition_folder():
    data = huaibei_data()
    data["materials"][0]["file"] = "../../etc/passwd"
    issues = refused(as_yaml(data))
    assert [i.field for i in issues] == ["materials[0].file"]


def test_measures_may_name_the_keywords_their_photos_should_show():
    d = parse_definition(huaibei_text())
    with_text = {m.code: m.text for m in d.measures if m.text is not None}
    assert sorted(with_text) == ["M3", "M5", "M6"]
    for rules in with_text.values():
        assert rules.expected and {"网上信访", "阳光信访", "信访宣传", "wsxf.gov.cn"} <= set(rules.keywords)
    data = huaibei_data()
    data["measures"][0]["text"] = {"keywords": [" 专题会议 "], "expected": False}
    meeting = parse_definition(as_yaml(data)).measures[0].text
    assert meeting is not None and (meeting.keywords, meeting.expected) == (["专题会议"], False)
    data["measures"][0]["text"] = {"keywords": "网上信访"}
    assert refused(as_yaml(data))[0].loc[:3] == ("measures", 0, "text")
    data["measures"][0]["text"] = {"words": ["网上信访"]}
    assert refused(as_yaml(data))


def test_a_definition_without_text_keywords_loads_as_before_with_the_same_hash():
    data = huaibei_data()
    for measure in data["measures"]:
        measure.pop("text", None)
    d = parse_definition(as_yaml(data))
    assert all(m.text is None for m in d.measures)
    # the hash of a definition written before keywords existed does not change: no "text": null in it
    assert '"text"' not in canonical_json(d)
    with_keywords = definition_sha256(parse_definition(huaibei_text()))
    assert definition_sha256(d) != with_keywords
