"""Static checks of the Docker deployment (docker-compose.yml, deploy/Dockerfile, deploy/gateway/nginx.conf,
.dockerignore, the PostgreSQL/MinIO/RabbitMQ set-up files, deploy/secrets.py) against the code: no Docker
needed (none runs where the tests run), each check reads the files and compares them with the packages, the
launcher's roles and the Settings fields they must agree with."""

from __future__ import annotations

import fnmatch
import importlib.util
import ipaddress
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from deploy import secrets as deploy_secrets
from deploy.embedded import PREFIXES
from deploy.processes import SERVICES
from shared.bus.rabbitmq import _STOP_GRACE_S as WORKER_DRAIN_S
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "gateway" / "nginx.conf"
DOCKERIGNORE = ROOT / ".dockerignore"
ROLES = {"api", "worker", "migrate"}
FRONTS = {
    "console"
}  # the web console: pages only, no worker or adapters (checked in tests/console/test_console_deploy.py)
COPIED = ("pyproject.toml", "requirements.lock", "shared", "services", "deploy")
INFRA_PORTS = {15672, 9001, 8025, 9090, 3000}  # RabbitMQ, MinIO and Mailpit consoles, Prometheus, Grafana
GATEWAY_PORT = 8000


# ---------------------------------------------------------------- helpers


