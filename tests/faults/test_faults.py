"""Real faults against the distributed platform, each in the middle of a few submissions (create, upload a photo,
approve), then an audit: nothing lost, nothing stuck, nothing orphaned, duplicates only under one Message-ID and
no more than the SMTP conversations in flight at a crash. `python -m bench.faults` runs them with larger loads."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest

from tests.evidence_storage import media
from tests.faults.harness import COMPLETE_LEASE_S, SCENARIOS, Flow, poison_count, run_scenario

pytestmark = [pytest.mark.fault, pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.timeout(900)]
LOAD = 6
IN_FLIGHT_AT_A_CRASH = 1  # one SMTP conversation per notification worker at a time
OCTETS = {"Content-Type": "application/octet-stream"}


def _assert_nothing_lost(outcome) -> None:
    audit = outcome.audit
    errors = [flow.error for flow in outcome.flows if flow.error]
    assert not errors, errors
    assert audit.approved == len(outcome.flows) and audit.false_404 == 0
    assert (audit.lost, audit.expired_leases, audit.unpublished, audit.unconsumed, audit.queued) == (
        0,
        0,
        0,
        0,
        0,
    ), audit
    assert (audit.orphaned, audit.multipart, audit.inconsistent) == (0, 0, 0), audit
    assert audit.duplicated_other_id == 0 and audit.duplicated <= IN_FLIGHT_AT_A_CRASH, audit


@pytest.mark.parametrize("name", ["kill-each", "broker", "smtp", "s3"])
def test_a_fault_mid_flow_loses_nothing(fault_world, name):
    _assert_nothing_lost(run_scenario(fault_world, SCENARIOS[name], LOAD))


def test_a_notification_worker_killed_right_after_claiming_a_batch_loses_no_mail(fault_world):
    resends_before = fault_world.audit([], settle_s=0)[0].resends
    outcome = run_scenario(fault_world, SCENARIOS["kill-mailer"], LOAD)
    _assert_nothing_lost(outcome)
    assert outcome.audit.resends > resends_before  # the killed worker's batch went out once its lease expired


def test_poison_messages_are_parked_and_the_queues_keep_flowing(fault_world):
    _, parked_before = fault_world._queue_depths()
    outcome = run_scenario(fault_world, SCENARIOS["poison"], 3)
    _assert_nothing_lost(outcome)
    assert outcome.audit.parked - parked_before == poison_count()


def test_an_upload_session_survives_a_kill_9_of_the_evidence_api_in_the_middle_of_a_chunk(fault_world):
    """The liaison's resumable upload (the console's only upload path) into S3: the evidence API dies while a chunk
    streams in, comes back, and the session goes on from what the server had; no part or object is left over."""
    world, flow, mib = fault_world, Flow("upload-session"), 1024 * 1024
    routes = world.routes
    video = media.mp4(bytes((7 * i) % 256 for i in range(256)) * (52 * 1024), seconds=2.0)  # ~13 MiB
    chunk = 5 * mib
    url = _video_session(world, flow, len(video))
    world.call(flow, "PUT", url, ok=(200,), params={"offset": 0}, content=video[:chunk], headers=OCTETS)

    streaming = threading.Event()

    def slow_second_chunk():
        """The second chunk a MiB at a time, slowly enough to be cut in the middle."""
        for start in range(chunk, 2 * chunk, mib):
            if start > chunk:
                streaming.set()
                time.sleep(0.5)
            yield video[start : start + mib]

    cut: list[BaseException] = []

    def send() -> None:
        try:
            world.client.put(url, params={"offset": chunk}, content=slow_second_chunk(), headers=OCTETS)
        except httpx.HTTPError as exc:
            cut.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    assert streaming.wait(30), "the second chunk never started"
    world.kill_and_restart("evidence_storage-api", down_s=0.5)
    sender.join(60)
    assert cut, "the chunk was not cut by the kill"
    world.wait(lambda: world.api_ready("evidence_storage") == 200, 60, "the evidence API back")

    offset = int(world.call(flow, "HEAD", url, ok=(200,)).headers["Upload-Offset"])
    assert offset == chunk  # what the server had before the kill; the cut chunk counts for nothing
    while offset < len(video):
        sent = world.call(
            flow,
            "PUT",
            url,
            ok=(200,),
            params={"offset": offset},
            content=video[offset : offset + chunk],
            headers=OCTETS,
        )
        offset = sent.json()["received"]
    evidence = world.call(flow, "POST", f"{url}/complete", ok=(201,)).json()
    assert (evidence["size"], evidence["sha256"]) == (len(video), hashlib.sha256(video).hexdigest())
    stored = world.call(flow, "GET", f"{routes['evidence']}/evidence/{evidence['id']}/content", ok=(200,))
    assert hashlib.sha256(stored.content).hexdigest() == evidence["sha256"]
    audit, _ = world.audit([], settle_s=30)
    assert (audit.multipart, audit.orphaned) == (0, 0), audit


def test_an_upload_completion_cut_by_a_kill_9_of_the_evidence_api_is_taken_over_by_the_retry(fault_world):
    """The evidence API dies while it completes a session (here: waiting on a store that stopped answering); the
    session is not stuck: once the completion's lease ends, the client's retry completes it with the bytes sent."""
    world, flow, mib = fault_world, Flow("upload-completion"), 1024 * 1024
    routes = world.routes
    video = media.mp4(bytes((5 * i) % 256 for i in range(256)) * (40 * 1024), seconds=2.0)  # ~10 MiB
    url = _video_session(world, flow, len(video))
    for offset in range(0, len(video), 5 * mib):
        world.call(
            flow,
            "PUT",
            url,
            ok=(200,),
            params={"offset": offset},
            content=video[offset : offset + 5 * mib],
            headers=OCTETS,
        )

    cut: list[BaseException] = []

    def complete() -> None:
        try:
            world.client.post(f"{url}/complete", timeout=60)
        except httpx.HTTPError as exc:
            cut.append(exc)

    world.s3_proxy.set("blackhole")  # the completion waits on the store: a window to kill it in
    try:
        completer = threading.Thread(target=complete)
        completer.start()
        world.wait(
            lambda: world.client.get(url).json()["state"] == "completing", 30, "the completion to begin"
        )
        leased_until = time.monotonic() + COMPLETE_LEASE_S  # a little after the lease the server set
        world.cluster.kill9("evidence_storage-api")
        completer.join(60)
    finally:
        world.s3_proxy.set("pass")
    assert cut, "the completion was not cut by the kill"
    world.cluster.respawn("evidence_storage-api")
    world.wait(lambda: world.api_ready("evidence_storage") == 200, 60, "the evidence API back")

    retried = world.client.post(f"{url}/complete")
    if (
        time.monotonic() < leased_until - 1
    ):  # the dead completion's lease lasts (a slow restart may outlive it)
        assert retried.status_code == 409 and retried.json()["code"] == "session_busy", retried.text
    world.wait(
        lambda: world.client.post(f"{url}/complete").status_code in (200, 201),
        COMPLETE_LEASE_S + 60,
        "the retry to take the completion over",
    )
    evidence = world.call(flow, "GET", url, ok=(200,)).json()
    assert evidence["state"] == "completed"
    stored = world.call(
        flow, "GET", f"{routes['evidence']}/evidence/{evidence['evidence_id']}/content", ok=(200,)
    )
    assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(video).hexdigest()
    audit, _ = world.audit([], settle_s=30)
    assert (audit.multipart, audit.orphaned) == (0, 0), audit


def _video_session(world, flow: Flow, size: int) -> str:
    """A new submission of a new unit and a chunked session for a video of that size on it; the session's URL."""
    routes = world.routes
    submission_id, grant = world.new_submission(flow, world.new_unit(), "横幅视频")
    session = world.call(
        flow,
        "POST",
        f"{routes['evidence']}/submissions/{submission_id}/upload-sessions",
        ok=(201,),
        json={"mode": "chunked", "filename": "横幅.mp4", "size": size},
        headers=grant,
    ).json()
    return f"{routes['evidence']}/upload-sessions/{session['id']}"
