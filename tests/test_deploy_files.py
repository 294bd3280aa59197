"""Static checks of the Docker deployment (docker-compose.yml, deploy/Dockerfile, deploy/gateway/nginx.conf,
.dockerignore) against the code: no Docker needed, each check reads the files and compares them with the
packages, the launcher's roles and the Settings fields they must agree with."""
from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from deploy.embedded import PREFIXES
from deploy.processes import SERVICES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NGINX_CONF = ROOT / "deploy" / "gateway" / "nginx.conf"
DOCKERIGNORE = ROOT / ".dockerignore"
ROLES = {"api", "worker"}
FRONTS = {"console"}  # the web console: pages only, no worker or adapters (checked in tests/console/test_console_deploy.py)
COPIED = ("pyproject.toml", "requirements.lock", "shared", "services", "deploy")
INFRA_PORTS = {15672, 9001, 8025}  # RabbitMQ, MinIO and Mailpit consoles
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
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.load(COMPOSE_FILE.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)


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
        return {name: "service_started" for name in deps}
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


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(**{key.lower(): value for key, value in env.items()})


# A small nginx configuration parser: (directive, args, children) trees.

_NGINX_TOKEN = re.compile(r"""\s*(?:(\#[^\n]*)|("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|([{};])|([^\s{};"'#][^\s{};]*))""")


def parse_nginx(text: str) -> list[tuple[str, list[str], list]]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _NGINX_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip():
                raise ValueError(f"cannot tokenize nginx.conf at {text[pos:pos + 40]!r}")
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
    return uri + request[len(prefix):]


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
    for name, (package, role, extra) in app_containers.items():
        assert (ROOT / "services" / package / "__main__.py").is_file(), f"{name}: services/{package}/__main__.py missing"
        assert importlib.util.find_spec(f"services.{package}.__main__") is not None, name
        assert role in ROLES, f"{name}: role {role!r} not in {ROLES}"
        if role == "api":
            assert api_port(extra) > 0
        else:
            assert extra == [], f"{name}: the worker role takes no options, got {extra}"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (ROOT / services[name]["build"]["context"] / services[name]["build"]["dockerfile"]).is_file()


def test_each_service_has_exactly_one_api_and_one_worker(app_containers):
    packages = {path.parent.name for path in (ROOT / "services").glob("*/__main__.py")} - FRONTS
    assert packages == set(SERVICES), "deploy/processes.py SERVICES and services/*/__main__.py disagree"
    pairs = sorted((package, role) for package, role, _ in app_containers.values())
    assert pairs == sorted((package, role) for package in SERVICES for role in ROLES)


def test_compose_service_names_are_valid_hostnames(services):
    for name in services:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), f"{name!r} is not a valid DNS name"


# ---------------------------------------------------------------- compose: environment


def test_platform_env_keys_are_settings_fields(compose):
    env = compose["x-platform-env"]
    fields = set(Settings.model_fields)
    unknown = [key for key in env if key.lower() not in fields and key != "ROOT_PATH"]
    assert not unknown, f"not settings fields: {unknown}"
    assert all(key == key.upper() for key in env)
    assert all(isinstance(value, str) for value in env.values()), "quote every environment value"


