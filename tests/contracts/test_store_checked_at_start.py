"""A misconfigured blob store stops a service at start with a message naming the setting, not at the first write."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.servers import free_port

pytestmark = pytest.mark.integration  # each test starts a service process


def _start(service: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "BUS_BACKEND": "memory",
        "PORT": str(free_port()),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}", "api"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("service", ["intake", "evidence_storage", "review"])
def test_an_invalid_bucket_name_refuses_to_start(service, tmp_path):
    started = _start(
        service,
        tmp_path,
        BLOB_BACKEND="s3",
        S3_BUCKET="Campaign_Evidence",
        S3_ENDPOINT=f"127.0.0.1:{free_port()}",
    )
    assert started.returncode != 0
    assert (
        "无法启动" in started.stderr
        and "S3_BUCKET 'Campaign_Evidence' is not a valid bucket name" in started.stderr
    )


def test_an_unwritable_blob_folder_refuses_to_start(tmp_path):
    blocker = tmp_path / "blobs"
    blocker.write_text("a file where the folder should be")
    started = _start("evidence_storage", tmp_path, BLOB_BACKEND="folder", BLOB_DIR=str(blocker / "store"))
    assert started.returncode != 0
    assert "无法启动" in started.stderr and "BLOB_DIR" in started.stderr
