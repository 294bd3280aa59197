"""Upload benchmark: one large evidence file through the evidence API into S3 and into the folder store.

    python -m bench.upload [--size-mib 1024] [--part-mib 8] [--session-chunk-mib 8] [--sample-ms 50]
                           [--extra-paths session,multipart]

In one run it measures:
  a) API → S3: moto's standalone S3 server (tests/servers.py, run in a child process so its CPU does not
     share this script's GIL) and the evidence API as its own OS process (`python -m services.evidence_storage
     api`, BLOB_BACKEND=s3, SQLite under a temporary folder). The bytes are streamed with httpx as a chunked
     generator body to POST /submissions/{id}/evidence while psutil samples the API process's RSS.
  b) API → folder store: the same with BLOB_BACKEND=folder.
  c) raw minio SDK put_object(length=-1, part_size=--part-mib) of the same bytes to the same moto server, in this
     process, as the yardstick for (a); and a raw file write + fsync as the yardstick for (b).
  d) --extra-paths, into both stores: `session` (the console's resumable upload: POST /upload-sessions, PUT
     /upload-sessions/{id}?offset=… in --session-chunk-mib chunks, POST …/complete) and `multipart` (one
     streamed multipart/form-data body). Every API path gets a ratio to the raw path of its store.
The body is a well-formed MP4 (ftyp, a moov with an mvhd, then one mdat box) whose media data is
deterministic pseudo-random bytes: a random 1 MiB block, rotated and stamped with a counter for every MiB, so
it is neither compressible nor ever held whole in memory. Its SHA-256 is computed while generating; every
stored object is read back from its store and hashed. The API only takes uploads for submissions it learned
of from intake's events; to run without the other services this script inserts the KnownSubmission row
straight into the API's SQLite database after the API created its tables (said so in the output). The
requests carry an admin token signed with the run's own key pair (AUTH_* in the API's environment). One
small warm-up upload precedes each measured one, so the idle baseline already includes lazily imported code
and the bucket check.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import random
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import MIB, RssSampler, ServiceProcess, idle_rss, print_table, run_cli, staff_credentials
from deploy.processes import cluster_env, free_port
from deploy.samples import free_box, video_clip

BLOCK = MIB
ROTATE_STEP = 40503  # odd and unrelated to BLOCK, so every MiB starts at a different offset of the block


# 2020-03-09 10:00 Beijing time, in seconds since 1904-01-01 UTC (the MP4 epoch)
def mp4_header(total_size: int) -> bytes:
    """A real (ffmpeg-made) clip plus the header of a 'free' box filling the rest: the evidence service probes
    every video with ffmpeg and refuses what it cannot decode, so the benchmark's bytes must be a playable MP4."""
    clip = video_clip(2.0, (320, 240), created="2020-03-09T02:00:00Z")
    rest = total_size - len(clip)
    if rest < 16:
        raise ValueError(f"an MP4 file here needs more than {len(clip) + 16} bytes")
    return clip + (free_box(rest - 8) if rest <= 0xFFFFFFFF else free_box(rest - 16))


class PatternSource:
    """A deterministic, incompressible byte stream of a given size, generated chunk by chunk."""

    def __init__(self, size: int, seed: int = 20200305) -> None:
        block = random.Random(seed).randbytes(BLOCK)
        self._doubled = memoryview(block + block)
        self.size = size
        self._header = mp4_header(size)
        self.sha256: str | None = None

    def chunks(self) -> Iterator[bytes]:
        """Yield the bytes in 1 MiB chunks; sha256 is set once the last one was taken."""
        digest = hashlib.sha256()
        sent, index = 0, 0
        while sent < self.size:
            stamp = self._header if index == 0 else index.to_bytes(8, "big")
            offset = (index * ROTATE_STEP) % BLOCK
            chunk = b"".join((stamp, self._doubled[offset + len(stamp) : offset + BLOCK]))[: self.size - sent]
            digest.update(chunk)
            sent += len(chunk)
            index += 1
            yield chunk
        self.sha256 = digest.hexdigest()

    def reader(self) -> ChunkReader:
        """The same bytes as a file-like object whose read(n) returns n bytes until the end."""
        return ChunkReader(self.chunks())