def test_platform_env_validates_as_distributed_settings(compose, services):
    env = compose["x-platform-env"]
    settings = settings_from(env)
    assert settings.bus_backend == "rabbitmq"
    assert settings.blob_backend == "s3"
    assert settings.mail_backend == "smtp"
    assert settings.host == "0.0.0.0"

    rabbit = urlsplit(settings.rabbitmq_url)
    assert rabbit.scheme == "amqp" and rabbit.hostname in services and rabbit.port == 5672
    rabbit_env = environment(services[rabbit.hostname])
    assert (rabbit.username, rabbit.password) == (
        rabbit_env.get("RABBITMQ_DEFAULT_USER", "guest"), rabbit_env.get("RABBITMQ_DEFAULT_PASS", "guest"))

    database = make_url(settings.database_url_for("intake"))
    assert database.drivername == "postgresql+psycopg" and database.host in services
    pg_env = environment(services[database.host])
    assert (database.username, database.password, database.database) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])

    s3_host, s3_port = settings.s3_endpoint.split(":")
    assert s3_host in services and s3_port == "9000"
    minio_env = environment(services[s3_host])
    assert (settings.s3_access_key, settings.s3_secret_key) == (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"])
    assert len(settings.s3_secret_key) >= 8, "MinIO refuses a root password shorter than 8 characters"

    assert settings.smtp_host in services and settings.smtp_port == 1025


def test_every_process_gets_the_platform_env_and_apis_their_root_path(compose, services, app_containers):
    platform = compose["x-platform-env"]
    for name, (package, role, _) in app_containers.items():
        env = environment(services[name])
        assert {key: env.get(key) for key in platform} == platform, f"{name} does not use the platform env"
        settings = settings_from(env)
        if role == "api":
            assert settings.root_path == PREFIXES[package], f"{name}: ROOT_PATH must be its gateway prefix"
        else:
            assert "ROOT_PATH" not in env, name


# ---------------------------------------------------------------- compose: dependencies and health


def test_depends_on_targets_exist_and_healthy_ones_have_healthchecks(services):
    for name, spec in services.items():
        for target, condition in depends_on(spec).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{target} has no healthcheck ({name} waits on it)"


def test_processes_wait_for_the_adapters_their_bootstrap_builds(services, app_containers):
    for name, (package, role, _) in app_containers.items():
        bootstrap = (ROOT / "services" / package / "bootstrap.py").read_text(encoding="utf-8")
        needs = {"postgres"}
        if "make_blob_store" in bootstrap:
            needs.add("minio")
        if "make_mailer" in bootstrap:
            needs.add("mailpit")
        if role == "worker":
            needs.add("rabbitmq")
        healthy = {target for target, condition in depends_on(services[name]).items() if condition == "service_healthy"}
        assert needs <= healthy, f"{name} should wait for {sorted(needs - healthy)}"
    # the derivation above is not vacuous: these bootstraps do build those adapters
    assert "make_blob_store" in (ROOT / "services" / "evidence_storage" / "bootstrap.py").read_text(encoding="utf-8")
    assert "make_mailer" in (ROOT / "services" / "notification" / "bootstrap.py").read_text(encoding="utf-8")


def test_api_healthchecks_hit_healthz_on_the_api_port(services, app_containers):
    for name, (_package, role, extra) in app_containers.items():
        check = services[name].get("healthcheck")
        if role == "worker":
            continue
        assert check, f"{name} has no healthcheck"
        test = check["test"]
        assert test[0] == "CMD" and test[1] == "python", "the slim image has no curl: use python"
        assert f"http://127.0.0.1:{api_port(extra)}/healthz" in " ".join(test)
        compile(test[test.index("-c") + 1], f"{name} healthcheck", "exec")


def test_infrastructure_healthchecks(services):
    assert services["rabbitmq"]["healthcheck"]["test"][1:] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["minio"]["command"][:2] == ["server", "/data"]
    assert services["mailpit"]["healthcheck"]["test"]


def test_only_the_gateway_and_consoles_publish_ports(services, app_containers):
    for name in app_containers:
        assert not services[name].get("ports"), f"{name} must be reached through the gateway"
    published = {name: published_ports(spec) for name, spec in services.items() if spec.get("ports")}
    assert published.pop("gateway") == {GATEWAY_PORT}
    assert set().union(*published.values()) == INFRA_PORTS


def test_stateful_services_keep_data_in_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, data_dir in {"rabbitmq": "/var/lib/rabbitmq", "minio": "/data", "postgres": "/var/lib/postgresql/data"}.items():
        mounts = [str(volume).split(":") for volume in services[name].get("volumes") or []]
        sources = {source for source, target, *_ in mounts if target == data_dir}
        assert sources and sources <= declared, f"{name} keeps {data_dir} in no named volume"


# ---------------------------------------------------------------- gateway


def test_gateway_mounts_the_nginx_conf_and_publishes_its_listen_port(services, nginx_server):
    gateway = services["gateway"]
    assert gateway["image"].startswith("nginx:")
    mounts = [str(volume).split(":") for volume in gateway["volumes"]]
    assert ["./deploy/gateway/nginx.conf", "/etc/nginx/nginx.conf", "ro"] in mounts
    listen = {args[0].rsplit(":", 1)[-1] for _, args, _ in find(nginx_server, "listen")}
    assert {str(entry).split(":")[-1] for entry in gateway["ports"]} <= listen


@pytest.mark.parametrize("package", SERVICES)
def test_gateway_routes_each_prefix_to_its_api_stripping_the_prefix(package, nginx_server, services, app_containers):
    prefix = PREFIXES[package]
    loc = location(nginx_server, prefix + "/")
    host, port = proxy_target(loc)
    assert host in services, f"{prefix}/ proxies to {host}, which is no compose service"
    assert app_containers.get(host, (None, None, []))[:2] == (package, "api"), f"{prefix}/ goes to {host}, not {package}'s API"
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
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [(i, [Path(src).as_posix() for src in args.split()[:-1] if not src.startswith("--")])
              for i, (op, args) in enumerate(instructions) if op == "COPY"]
    copied = {src for _, sources in copies for src in sources}
    assert set(COPIED) <= copied, f"the image lacks {set(COPIED) - copied}"
    last_copy = max(i for i, sources in copies if set(sources) & set(COPIED))
    installs = [args for i, (op, args) in enumerate(instructions) if op == "RUN" and i > last_copy
                and re.search(r"pip install (--[\w-]+ )*\.(\s|$)", args)]
    assert installs, "no `pip install .` after the code is copied"
    for op, args in instructions:
        if op == "RUN":
            assert "[test]" not in args and "pip install -e" not in args and "--editable" not in args
    envs = " ".join(args for op, args in instructions if op == "ENV")
    assert re.search(r"PYTHONUNBUFFERED=1\b", envs)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"


def test_pyproject_installs_every_copied_package_with_its_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in ("shared", "services", "deploy"):
        assert any(fnmatch.fnmatch(package, pattern) for pattern in include), package
    data_patterns = project["tool"]["setuptools"]["package-data"]["*"]
    for package in ("shared", "services"):
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts:
                assert any(fnmatch.fnmatch(path.name, pattern) for pattern in data_patterns), (
                    f"{path.relative_to(ROOT)} would be missing from the image")


def test_dockerignore_keeps_the_context_small_but_not_the_code():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    for required in (".venv", "var", ".git", "tests", "bench", "test-artifacts"):
        assert required in patterns, f".dockerignore should exclude {required}"
    assert "**/__pycache__" in patterns
    for path in COPIED + ("deploy/Dockerfile", "services/notification/templates/decision.html.j2"):
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        for pattern in patterns:
            assert not any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes), f"{pattern!r} drops {path}"