class _StrictLoader(yaml.SafeLoader):
    """safe_load that, like docker compose, refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.load(COMPOSE_FILE.read_text(encoding="utf-8"), Loader=_StrictLoader)


def test_compose_file_is_safe_yaml_with_the_platform_env_anchor(compose):
    # the strict loader above must agree with plain safe_load (which the brief asks for) on valid files
    assert compose == yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(compose["x-platform-env"], dict) and compose["x-platform-env"]
    assert "&platform-env" in COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def service_command(spec: dict) -> tuple[str, str, list[str]] | None:
    """(package, role, extra args) of a `python -m services.X role ...` command, else None."""
    command = spec.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if not command or command[:2] != ["python", "-m"] or not command[2].startswith("services."):
        return None
    return command[2].removeprefix("services."), command[3] if len(command) > 3 else "", command[4:]


@pytest.fixture(scope="module")
def app_containers(services) -> dict[str, tuple[str, str, list[str]]]:
    """compose service name -> (package, role, extra args) for every platform process."""
    found = {name: service_command(spec) for name, spec in services.items()}
    return {name: parsed for name, parsed in found.items() if parsed and parsed[0] not in FRONTS}


def environment(spec: dict) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def api_port(extra: list[str]) -> int:
    assert "--port" in extra, f"api command without --port: {extra}"
    return int(extra[extra.index("--port") + 1])


def depends_on(spec: dict) -> dict[str, str]:
    """target -> condition (a list form means service_started)."""
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (opts or {}).get("condition", "service_started") for name, opts in deps.items()}


def published_ports(spec: dict) -> set[int]:
    ports = set()
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:
            parts = str(entry).split("/")[0].split(":")
            assert len(parts) >= 2, f"port {entry!r} publishes a random host port"
            ports.add(int(parts[-2]))
    return ports


def settings_from(env: dict[str, str], secrets: dict[str, str] | None = None) -> Settings:
    values = {key.lower(): value for key, value in env.items() if key != "SECRETS_DIR"}
    return Settings(**values, **(secrets or {}))


def secret_targets(spec: dict) -> dict[str, str]:
    """target file name (under /run/secrets unless absolute) -> compose secret, for one service."""
    found = {}
    for entry in spec.get("secrets") or []:
        if isinstance(entry, str):
            found[entry] = entry
        else:
            found[entry.get("target", entry["source"])] = entry["source"]
    return found


IMAGE_PIN = re.compile(r"^(?P<name>[a-z0-9./-]+):(?P<tag>[\w.-]+)@sha256:[0-9a-f]{64}$")


# A small nginx configuration parser: (directive, args, children) trees.

_NGINX_TOKEN = re.compile(
    r"""\s*(?:(\#[^\n]*)|("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|([{};])|([^\s{};"'#][^\s{};]*))"""
)


def parse_nginx(text: str) -> list[tuple[str, list[str], list]]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _NGINX_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip():
                raise ValueError(f"cannot tokenize nginx.conf at {text[pos : pos + 40]!r}")
            break
        pos = match.end()
        comment, quoted, punct, word = match.groups()
        if comment:
            continue
        tokens.append(quoted[1:-1] if quoted else punct or word)

    def block(i: int) -> tuple[list, int]:
        items: list = []
        words: list[str] = []
        while i < len(tokens):
            token = tokens[i]
            if token == ";":
                items.append((words[0], words[1:], []))
                words = []
            elif token == "{":
                children, i = block(i + 1)
                items.append((words[0], words[1:], children))
                words = []
            elif token == "}":
                assert not words, f"unterminated directive {words}"
                return items, i
            else:
                words.append(token)
            i += 1
        assert not words, f"unterminated directive {words}"
        return items, i

    tree, end = block(0)
    assert end == len(tokens), "unbalanced braces in nginx.conf"
    return tree


def find(tree: list, name: str) -> list[tuple[str, list[str], list]]:
    return [item for item in tree if item[0] == name]


def only(tree: list, name: str) -> tuple[str, list[str], list]:
    found = find(tree, name)
    assert len(found) == 1, f"expected one {name!r} directive, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def nginx_server() -> list:
    http = only(parse_nginx(NGINX_CONF.read_text(encoding="utf-8")), "http")[2]
    return only(http, "server")[2]


@pytest.fixture(scope="module")
def nginx_http() -> list:
    return only(parse_nginx(NGINX_CONF.read_text(encoding="utf-8")), "http")[2]


def location(server: list, path: str, modifier: str | None = None) -> list:
    for _name, args, children in find(server, "location"):
        if (modifier is None and args == [path]) or (modifier is not None and args == [modifier, path]):
            return children
    raise AssertionError(f"nginx.conf has no location {modifier or ''} {path}")


def proxy_target(loc: list) -> tuple[str, int]:
    """host, port the location proxies to, resolving `set $var value` before proxy_pass."""
    variables: dict[str, str] = {}
    for name, args, _ in loc:
        if name == "set":
            variables[args[0]] = args[1]
        if name == "rewrite" and "break" in args[2:]:
            break  # `rewrite ... break` ends the rewrite phase: later `set`s never run
    target = only(loc, "proxy_pass")[1][0]
    target = re.sub(r"\$\w+", lambda m: variables.get(m.group(0), m.group(0)), target)
    assert "$" not in target, f"proxy_pass {target!r} uses a variable no earlier `set` defines"
    parts = urlsplit(target)
    assert parts.scheme == "http", target
    return parts.hostname, parts.port or 80


def upstream_path(loc: list, prefix: str, request: str) -> str:
    """The path the API sees for `request`, following the location's rewrite or proxy_pass URI."""
    rewrites = find(loc, "rewrite")
    if rewrites:
        pattern, replacement = rewrites[0][1][:2]
        match = re.match(pattern, request)
        assert match, f"rewrite {pattern} does not match {request}"
        return re.sub(r"\$(\d)", lambda m: match.group(int(m.group(1))), replacement)
    uri = urlsplit(only(loc, "proxy_pass")[1][0]).path
    assert uri, "proxy_pass without a URI keeps the prefix"
    return uri + request[len(prefix) :]


def seconds(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd]?)", value)
    assert match, value
    return int(match.group(1)) * units[match.group(2) or "s"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


# ---------------------------------------------------------------- compose: processes


def test_every_service_command_names_a_runnable_package_and_role(app_containers, services):
    assert app_containers, "no `python -m services.X` command in docker-compose.yml"
    launcher = (ROOT / "shared" / "launcher.py").read_text(encoding="utf-8")
    for name, (package, role, extra) in app_containers.items():
        assert (ROOT / "services" / package / "__main__.py").is_file(), (
            f"{name}: services/{package}/__main__.py missing"
        )
        assert importlib.util.find_spec(f"services.{package}.__main__") is not None, name
        assert role in ROLES, f"{name}: role {role!r} not in {ROLES}"
        assert f'"{role}"' in launcher, f"{name}: shared/launcher.py offers no role {role!r}"
        if role == "api":
            assert api_port(extra) > 0
        else:
            assert extra == [], f"{name}: the {role} role takes no options, got {extra}"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (ROOT / services[name]["build"]["context"] / services[name]["build"]["dockerfile"]).is_file()


def test_each_service_has_one_api_one_worker_and_one_migration(app_containers):
    packages = {path.parent.name for path in (ROOT / "services").glob("*/__main__.py")} - FRONTS
    assert packages == set(SERVICES), "deploy/processes.py SERVICES and services/*/__main__.py disagree"
    pairs = sorted((package, role) for package, role, _ in app_containers.values())
    assert pairs == sorted((package, role) for package in SERVICES for role in ROLES)


def test_compose_service_names_are_valid_hostnames(services):
    for name in services:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), f"{name!r} is not a valid DNS name"


