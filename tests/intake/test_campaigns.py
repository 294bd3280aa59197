"""Loading campaigns through the API and the CLI: created once, idempotent, versioned and audited."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import pytest

from services.intake import cli
from services.intake.units import unit_id_for
from tests.intake.support import (
    HUAIBEI,
    ROOT,
    as_json,
    as_yaml,
    huaibei_data,
    huaibei_text,
    outbox,
    small_definition,
)

YAML = {"Content-Type": "application/yaml"}


def load(api, text: str, headers=YAML):
    """POST a definition; returns the response."""
    return api.post("/campaigns", content=text.encode("utf-8"), headers=headers)


def units_by_code(api, campaign_id: str, **params) -> dict:
    response = api.get(f"/campaigns/{campaign_id}/units", params=params)
    assert response.status_code == 200, response.text
    return {u["code"]: u for u in response.json()}


def test_loading_huaibei_creates_the_campaign_its_unit_tree_liaisons_and_events(api, ctx):
    response = load(api, huaibei_text())
    assert response.status_code == 201, response.text
    loaded = response.json()
    assert (loaded["outcome"], loaded["version"], loaded["units_created"], loaded["liaisons_designated"]) == (
        "created",
        1,
        17,
        16,
    )
    assert loaded["message"].startswith("已创建活动“淮北市网上信访宣传月”")
    campaign_id = loaded["campaign_id"]

    campaign = api.get("/campaigns/huaibei-2020").json()
    assert campaign["id"] == campaign_id and campaign["publicity_start"] == "2020-03-09"
    assert [m["code"] for m in campaign["definition"]["measures"]] == [f"M{n}" for n in range(1, 8)]

    units = units_by_code(api, campaign_id)
    root = units["HB"]
    assert root["id"] == unit_id_for(campaign_id, "HB")
    assert root["unit_path"] == f"/{root['id']}/" and not root["participates"]
    assert units["XSQ"]["unit_path"] == f"/{root['id']}/{units['XSQ']['id']}/"
    assert units["XSQ"]["liaison_email"] == "li.ming@example.org" and not units["XSQ"]["liaison_late"]
    assert units["JTJ"]["liaison_late"]  # named on 13 March, after the 12 March deadline

    published = outbox(ctx, "campaign.published")
    assert len(published) == 1
    payload = published[0].payload
    assert payload["version"] == 1 and len(payload["measures"]) == 7 and len(payload["topics"]) == 6
    assert {d["code"] for d in payload["deadlines"]} == {"liaison", "summary"}
    assert [m["code"] for m in payload["reference_materials"]] == ["A1", "A2", "A3", "A4"]
    # the keywords the text in M3, M5 and M6 photos should carry reach the evidence worker (OCR)
    reading = {m["code"]: (m["expects_text"], m["text_keywords"]) for m in payload["measures"]}
    assert [code for code, (expects, _) in reading.items() if expects] == ["M3", "M5", "M6"]
    assert "网上信访" in reading["M5"][1] and reading["M1"] == (False, [])
    assert len(outbox(ctx, "unit.registered")) == 17
    designated = outbox(ctx, "liaison.designated")
    assert len(designated) == 16
    assert [e.payload["unit_code"] for e in designated if e.payload["late"]] == ["JTJ"]
    assert all(e.payload["unit_path"].startswith(root["unit_path"]) for e in designated)


def test_loading_the_same_definition_again_changes_nothing(api, ctx):
    first = load(api, huaibei_text()).json()
    events = len(outbox(ctx))
    again = load(api, huaibei_text())
    assert (
        again.status_code == 200 and again.json()["outcome"] == "unchanged" and again.json()["version"] == 1
    )
    as_json_text = load(api, as_json(huaibei_data()), headers={"Content-Type": "application/json"})
    assert as_json_text.status_code == 200 and as_json_text.json()["outcome"] == "unchanged"
    assert "未变化" in again.json()["message"]
    assert len(outbox(ctx)) == events
    assert len(api.get(f"/campaigns/{first['campaign_id']}/versions").json()) == 1
    assert len(api.get(f"/campaigns/{first['campaign_id']}/changes").json()) == 1
    assert len(units_by_code(api, first["campaign_id"])) == 17


def test_a_changed_definition_is_a_new_version_and_is_audited(api, ctx):
    original = huaibei_text()
    campaign_id = load(api, original).json()["campaign_id"]
    data = huaibei_data()
    data["deadlines"][1]["due"] = "2020-04-07"
    data["units"] = [u for u in data["units"] if u["code"] != "HBJ"]
    data["units"].append(
        {
            "code": "TJJ",
            "name": "市统计局",
            "level": "member",
            "parent": "HB",
            "liaison": {"name": "秦岚", "email": "qin.lan@example.org", "designated_at": "2020-03-11"},
        }
    )
    next(u for u in data["units"] if u["code"] == "DJQ")["liaison"] = {
        "name": "钱坤",
        "email": "qian.kun@example.org",
    }
    before = len(outbox(ctx))

    response = load(api, as_yaml(data))
    assert response.status_code == 201, response.text
    loaded = response.json()
    assert (loaded["outcome"], loaded["version"]) == ("new_version", 2)
    assert (loaded["units_created"], loaded["units_retired"], loaded["liaisons_designated"]) == (1, 1, 2)
    assert "第 2 版" in loaded["message"]

    versions = api.get(f"/campaigns/{campaign_id}/versions").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["sha256"] != versions[1]["sha256"]
    assert api.get(f"/campaigns/{campaign_id}/versions/1").json()["source_text"] == original
    changes = api.get(f"/campaigns/{campaign_id}/changes").json()
    assert [c["action"] for c in changes] == ["created", "new_version"]
    assert changes[1]["actor"] == "王芳"  # the admin whose token loaded it
    summary = changes[1]["summary"]
    assert {"deadlines", "units"} <= set(summary["changed_sections"])
    assert summary["units"]["added"] == ["TJJ"] and summary["units"]["removed"] == ["HBJ"]
    assert summary["deadlines"]["changed"] == ["summary"]
    assert summary["previous_sha256"] == versions[0]["sha256"]

    new_events = outbox(ctx)[before:]
    assert [e.payload["version"] for e in new_events if e.type == "campaign.published"] == [2]
    assert [e.payload["code"] for e in new_events if e.type == "unit.registered"] == ["TJJ"]
    assert sorted(e.payload["unit_code"] for e in new_events if e.type == "liaison.designated") == [
        "DJQ",
        "TJJ",
    ]
    units = units_by_code(api, campaign_id, include_inactive=True)
    assert not units["HBJ"]["active"] and units["TJJ"]["id"] == unit_id_for(campaign_id, "TJJ")
    assert "HBJ" not in units_by_code(api, campaign_id)
    history = api.get(f"/units/{units['DJQ']['id']}/liaisons").json()
    assert [h["name"] for h in history] == ["王静", "钱坤"] and history[1]["source"] == "definition"


def test_reloading_keeps_a_liaison_the_unit_named_through_the_api(api, clock):
    campaign_id = load(api, huaibei_text()).json()["campaign_id"]
    unit = units_by_code(api, campaign_id)["XSQ"]
    assert (
        api.put(
            f"/units/{unit['id']}/liaison", json={"name": "刘洋", "email": "liu.yang@example.org"}
        ).status_code
        == 200
    )
    data = huaibei_data()
    data["description"] = "第二版说明"
    assert load(api, as_yaml(data)).json()["outcome"] == "new_version"
    assert api.get(f"/units/{unit['id']}").json()["liaison_name"] == "刘洋"


def test_a_refused_definition_answers_422_naming_fields_and_lines_and_writes_nothing(api, ctx):
    text = huaibei_text().replace(
        "parent: HB\n    liaison: {name: 孙浩", "parent: HQ\n    liaison: {name: 孙浩", 1
    )
    response = load(api, text)
    assert response.status_code == 422
    detail = response.json()
    assert (
        detail["code"] == "invalid_definition"
        and "units[5].parent" in detail["message"]
        and detail["message_en"]
    )
    assert detail["errors"][0]["field"] == "units[5].parent" and detail["errors"][0]["line"] > 1
    assert api.get("/campaigns").json() == [] and outbox(ctx) == []
    assert load(api, "\xff\xfe", headers=YAML).status_code == 422
    assert api.post("/campaigns", content=b"\xff\xfe\x00", headers=YAML).status_code == 400


def test_moving_a_unit_moves_its_subtree_and_the_paths_on_its_submissions(api):
    campaign_id = load(api, as_yaml(small_definition())).json()["campaign_id"]
    units = units_by_code(api, campaign_id)
    created = api.post(
        "/submissions", json={"unit_id": units["V1"]["id"], "measure_code": "M1", "title": "社区专题会议"}
    )
    assert created.status_code == 201, created.text
    data = small_definition()
    next(u for u in data["units"] if u["code"] == "S1")["parent"] = "D2"
    assert load(api, as_yaml(data)).json()["units_updated"] == 1
    moved = units_by_code(api, campaign_id)
    assert moved["V1"]["unit_path"] == f"{moved['D2']['unit_path']}{moved['S1']['id']}/{moved['V1']['id']}/"
    assert api.get(f"/submissions/{created.json()['id']}").json()["unit_path"] == moved["V1"]["unit_path"]
    subtree = api.get("/submissions", params={"subtree_of": moved["D2"]["id"]}).json()
    assert [s["id"] for s in subtree] == [created.json()["id"]]
    assert api.get("/submissions", params={"subtree_of": moved["D1"]["id"]}).json() == []


def test_cli_loads_idempotently_and_attaches_the_reference_materials(api, ctx):
    out = io.StringIO()
    assert cli.main(["load", str(HUAIBEI), "--actor", "测试"], ctx=ctx, out=out) == 0
    printed = out.getvalue()
    assert "已创建活动“淮北市网上信访宣传月”（huaibei-2020），第 1 版" in printed
    assert printed.count("已上传") == 4
    out = io.StringIO()
    assert cli.main(["load", str(HUAIBEI)], ctx=ctx, out=out) == 0
    assert "定义未变化" in out.getvalue() and out.getvalue().count("未变化") == 5

    listed = api.get("/campaigns/huaibei-2020/materials").json()
    assert [(m["code"], m["uploaded"]) for m in listed] == [
        ("A1", True),
        ("A2", True),
        ("A3", True),
        ("A4", True),
    ]
    download = api.get(listed[0]["download_path"].removeprefix("/intake"))
    assert download.status_code == 200
    assert download.content == (HUAIBEI.parent / "huaibei-2020" / "slogans.md").read_bytes()
    assert (
        "attachment" in download.headers["content-disposition"]
        and download.headers["x-content-type-options"] == "nosniff"
    )
    changes = api.get("/campaigns/huaibei-2020/changes").json()
    assert [c["action"] for c in changes] == ["created"] + ["material_attached"] * 4 and changes[0][
        "actor"
    ] == "测试"


def test_cli_refuses_a_broken_definition_in_chinese(tmp_path, ctx):
    broken = tmp_path / "broken.yaml"
    broken.write_text(huaibei_text().replace("  - code: M3\n", "  - \n", 1), encoding="utf-8")
    err = io.StringIO()
    assert cli.main(["load", str(broken)], ctx=ctx, out=io.StringIO(), err=err) == 2
    assert "measures[2].code（第" in err.getvalue() and "缺少必填字段" in err.getvalue()
    missing_file = tmp_path / "missing.yaml"
    missing_file.write_text(huaibei_text(), encoding="utf-8")  # its materials are not beside it
    err = io.StringIO()
    assert cli.main(["load", str(missing_file)], ctx=ctx, out=io.StringIO(), err=err) == 2
    assert "参考资料文件不存在" in err.getvalue()


@pytest.mark.integration  # starts processes
def test_cli_runs_as_a_module_with_the_service_settings(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    env.pop("BLOB_BACKEND", None)
    command = [sys.executable, "-m", "services.intake.cli", "load", str(HUAIBEI)]
    first = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "已创建活动" in first.stdout and (tmp_path / "intake.db").exists()
    second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "定义未变化，仍为第 1 版" in second.stdout


def test_materials_attach_replace_and_refuse(api, ctx):
    campaign_id = load(api, as_yaml(small_definition())).json()["campaign_id"]
    url = f"/campaigns/{campaign_id}/materials/N1"
    assert (
        api.put(url, params={"filename": "通知.txt"}, content=b"text").status_code == 422
    )  # a new material needs a title
    first = api.put(url, params={"filename": "通知.txt", "title": "补充通知"}, content="第一版".encode())
    assert first.status_code == 201 and first.json()["uploaded"] and first.json()["declared"] is False
    same = api.put(url, params={"filename": "通知.txt"}, content="第一版".encode())
    assert same.status_code == 200 and same.json()["sha256"] == first.json()["sha256"]
    replaced = api.put(url, params={"filename": "通知.txt"}, content="第二版".encode())
    assert replaced.status_code == 201 and replaced.json()["sha256"] != first.json()["sha256"]
    assert len(list(ctx.blobs.list_keys(f"reference/{campaign_id}/N1/"))) == 1  # the replaced file is gone
    assert api.get(f"{url}/content").content == "第二版".encode()
    assert api.put(url, params={"filename": "run.exe"}, content=b"MZ").status_code == 415
    assert api.put(url, params={"filename": "空.txt"}, content=b"").status_code == 400
    assert api.get(f"/campaigns/{campaign_id}/materials/NOPE/content").status_code == 404
    actions = [c["action"] for c in api.get(f"/campaigns/{campaign_id}/changes").json()]
    assert actions == ["created", "material_attached", "material_replaced"]


def test_definition_changes_keep_the_first_loads_unit_ids(api):
    data = small_definition()
    campaign_id = load(api, as_yaml(data)).json()["campaign_id"]
    first = {code: u["id"] for code, u in units_by_code(api, campaign_id).items()}
    changed = copy.deepcopy(data)
    changed["name"] = "示例宣传月（修订）"
    load(api, as_json(changed), headers={"Content-Type": "application/json"})
    assert {code: u["id"] for code, u in units_by_code(api, campaign_id).items()} == first
