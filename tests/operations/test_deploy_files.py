"""deploy/prometheus and deploy/grafana, checked statically: alert rules and dashboard panels name only metrics
that the platform's /metrics really exports, every alert has a runbook section, every process is scraped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from deploy.embedded import build_platform
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "platform.json"
RUNBOOK = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\bcep_[a-z_]+\b")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    """Every sample name the embedded platform's /metrics can show: each registered family, with samples or not yet."""
    from prometheus_client import REGISTRY

    platform = build_platform(Settings(data_dir=tmp_path_factory.mktemp("metrics")))
    with TestClient(platform.app) as client:
        assert client.get("/metrics").status_code == 200
        families = [(family.name, family.type) for family in REGISTRY.collect()]
    names = set()
    for name, kind in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(kind, [""])
        names |= {name + suffix for suffix in suffixes}
    return names


def alert_rules() -> list[dict]:
    """The rules of deploy/prometheus/alerts.yml."""
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_name_existing_metrics(exported):
    rules = alert_rules()
    assert {"ParkedMessages", "MailFailed", "OutboxStale", "DeliveriesStuck", "JobNotRun"} <= {
        r["alert"] for r in rules
    }
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used or rule["alert"] == "TargetDown", rule["alert"]
        assert used <= exported, f"{rule['alert']} names metrics nobody exports: {used - exported}"


def test_every_alert_has_a_runbook_section():
    anchors = {
        re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("### ")
    }
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in anchors, f"docs/operations.md has no section for {rule['alert']}"


def test_prometheus_scrapes_every_api_and_worker_and_loads_the_rules():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    assert [Path(path).name for path in config["rule_files"]] == ["alerts.yml"]
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for service in ("intake", "evidence-storage", "review", "notification"):
        assert {f"{service}-api:8000", f"{service}-worker:8081"} <= targets


def test_dashboard_panels_query_existing_metrics(exported):
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 10
    used = {
        name for panel in panels for target in panel["targets"] for name in METRIC.findall(target["expr"])
    }
    assert used <= exported, f"the dashboard queries metrics nobody exports: {used - exported}"
    wanted = {
        "cep_http_requests_total",
        "cep_http_request_duration_seconds_bucket",
        "cep_outbox_backlog",
        "cep_outbox_oldest_unpublished_age_seconds",
        "cep_events_consumed_total",
        "cep_events_failed_total",
        "cep_events_retried_total",
        "cep_events_parked_total",
        "cep_event_handler_duration_seconds_bucket",
        "cep_deliveries",
        "cep_deliveries_oldest_queued_age_seconds",
        "cep_uploads_total",
        "cep_upload_bytes_total",
        "cep_job_last_success_timestamp_seconds",
    }
    assert wanted <= used