def test_migrations_run_once_before_the_service_starts(compose, services, app_containers):
    assert settings_from(compose["x-platform-env"]).migrate_on_start is False, (
        "the one-shots migrate; the rest only check"
    )
    migrations = {package: name for name, (package, role, _) in app_containers.items() if role == "migrate"}
    for name, (package, role, _) in app_containers.items():
        if role == "migrate":
            assert services[name]["restart"] == "no", f"{name} is one-shot"
            assert depends_on(services[name]) == {"postgres": "service_healthy"}
            continue
        assert depends_on(services[name]).get(migrations[package]) == "service_completed_successfully", (
            f"{name} must start after {migrations[package]} completed"
        )


# ---------------------------------------------------------------- compose: images


def test_every_image_is_pinned_by_tag_and_digest(services):
    for name, spec in services.items():
        if "build" in spec:
            assert spec.get("image", "").endswith(":local"), f"{name}: the built image gets a local name only"
            continue
        match = IMAGE_PIN.match(spec["image"])
        assert match, f"{name}: {spec['image']!r} is not name:tag@sha256:<digest>"
        assert match["tag"] not in {"latest", "edge", "nightly"}, name
    dockerfile_from = dockerfile_instructions()[0]
    assert dockerfile_from[0] == "FROM" and IMAGE_PIN.match(dockerfile_from[1]), dockerfile_from


def test_images_are_current_and_from_where_they_still_exist(services):
    minio = services["minio"]["image"]
    assert minio.startswith("quay.io/minio/minio:RELEASE."), (
        "minio/minio is gone from Docker Hub: use quay.io/minio"
    )
    assert services["minio-init"]["image"].startswith("quay.io/minio/mc:RELEASE.")
    rabbit = IMAGE_PIN.match(services["rabbitmq"]["image"])
    assert rabbit["name"] == "rabbitmq" and int(rabbit["tag"].split(".")[0]) >= 4, (
        "RabbitMQ 3.13 is out of support"
    )
    assert IMAGE_PIN.match(services["mailpit"]["image"])["tag"].startswith("v")


def test_deployment_doc_lists_every_pinned_image():
    doc = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    compose_images = {
        spec["image"]
        for spec in yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"].values()
        if "build" not in spec
    }
    for image in compose_images | {dockerfile_instructions()[0][1]}:
        assert image in doc, f"docs/deployment.md does not list {image}"


# ---------------------------------------------------------------- compose: environment and secrets


def test_platform_env_keys_are_settings_fields(compose):
    env = compose["x-platform-env"]
    fields = set(Settings.model_fields)
    unknown = [key for key in env if key.lower() not in fields and key not in {"ROOT_PATH", "SECRETS_DIR"}]
    assert not unknown, f"not settings fields: {unknown}"
    assert all(key == key.upper() for key in env)
    assert all(isinstance(value, str) for value in env.values()), "quote every environment value"
    assert env["SECRETS_DIR"] == "/run/secrets"


def test_no_secret_is_written_into_the_compose_file(services):
    secret_like = re.compile(r"PASSWORD|SECRET|PRIVATE|TOKEN", re.IGNORECASE)
    for name, spec in services.items():
        for key, value in environment(spec).items():
            if secret_like.search(key) and key != "SECRETS_DIR":
                assert key.endswith(("_FILE", "__FILE")), f"{name}: {key} holds a secret in plain text"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key} must point at a mounted secret"
            assert not re.search(r"://[^/@:]+:[^/@]+@", str(value)), f"{name}: {key} has a password in a URL"


def test_compose_secrets_are_the_files_make_secrets_writes(compose, services):
    declared = compose["secrets"]
    expected = set(deploy_secrets.secret_files()) | {"auth_private_key", "auth_public_key"}
    assert set(declared) == expected
    for name, spec in declared.items():
        assert spec == {"file": f"./deploy/secrets/{name}"}, name
    used = {source for spec in services.values() for source in secret_targets(spec).values()}
    assert used == expected, f"declared but unused: {expected - used}"
    ignore = (ROOT / "deploy" / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*" in ignore, "secret files must never be committed"


def test_make_secrets_writes_each_file_once_and_privately(tmp_path):
    written = deploy_secrets.write_secrets(tmp_path)
    assert set(written) == set(deploy_secrets.secret_files()) | {"auth_private_key", "auth_public_key"}
    before = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert deploy_secrets.write_secrets(tmp_path) == [] and before == {
        p.name: p.read_text() for p in tmp_path.iterdir()
    }
    assert tmp_path.stat().st_mode & 0o777 == 0o700, "no other host user may enter the secrets folder"
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in tmp_path.iterdir()), (
        "containers read them as their own user"
    )
    conf = dict(line.split(" = ", 1) for line in (tmp_path / "rabbitmq_conf").read_text().splitlines())
    assert conf["default_pass"] == (tmp_path / "rabbitmq_password").read_text()