class ChunkReader:
    """read(n) over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, bytearray()

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all the rest for n < 0); fewer only at the end."""
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        take = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data


@dataclass
class Result:
    """One measured upload."""

    name: str
    seconds: float
    size: int
    sha_generated: str
    sha_stored: str
    rss_baseline: int | None = None
    rss_peak: int | None = None
    rss_after: int | None = None

    @property
    def mib_s(self) -> float:
        """Throughput in MiB/s."""
        return self.size / MIB / self.seconds

    @property
    def sha_ok(self) -> bool:
        """Whether the stored bytes hash like the generated ones."""
        return self.sha_generated == self.sha_stored


def _moto_child(conn) -> None:
    """Child process body: run tests/servers.py's moto server until the parent says stop."""
    from tests.servers import moto_s3_server

    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C reaches the parent, which stops this child after cleanup

    with moto_s3_server() as s3:
        conn.send((s3.endpoint, s3.bucket))
        conn.recv()


class MotoProcess:
    """tests/servers.py's moto S3 server in a child process."""

    def __enter__(self):
        from tests.servers import MotoS3

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_moto_child, args=(child,), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("moto S3 server did not start")
        endpoint, bucket = self._conn.recv()
        return MotoS3(endpoint=endpoint, bucket=bucket)

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def hash_chunks(chunks) -> str:
    """SHA-256 of an iterable of byte chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def insert_known_submission(database_url: str) -> tuple[str, str]:
    """Make a submission known to the evidence service by writing its projection row directly; returns (unit, submission)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from services.evidence_storage.models import KnownSubmission

    unit_id, submission_id = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.add(
                KnownSubmission(
                    id=submission_id, unit_id=unit_id, measure_code="M1", version=1, state="submitted"
                )
            )
    finally:
        engine.dispose()
    return unit_id, submission_id