def test_secret_targets_are_settings_fields_read_as_secret_strings(services, app_containers):
    for name in app_containers:
        for target in secret_targets(services[name]):
            assert not target.startswith("/"), f"{name}: app secrets go to SECRETS_DIR (/run/secrets)"
            field = Settings.model_fields.get(target)
            assert field is not None, f"{name}: secret {target} is no settings field"
            assert target == "auth_public_key" or "SecretStr" in str(field.annotation), (
                f"{target} must be a SecretStr"
            )


def test_each_process_gets_its_own_database_password_and_only_intakes_api_the_signing_key(
    services, app_containers
):
    for name, (package, role, _) in app_containers.items():
        targets = secret_targets(services[name])
        assert targets.get("database_password") == f"db_password_{package}", name
        signs = package == "intake" and role == "api"
        assert ("auth_private_key" in targets) == signs, f"{name}: only intake's API may sign tokens"
        if role != "migrate":
            assert targets.get("auth_public_key") == "auth_public_key", name
            assert targets.get("rabbitmq_password") == "rabbitmq_password", name
        bootstrap = (ROOT / "services" / package / "bootstrap.py").read_text(encoding="utf-8")
        if role != "migrate" and ("make_blob_store" in bootstrap or package == "intake"):
            assert "s3_secret_key" in targets, f"{name} uses the blob store"
    console = [
        spec for spec in services.values() if service_command(spec) and service_command(spec)[0] in FRONTS
    ]
    assert all(not spec.get("secrets") for spec in console), "the console holds no secrets"


def test_process_settings_validate_with_their_secrets(compose, services, app_containers):
    platform = compose["x-platform-env"]
    rabbit_user = deploy_secrets.RABBITMQ_USER
    pg_env = environment(services["postgres"])
    for name, (package, role, _) in app_containers.items():
        env = environment(services[name])
        assert {key: env.get(key) for key in platform} == platform, f"{name} does not use the platform env"
        fake = {
            target: f"secret-{target}"
            for target in secret_targets(services[name])
            if not target.startswith("auth_")
        }
        settings = settings_from(env, fake)
        assert (settings.bus_backend, settings.blob_backend, settings.mail_backend) == (
            "rabbitmq",
            "s3",
            "smtp",
        )
        database = make_url(settings.database_url_for(package))
        assert (
            database.drivername == "postgresql+psycopg"
            and database.host == "postgres"
            and database.port == 5432
        )
        assert (database.username, database.password, database.database) == (
            package,
            "secret-database_password",
            pg_env["POSTGRES_DB"],
        )
        if role == "migrate":
            continue
        broker = urlsplit(settings.broker_url())
        assert (broker.hostname, broker.port, broker.username, broker.password) == (
            "rabbitmq",
            5672,
            rabbit_user,
            "secret-rabbitmq_password",
        )
        assert broker.path == f"/{deploy_secrets.RABBITMQ_VHOST}", "the platform has its own vhost"
        if role == "api":
            assert settings.root_path == PREFIXES[package], f"{name}: ROOT_PATH must be its gateway prefix"
        else:
            assert "ROOT_PATH" not in env, name


def test_settings_point_browsers_and_mail_links_at_the_gateway(compose, services, nginx_server):
    settings = settings_from(compose["x-platform-env"])
    gateway_port = GATEWAY_PORT
    assert urlsplit(settings.public_base_url).port == gateway_port
    public_host, public_port = settings.s3_public_endpoint.split(":")
    assert int(public_port) == gateway_port and public_host in {"localhost", "127.0.0.1"}
    loc = location(nginx_server, f"/{settings.s3_bucket}/")
    store_host, store_port = settings.s3_endpoint.split(":")
    assert proxy_target(loc) == (store_host, int(store_port))
    assert not find(loc, "rewrite"), "path-style bucket URLs must reach the store unchanged (they are signed)"
    assert only(loc, "client_max_body_size")[1] == ["0"] and only(loc, "proxy_request_buffering")[1] == [
        "off"
    ]
    location(nginx_server, f"/{settings.s3_bucket}", "=")  # presigned POST goes to the bare bucket URL


def test_apis_trust_forwarded_headers_from_the_gateway_only(compose, services, app_containers):
    trusted = compose["x-platform-env"]["FORWARDED_ALLOW_IPS"]
    gateway_ip = services["gateway"]["networks"]["edge"]["ipv4_address"]
    assert trusted == gateway_ip
    subnet = ipaddress.ip_network(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(gateway_ip) in subnet
    for name, (_package, role, _) in app_containers.items():
        networks = services[name].get("networks") or []
        assert ("edge" in networks) == (role == "api"), f"{name}: only APIs sit on the gateway's network"
    launcher = (ROOT / "shared" / "launcher.py").read_text(encoding="utf-8")
    # one set of server options, with the trusted proxies, for one worker process and for several
    assert launcher.count("forwarded_allow_ips=settings.forwarded_allow_ips") == 1
    assert (
        launcher.count("uvicorn.run(app, **served)")
        == launcher.count("workers=settings.api_workers, **served")
        == 1
    )


# ---------------------------------------------------------------- compose: least privilege


def test_postgres_has_a_role_per_service_made_from_its_secret(services):
    postgres = services["postgres"]
    env = environment(postgres)
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert set(secret_targets(postgres)) == {"postgres_password", *(f"db_password_{s}" for s in SERVICES)}
    mounts = dict(tuple(str(volume).split(":")[:2]) for volume in postgres["volumes"])
    script = ROOT / mounts_source(mounts, "/docker-entrypoint-initdb.d/10-service-roles.sh")
    text = script.read_text(encoding="utf-8")
    loop = re.search(r"for service in ([\w ]+); do", text)
    assert loop and loop.group(1).split() == list(SERVICES), (
        "the init script must make a role for every service"
    )
    sql_path = re.search(r"-f (\S+)", text).group(1)
    assert (ROOT / mounts_source(mounts, sql_path)).is_file()
    assert "/run/secrets/db_password_$service" in text


def mounts_source(mounts: dict[str, str], target: str) -> str:
    sources = [source for source, mounted in mounts.items() if mounted == target]
    assert sources, f"nothing is mounted at {target}"
    return sources[0]


def bucket_policy() -> dict:
    return json.loads((ROOT / "deploy" / "minio" / "bucket-policy.json").read_text(encoding="utf-8"))


# The S3 calls shared/blobs/s3.py makes (minio SDK method) and the policy actions each needs.
S3_ACTIONS = {
    "bucket_exists": {"s3:ListBucket"},
    "put_object": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "get_object": {"s3:GetObject"},
    "stat_object": {"s3:GetObject"},
    "remove_object": {"s3:DeleteObject", "s3:DeleteObjectVersion"},
    "list_objects": {"s3:ListBucket", "s3:ListBucketVersions"},
    "copy_object": {"s3:GetObject", "s3:PutObject"},
    "compose_object": {"s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts"},
    "set_object_retention": {"s3:PutObjectRetention"},
    "get_object_lock_config": {"s3:GetBucketObjectLockConfiguration"},
    "get_bucket_versioning": {"s3:GetBucketVersioning"},
    "make_bucket": set(),  # made by minio-init, not the platform
    "_list_multipart_uploads": {"s3:ListBucketMultipartUploads"},
    "_abort_multipart_upload": {"s3:AbortMultipartUpload"},  # the sweeper; aborted and expired sessions
    # a resumable session's chunks are the parts of one multipart upload
    "_create_multipart_upload": {"s3:PutObject"},
    "_upload_part": {"s3:PutObject"},
    "_complete_multipart_upload": {"s3:PutObject"},
}


def test_minio_user_policy_reaches_the_bucket_only_and_covers_every_call(compose, services):
    platform = compose["x-platform-env"]
    init = services["minio-init"]
    env = environment(init)
    assert (env["S3_ACCESS_KEY"], env["S3_BUCKET"]) == (platform["S3_ACCESS_KEY"], platform["S3_BUCKET"])
    assert (
        env["MINIO_ROOT_USER"]
        == environment(services["minio"])["MINIO_ROOT_USER"]
        != platform["S3_ACCESS_KEY"]
    )
    assert environment(services["minio"])["MINIO_ROOT_PASSWORD_FILE"] == "/run/secrets/minio_root_password"
    statements = bucket_policy()["Statement"]
    resources = {resource for statement in statements for resource in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{platform['S3_BUCKET']}", f"arn:aws:s3:::{platform['S3_BUCKET']}/*"}
    allowed = {
        action for statement in statements if statement["Effect"] == "Allow" for action in statement["Action"]
    }
    assert not any("*" in action or action.startswith("admin:") for action in allowed)
    calls = set(
        re.findall(
            r"self\._client\.(\w+)\(", (ROOT / "shared" / "blobs" / "s3.py").read_text(encoding="utf-8")
        )
    )
    unknown = calls - set(S3_ACTIONS)
    assert not unknown, (
        f"shared/blobs/s3.py makes S3 calls this test does not map to policy actions: {unknown}"
    )
    needed = set().union(*(S3_ACTIONS[call] for call in calls))
    assert needed <= allowed, f"the platform's MinIO user lacks {needed - allowed}"
    script = (ROOT / "deploy" / "minio" / "minio-init.sh").read_text(encoding="utf-8")
    for command in (
        "mc mb --ignore-existing",
        "mc admin policy create",
        "mc admin user add",
        "mc admin policy attach",
    ):
        assert command in script


def test_rabbitmq_has_the_platforms_user_and_vhost_and_no_guest(services):
    rabbit = services["rabbitmq"]
    targets = secret_targets(rabbit)
    assert targets.get("/etc/rabbitmq/conf.d/40-users.conf") == "rabbitmq_conf"
    conf = (ROOT / "deploy" / "rabbitmq" / "30-campaign.conf").read_text(encoding="utf-8")
    assert re.search(r"^default_queue_type = quorum$", conf, re.MULTILINE)
    assert re.search(r"^default_user_tags.administrator = false$", conf, re.MULTILINE)
    assert "RABBITMQ_DEFAULT_USER" not in environment(rabbit)


def test_app_containers_run_unprivileged(services, app_containers):
    fronts = [
        name
        for name, spec in services.items()
        if service_command(spec) and service_command(spec)[0] in FRONTS
    ]
    for name in [*app_containers, *fronts]:
        spec = services[name]
        assert spec["user"] == "10001:10001" and spec["read_only"] is True, name
        assert spec["cap_drop"] == ["ALL"] and "no-new-privileges:true" in spec["security_opt"], name


# ---------------------------------------------------------------- compose: dependencies, health, limits


def test_depends_on_targets_exist_and_healthy_ones_have_healthchecks(services):
    for name, spec in services.items():
        for target, condition in depends_on(spec).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{target} has no healthcheck ({name} waits on it)"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", (
                    f"{target} must be one-shot ({name} waits for it to finish)"
                )


def test_processes_wait_for_the_adapters_their_bootstrap_builds(services, app_containers):
    for name, (package, role, _) in app_containers.items():
        if role == "migrate":
            continue
        bootstrap = (ROOT / "services" / package / "bootstrap.py").read_text(encoding="utf-8")
        needs = {"postgres"}
        if "make_blob_store" in bootstrap:
            needs.add("minio")
        if "make_mailer" in bootstrap:
            needs.add("mailpit")
        if role == "worker":
            needs.add("rabbitmq")
        deps = depends_on(services[name])
        healthy = {target for target, condition in deps.items() if condition == "service_healthy"}
        assert needs <= healthy, f"{name} should wait for {sorted(needs - healthy)}"
        if "minio" in needs:
            assert deps.get("minio-init") == "service_completed_successfully", (
                f"{name} needs the bucket and its user"
            )
    # the derivation above is not vacuous: these bootstraps do build those adapters
    assert "make_blob_store" in (ROOT / "services" / "evidence_storage" / "bootstrap.py").read_text(
        encoding="utf-8"
    )
    assert "make_mailer" in (ROOT / "services" / "notification" / "bootstrap.py").read_text(encoding="utf-8")


def http_check_url(check: dict) -> str:
    test = check["test"]
    assert test[0] == "CMD" and test[1] == "python", "the slim image has no curl: use python"
    code = test[test.index("-c") + 1]
    compile(code, "healthcheck", "exec")
    return re.search(r"urlopen\('([^']+)'", code).group(1)


def test_apis_are_checked_for_readiness_and_workers_on_their_health_port(services, app_containers):
    for name, (_package, role, extra) in app_containers.items():
        check = services[name].get("healthcheck")
        if role == "migrate":
            assert not check, f"{name} is one-shot"
            continue
        assert check, f"{name} has no healthcheck"
        url = urlsplit(http_check_url(check))
        assert url.hostname == "127.0.0.1"
        if role == "api":
            assert (url.port, url.path) == (api_port(extra), "/readyz"), name
        else:
            port = environment(services[name]).get("HEALTH_PORT")
            assert port and (url.port, url.path) == (int(port), "/livez"), (
                f"{name}: check /livez on HEALTH_PORT"
            )


def test_stop_grace_period_outlasts_the_drain(services, app_containers):
    for name, (_package, role, _) in app_containers.items():
        if role != "migrate":
            assert seconds(services[name]["stop_grace_period"]) > WORKER_DRAIN_S, (
                f"{name} would be killed mid-drain"
            )


def test_every_long_running_service_has_cpu_and_memory_limits(services):
    for name, spec in services.items():
        if spec.get("restart") == "no":
            continue
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        assert float(limits.get("cpus", 0)) > 0, f"{name} has no CPU limit"
        assert re.fullmatch(r"\d+[MG]", str(limits.get("memory", ""))), f"{name} has no memory limit"


def test_infrastructure_healthchecks(services):
    assert services["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["minio"]["command"][:2] == ["server", "/data"]
    assert services["mailpit"]["healthcheck"]["test"]


def test_only_the_gateway_publishes_on_every_interface(services, app_containers):
    for name in app_containers:
        assert not services[name].get("ports"), f"{name} must be reached through the gateway"
    published = {name: published_ports(spec) for name, spec in services.items() if spec.get("ports")}
    assert published.pop("gateway") == {GATEWAY_PORT}
    assert set().union(*published.values()) == INFRA_PORTS
    for name in published:
        assert all(str(entry).startswith("127.0.0.1:") for entry in services[name]["ports"]), (
            f"{name}'s console is for the operator on the host only"
        )


def test_stateful_services_keep_data_in_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    data_dirs = {
        "rabbitmq": "/var/lib/rabbitmq",
        "minio": "/data",
        "postgres": "/var/lib/postgresql/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, data_dir in data_dirs.items():
        mounts = [str(volume).split(":") for volume in services[name].get("volumes") or []]
        sources = {source for source, target, *_ in mounts if target == data_dir}
        assert sources and sources <= declared, f"{name} keeps {data_dir} in no named volume"


def test_mounted_files_exist(services):
    for name, spec in services.items():
        for volume in spec.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


# ---------------------------------------------------------------- gateway


def test_gateway_mounts_the_nginx_conf_and_publishes_its_listen_port(services, nginx_server):
    gateway = services["gateway"]
    assert gateway["image"].startswith("nginx:")
    mounts = [str(volume).split(":") for volume in gateway["volumes"]]
    assert ["./deploy/gateway/nginx.conf", "/etc/nginx/nginx.conf", "ro"] in mounts
    listen = {args[0].rsplit(":", 1)[-1] for _, args, _ in find(nginx_server, "listen")}
    assert {str(entry).split(":")[-1] for entry in gateway["ports"]} <= listen


@pytest.mark.parametrize("package", SERVICES)
def test_gateway_routes_each_prefix_to_its_api_stripping_the_prefix(
    package, nginx_server, services, app_containers
):
    prefix = PREFIXES[package]
    loc = location(nginx_server, prefix + "/")
    host, port = proxy_target(loc)
    assert host in services, f"{prefix}/ proxies to {host}, which is no compose service"
    assert app_containers.get(host, (None, None, []))[:2] == (package, "api"), (
        f"{prefix}/ goes to {host}, not {package}'s API"
    )
    assert port == api_port(app_containers[host][2])
    assert upstream_path(loc, prefix, f"{prefix}/docs") == "/docs"
    assert upstream_path(loc, prefix, f"{prefix}/") == "/"


def test_gateway_uses_docker_dns_when_proxying_through_variables(nginx_http):
    assert find(nginx_http, "resolver"), "proxy_pass with variables needs a resolver"
    assert only(nginx_http, "proxy_http_version")[1] == ["1.1"], "unbuffered chunked uploads need HTTP/1.1"


def test_gateway_streams_evidence_uploads(nginx_server):
    loc = location(nginx_server, PREFIXES["evidence_storage"] + "/")
    assert only(loc, "client_max_body_size")[1] == ["0"]
    assert only(loc, "proxy_request_buffering")[1] == ["off"]
    assert only(loc, "proxy_buffering")[1] == ["off"]
    assert seconds(only(loc, "proxy_read_timeout")[1][0]) >= 600


def test_gateway_answers_its_own_healthz(nginx_server):
    loc = location(nginx_server, "/healthz", "=")
    assert only(loc, "return")[1][0] == "200"


# ---------------------------------------------------------------- image


def test_dockerfile_copies_the_code_and_installs_the_project():
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    copies = [
        (i, [Path(src).as_posix() for src in args.split()[:-1] if not src.startswith("--")])
        for i, (op, args) in enumerate(instructions)
        if op == "COPY"
    ]
    copied = {src for _, sources in copies for src in sources}
    assert set(COPIED) <= copied, f"the image lacks {set(COPIED) - copied}"
    last_copy = max(i for i, sources in copies if set(sources) & set(COPIED))
    installs = [
        args
        for i, (op, args) in enumerate(instructions)
        if op == "RUN" and i > last_copy and re.search(r"pip install (--[\w-]+ )*\.(\s|$)", args)
    ]
    assert installs and all("--no-deps" in args for args in installs), (
        "the code installs after the lock, with --no-deps"
    )
    for op, args in instructions:
        if op == "RUN":
            assert "[test]" not in args and "pip install -e" not in args and "--editable" not in args
    envs = " ".join(args for op, args in instructions if op == "ENV")
    assert re.search(r"PYTHONUNBUFFERED=1\b", envs)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"


def test_dockerfile_installs_dependencies_from_the_lock_with_hashes_and_ffmpeg():
    instructions = dockerfile_instructions()
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(re.search(r"apt-get install .*\bffmpeg\b", args) for args in runs), (
        "video evidence needs ffmpeg"
    )
    assert any("rm -rf /var/lib/apt/lists" in args for args in runs if "apt-get" in args)
    lock_installs = [args for args in runs if "pip install" in args and "-r requirements.lock" in args]
    assert lock_installs and all("--require-hashes" in args for args in lock_installs)
    copied = {src for op, args in instructions if op == "COPY" for src in args.split()[:-1]}
    assert "requirements.lock" in copied
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.MULTILINE)
    assert pinned and "--hash=sha256:" in lock
    declared = {
        re.split(r"[<>=!\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        for dep in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "dependencies"
        ]
    }
    assert declared <= {name.lower().replace("_", "-") for name in pinned}, (
        "requirements.lock lags pyproject.toml"
    )


def test_pyproject_installs_every_copied_package_with_its_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in ("shared", "services", "deploy"):
        assert any(fnmatch.fnmatch(package, pattern) for pattern in include), package
    package_data = project["tool"]["setuptools"]["package-data"]
    data_patterns = package_data["*"]
    for package in ("shared", "services"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts:
                assert any(fnmatch.fnmatch(path.name, pattern) for pattern in data_patterns), (
                    f"{path.relative_to(ROOT)} would be missing from the image"
                )
    campaign_files = [path for path in (ROOT / "deploy" / "campaigns").rglob("*") if path.is_file()]
    assert campaign_files
    for path in campaign_files:
        relative = path.relative_to(ROOT / "deploy").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data["deploy"]), (
            f"deploy/{relative} would be missing from the image: the campaign could not be loaded there"
        )


def test_the_bundled_campaign_is_found_by_name_where_the_repository_is_absent(tmp_path, monkeypatch):
    from services.intake.cli import packaged_campaign

    monkeypatch.chdir(tmp_path)  # like /app in the image: no deploy/ folder beside
    found = packaged_campaign(Path("huaibei-2020"))
    assert found.is_file() and found.name == "huaibei-2020.yaml"
    assert packaged_campaign(Path("huaibei-2020.yaml")) == found
    assert packaged_campaign(Path("nowhere/huaibei-2020.yaml")) == Path("nowhere/huaibei-2020.yaml")


def test_dockerignore_keeps_the_context_small_but_not_the_code():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".venv", "var", ".git", "tests", "bench", "test-artifacts", "deploy/secrets"):
        assert required in patterns, f".dockerignore should exclude {required}"
    assert "**/__pycache__" in patterns
    for path in COPIED + ("deploy/Dockerfile", "services/notification/templates/decision.html.j2"):
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        for pattern in patterns:
            assert not any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes), (
                f"{pattern!r} drops {path}"
            )


# ---------------------------------------------------------------- monitoring


def test_prometheus_scrapes_every_api_and_worker_where_they_serve_metrics(services, app_containers):
    prometheus = services["prometheus"]
    mounts = dict(tuple(str(volume).split(":")[:2]) for volume in prometheus["volumes"])
    config = yaml.safe_load(
        (ROOT / mounts_source(mounts, "/etc/prometheus/prometheus.yml")).read_text(encoding="utf-8")
    )
    for rule_file in config.get("rule_files") or []:
        assert (ROOT / mounts_source(mounts, rule_file)).is_file(), f"Prometheus would miss {rule_file}"
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    expected = set()
    for name, (_package, role, extra) in app_containers.items():
        if role == "api":
            expected.add(f"{name}:{api_port(extra)}")
        elif role == "worker":
            expected.add(f"{name}:{environment(services[name])['HEALTH_PORT']}")
    assert expected <= targets, f"not scraped: {sorted(expected - targets)}"
    assert set(services["prometheus"]["networks"]) & set(services["intake-api"]["networks"]), (
        "Prometheus cannot reach the APIs"
    )