def api_upload(api: ServiceProcess, submission_id: str, body, filename: str, headers: dict[str, str]) -> dict:
    """POST one raw body to the evidence API; returns the created evidence."""
    with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as client:
        response = client.post(
            f"{api.url}/submissions/{submission_id}/evidence",
            params={"filename": filename},
            content=body,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
    if response.status_code != 201:
        raise RuntimeError(
            f"upload failed with {response.status_code}: {response.text[:500]}\n{api.log()[-3000:]}"
        )
    return response.json()


def session_upload(
    api: ServiceProcess,
    submission_id: str,
    body,
    filename: str,
    headers: dict[str, str],
    size: int,
    chunk: int = 8 * MIB,
) -> dict:
    """Upload through a resumable session: create, PUT chunks at their offsets, complete (8 MiB chunks, as the
    console's uploader.js sends them)."""
    started = time.perf_counter()
    with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as client:
        created = client.post(
            f"{api.url}/submissions/{submission_id}/upload-sessions",
            headers=headers,
            json={"mode": "chunked", "filename": filename, "size": size},
        )
        if created.status_code != 201:
            raise RuntimeError(f"session create failed with {created.status_code}: {created.text[:500]}")
        session_id, offset, pending = created.json()["id"], 0, bytearray()
        for piece in [*body, b""]:
            pending += piece
            while len(pending) >= chunk or (not piece and pending):
                data, pending = bytes(pending[:chunk]), pending[chunk:]
                response = client.put(
                    f"{api.url}/upload-sessions/{session_id}",
                    params={"offset": offset},
                    content=data,
                    headers={**headers, "Content-Type": "application/octet-stream"},
                )
                if response.status_code != 200:
                    raise RuntimeError(
                        f"chunk at {offset} failed with {response.status_code}: {response.text[:500]}"
                    )
                offset += len(data)
        chunks_done = time.perf_counter()
        done = client.post(f"{api.url}/upload-sessions/{session_id}/complete", headers=headers)
        print(
            f"    session: chunks sent in {chunks_done - started:.2f} s, complete took "
            f"{time.perf_counter() - chunks_done:.2f} s",
            flush=True,
        )
    if done.status_code != 201:
        raise RuntimeError(f"complete failed with {done.status_code}: {done.text[:500]}\n{api.log()[-3000:]}")
    return done.json()


def multipart_upload(
    api: ServiceProcess, submission_id: str, body, filename: str, headers: dict[str, str], size: int
) -> dict:
    """Upload as a streamed multipart/form-data body with one file part."""
    boundary = uuid.uuid4().hex

    def form():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from body
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(timeout=httpx.Timeout(600, connect=10)) as client:
        response = client.post(
            f"{api.url}/submissions/{submission_id}/evidence",
            content=form(),
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    if response.status_code != 201:
        raise RuntimeError(
            f"multipart upload failed with {response.status_code}: {response.text[:500]}\n{api.log()[-3000:]}"
        )
    created = response.json()
    return created[0] if isinstance(created, list) else created


def measure_api(
    name: str,
    size: int,
    env: dict[str, str],
    work: Path,
    sample_s: float,
    read_back: Callable[[dict], str],
    path: str = "raw",
    session_chunk: int = 8 * MIB,
) -> Result:
    """Start the evidence API with env, warm it up, stream size bytes through it while sampling RSS."""
    work.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{work}/evidence_storage.db"
    auth_env, headers = staff_credentials()
    limit = str(size + 64 * MIB)
    env = cluster_env(
        {
            **env,
            **auth_env,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(work),
            "EVIDENCE_MAX_BYTES": limit,
            "EVIDENCE_VIDEO_MAX_BYTES": limit,
        }
    )
    api = ServiceProcess("evidence_storage", "api", env, work / "evidence-api.log", port=free_port())
    try:
        api.start()
        _, submission_id = insert_known_submission(database_url)
        api_upload(api, submission_id, PatternSource(256 * 1024).chunks(), "warmup.mp4", headers)
        baseline = idle_rss(api.proc.pid)
        source = PatternSource(size)
        with RssSampler(api.proc.pid, interval=sample_s) as sampler:
            started = time.perf_counter()
            if path == "session":
                evidence = session_upload(
                    api, submission_id, source.chunks(), "bench.mp4", headers, size, session_chunk
                )
            elif path == "multipart":
                evidence = multipart_upload(api, submission_id, source.chunks(), "bench.mp4", headers, size)
            else:
                evidence = api_upload(api, submission_id, source.chunks(), "bench.mp4", headers)
            seconds = time.perf_counter() - started
        after = idle_rss(api.proc.pid)
        if evidence["sha256"] != source.sha256 or evidence["size"] != size:
            raise RuntimeError(
                f"API reported {evidence['size']} bytes, sha256 {evidence['sha256']}; expected {size}, {source.sha256}"
            )
        stored = read_back(evidence)
    finally:
        api.stop()
    return Result(name, seconds, size, source.sha256, stored, baseline, sampler.peak, after)


def measure_raw_s3(s3, size: int, part_size: int) -> Result:
    """put_object of the same bytes straight to moto with the minio SDK, in this process."""
    client = s3.client()
    key = f"raw/{uuid.uuid4()}.mp4"
    source = PatternSource(size)
    started = time.perf_counter()
    client.put_object(
        bucket_name=s3.bucket,
        object_name=key,
        data=source.reader(),
        length=-1,
        part_size=part_size,
        content_type="video/mp4",
    )
    seconds = time.perf_counter() - started
    stored = read_s3(s3, key)
    return Result("raw minio put_object → S3 (moto)", seconds, size, source.sha256, stored)


def measure_raw_file(folder: Path, size: int) -> Result:
    """Write the same bytes to a file with fsync, in this process (the folder store's yardstick)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "raw.mp4"
    source = PatternSource(size)
    started = time.perf_counter()
    with path.open("wb") as out:
        for chunk in source.chunks():
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    seconds = time.perf_counter() - started
    stored = hash_file(path)
    path.unlink()
    return Result("raw file write + fsync", seconds, size, source.sha256, stored)


def read_s3(s3, key: str) -> str:
    """Hash an object read back from S3, then delete it (moto keeps it in memory or temp files)."""
    client = s3.client()
    response = client.get_object(bucket_name=s3.bucket, object_name=key)
    try:
        sha = hash_chunks(response.stream(MIB))
    finally:
        response.close()
        response.release_conn()
    client.remove_object(bucket_name=s3.bucket, object_name=key)
    return sha


def s3_evidence_key(s3, evidence: dict) -> str:
    """The object key the API stored an evidence file under (found by listing its submission's prefix)."""
    prefix = f"evidence/{evidence['unit_id']}/{evidence['submission_id']}/{evidence['id']}"
    keys = [
        o.object_name for o in s3.client().list_objects(bucket_name=s3.bucket, prefix=prefix, recursive=True)
    ]
    if len(keys) != 1:
        raise RuntimeError(f"expected one object under {prefix}, found {keys}")
    return keys[0]


def hash_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    with path.open("rb") as handle:
        return hash_chunks(iter(lambda: handle.read(MIB), b""))


def folder_evidence_path(blob_dir: Path, evidence: dict) -> Path:
    """The file the folder store wrote an evidence file to (not its preview, under previews/)."""
    found = list((blob_dir / "objects" / "evidence").rglob(f"{evidence['id']}.*"))
    found = [p for p in found if not p.name.endswith(".meta")]
    if len(found) != 1:
        raise RuntimeError(f"expected one file for evidence {evidence['id']}, found {found}")
    return found[0]


def report(results: list[Result], size: int, part_size: int) -> None:
    """Print the figures."""
    mib = lambda n: f"{n / MIB:,.1f}" if n is not None else "-"  # noqa: E731
    rows = [
        [
            r.name,
            f"{r.size / MIB:,.0f}",
            f"{r.seconds:,.2f}",
            f"{r.mib_s:,.1f}",
            mib(r.rss_baseline),
            mib(r.rss_peak),
            mib(r.rss_peak - r.rss_baseline) if r.rss_peak is not None else "-",
            mib(r.rss_after),
            "sha256 ok" if r.sha_ok else "SHA256 MISMATCH",
        ]
        for r in results
    ]
    print_table(
        f"Evidence upload, {size / MIB:,.0f} MiB as a well-formed MP4 with incompressible media data, S3 part size {part_size / MIB:g} MiB",
        [
            "path",
            "MiB",
            "seconds",
            "MiB/s",
            "API RSS idle MiB",
            "peak MiB",
            "growth MiB",
            "after MiB",
            "check",
        ],
        rows,
    )
    by_name = {r.name: r for r in results}
    raw_s3, raw_file = by_name["raw minio put_object → S3 (moto)"], by_name["raw file write + fsync"]
    ratios = [
        [
            f"{r.name} / {(raw_s3 if 'S3' in r.name else raw_file).name}",
            f"{r.mib_s / (raw_s3 if 'S3' in r.name else raw_file).mib_s:.2f}",
        ]
        for r in results
        if r.name.startswith("evidence API")
    ]
    print_table("Throughput ratios (1.00 = as fast as the raw path)", ["comparison", "ratio"], ratios)
    print(
        "\nNotes: the submission was made known to the API by inserting its KnownSubmission row directly into the API's\n"
        "SQLite database (no intake service or bus in this benchmark). RSS is sampled from the API process only;\n"
        "'growth' is peak minus the idle median after one small warm-up upload; 'after' is the idle median once the\n"
        "upload returned. Every stored object was read back from its store and hashed. moto keeps objects in\n"
        "memory and temporary files and joins all parts in memory on completion, so both S3 rows measure moto as\n"
        "much as the client; compare them with each other, not with a real S3 or MinIO."
    )
    print(
        f"Machine: {os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f} when the run ended "
        "(other work on the machine makes every figure slower)."
    )
    if all(r.sha_ok for r in results):
        print("sha256 ok")


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="size of the uploaded file in MiB (default 1024)"
    )
    parser.add_argument(
        "--part-mib",
        type=int,
        default=8,
        help="S3 multipart part size in MiB for API and raw (default 8, as S3_PART_SIZE)",
    )
    parser.add_argument("--sample-ms", type=int, default=50, help="RSS sampling interval in ms (default 50)")
    parser.add_argument(
        "--extra-paths",
        default="session,multipart",
        help="other upload paths to measure beside the raw body: session, multipart (comma-separated; '' for none)",
    )
    parser.add_argument(
        "--session-chunk-mib",
        type=int,
        default=8,
        help="chunk size of the resumable session path in MiB (default 8, as the console's uploader.js)",
    )
    args = parser.parse_args(argv)
    args.extra_paths = [p for p in args.extra_paths.split(",") if p.strip()]
    size, part_size = args.size_mib * MIB, args.part_mib * MIB
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp, MotoProcess() as s3:
        work = Path(tmp)
        print(f"moto S3 at {s3.endpoint}, bucket {s3.bucket}; work folder {work}", flush=True)
        try:
            s3_env = {
                "BLOB_BACKEND": "s3",
                "S3_ENDPOINT": s3.endpoint,
                "S3_ACCESS_KEY": s3.access_key,
                "S3_SECRET_KEY": s3.secret_key,
                "S3_BUCKET": s3.bucket,
                "S3_REGION": s3.region,
                "S3_PART_SIZE": str(part_size),
                # moto joins every part in memory when a multipart upload completes: on a loaded machine a
                # 1 GiB object takes longer than the default 10 s, and the retried completion then fails
                "S3_READ_TIMEOUT_S": "120",
            }
            results.append(
                measure_api(
                    "evidence API → S3 (moto)",
                    size,
                    s3_env,
                    work / "api-s3",
                    args.sample_ms / 1000,
                    lambda ev: read_s3(s3, s3_evidence_key(s3, ev)),
                )
            )
            print(f"  done: {results[-1].name}", flush=True)
            results.append(measure_raw_s3(s3, size, part_size))
            print(f"  done: {results[-1].name}", flush=True)
            blob_dir = work / "api-folder" / "blobs"
            folder_env = {"BLOB_BACKEND": "folder", "BLOB_DIR": str(blob_dir)}
            results.append(
                measure_api(
                    "evidence API → folder store",
                    size,
                    folder_env,
                    work / "api-folder",
                    args.sample_ms / 1000,
                    lambda ev: hash_file(folder_evidence_path(blob_dir, ev)),
                )
            )
            print(f"  done: {results[-1].name}", flush=True)
            results.append(measure_raw_file(work / "raw-file", size))
            print(f"  done: {results[-1].name}", flush=True)
            for path in args.extra_paths:
                for store, store_env, reader in (
                    ("S3 (moto)", s3_env, lambda ev: read_s3(s3, s3_evidence_key(s3, ev))),
                    ("folder store", folder_env, None),
                ):
                    folder = work / f"api-{path}-{'s3' if store_env is s3_env else 'folder'}"
                    if reader is None:
                        blobs = folder / "blobs"
                        store_env = {**folder_env, "BLOB_DIR": str(blobs)}
                        reader = (lambda b: lambda ev: hash_file(folder_evidence_path(b, ev)))(blobs)
                    results.append(
                        measure_api(
                            f"evidence API ({path}) → {store}",
                            size,
                            store_env,
                            folder,
                            args.sample_ms / 1000,
                            reader,
                            path=path,
                            session_chunk=args.session_chunk_mib * MIB,
                        )
                    )
                    print(f"  done: {results[-1].name}", flush=True)
        finally:
            s3.remove_bucket()
    report(results, size, part_size)
    return 0 if all(r.sha_ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
