"""Static checks of the Kubernetes manifests (deploy/k8s): every object of a core kind validates against the
Kubernetes schemas (kubernetes-validate, offline), KEDA objects carry their required fields, and every process
gets the settings and secrets the code reads. No cluster is needed (none runs where the tests run).

The kustomize base is checked as committed; the overlays are rendered with `kubectl kustomize` when kubectl is
installed (skipped with a reason otherwise)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from deploy import secrets as deploy_secrets
from deploy.k8s import generate
from deploy.processes import SERVICES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
K8S_VERSIONS = ("1.30", "1.34")  # an older and a recent minor version
CUSTOM_GROUPS = ("keda.sh/",)
ENGINE_PORTS = {5672: "rabbitmq", 5432: "postgresql", 9000: "minio", 25: "smtp", 53: "dns"}


def load_base() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    docs = []
    for resource in kustomization["resources"]:
        docs += [
            doc for doc in yaml.safe_load_all((K8S / "base" / resource).read_text(encoding="utf-8")) if doc
        ]
    return docs


def render_overlay(name: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl (for `kubectl kustomize`) is not installed: overlays not rendered; the base is still checked"
        )
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / name)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, (load_base() if request.param == "base" else render_overlay(request.param))


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def platform_containers(docs: list[dict]):
    """(workload name, container, pod spec) for every container running the platform's image."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            spec = pod_spec(doc)
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                args = container.get("args", [])
                if args[:1] == ["-m"] and args[1].removeprefix("services.") in SERVICES:
                    yield doc["metadata"]["name"], container, spec


def process_of(container: dict) -> tuple[str, str]:
    """(package, role) from `python -m services.<package> <role>`."""
    args = container["args"]
    return args[1].removeprefix("services."), args[2]


# ---------------------------------------------------------------- the base is generated, and valid


def test_the_committed_base_is_what_the_generator_writes():
    assert generate.main(["--check"]) == 0, "run: python -m deploy.k8s.generate"
    assert generate.SERVICES == SERVICES


@pytest.fixture(scope="module")
def parsed_schemas_once():
    """kubernetes-validate parses its schema files (the definitions are megabytes) on every call: once is enough."""
    import functools

    from kubernetes_validate import utils

    original = utils.schema_contents
    utils.schema_contents = functools.lru_cache(maxsize=None)(original)
    yield
    utils.schema_contents = original


def test_every_core_object_validates_against_the_kubernetes_schemas(rendered, parsed_schemas_once):
    import kubernetes_validate

    _name, docs = rendered
    core = [doc for doc in docs if not doc["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert len(core) > 40
    for version in K8S_VERSIONS:
        for doc in core:
            kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError on any mistake


def test_keda_objects_have_their_required_fields_and_point_at_real_things(rendered):
    _name, docs = rendered
    deployments = by_kind(docs, "Deployment")
    auths = by_kind(docs, "TriggerAuthentication")
    scaled = by_kind(docs, "ScaledObject")
    settings = by_kind(docs, "ConfigMap")["platform-settings"]["data"]
    prefix = settings.get("BUS_QUEUE_PREFIX", "")
    assert sorted(scaled) == sorted(f"{generate.dns(s)}-worker" for s in SERVICES)
    for name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments and spec["scaleTargetRef"]["name"] == name
        assert 0 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
        assert spec["triggers"], name
        for trigger in spec["triggers"]:
            assert trigger["type"] == "rabbitmq"
            meta = trigger["metadata"]
            service = name.removesuffix("-worker").replace("-", "_")
            assert meta["queueName"] == prefix + service, "the worker's queue is BUS_QUEUE_PREFIX + service"
            assert meta["mode"] in {"QueueLength", "MessageRate"} and float(meta["value"]) > 0
            assert meta["protocol"] in {"amqp", "http", "auto"}
            assert trigger["authenticationRef"]["name"] in auths
    for auth in auths.values():
        refs = auth["spec"]["secretTargetRef"]
        assert refs and all({"parameter", "name", "key"} <= set(ref) for ref in refs)
        assert {"host"} <= {ref["parameter"] for ref in refs}
        for ref in refs:
            assert (ref["name"], ref["key"]) in secret_keys(), (
                f"no kubectl command creates {ref['name']}/{ref['key']}"
            )


def test_keda_crd_fields_are_spelled_as_the_crd_names_them(rendered):
    _name, docs = rendered
    known_spec = {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "triggers",
        "advanced",
        "fallback",
        "initialCooldownPeriod",
    }
    for obj in by_kind(docs, "ScaledObject").values():
        assert set(obj["spec"]) <= known_spec, set(obj["spec"]) - known_spec
        for trigger in obj["spec"]["triggers"]:
            assert set(trigger) <= {
                "type",
                "metadata",
                "authenticationRef",
                "name",
                "useCachedMetrics",
                "metricType",
            }


# ---------------------------------------------------------------- settings and secrets


def secret_keys() -> set[tuple[str, str]]:
    """(Secret, key) pairs that `python -m deploy.secrets --kubectl` creates."""
    pairs = set()
    for command in deploy_secrets.kubectl_commands(Path("/secrets")):
        name = command.split("create secret generic ")[1].split()[0]
        pairs |= {(name, key) for key in re.findall(r"--from-file=([\w-]+)=", command)}
    return pairs


def container_settings(container: dict, pod: dict, config: dict[str, str]) -> tuple[Settings, set[str]]:
    """The Settings this container's process would build (placeholder secret values), and its secret files."""
    env = dict(config)
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    mounted = {
        mount["name"] for mount in container["volumeMounts"] if mount["mountPath"] == env.get("SECRETS_DIR")
    }
    files: set[str] = set()
    keys = secret_keys()
    for volume in pod["volumes"]:
        if volume["name"] in mounted:
            for source in volume["projected"]["sources"]:
                secret = source["secret"]["name"]
                found = {key for name, key in keys if name == secret}
                assert found, f"no kubectl command creates Secret {secret}"
                files |= found
    values = {key.lower(): value for key, value in env.items() if key != "SECRETS_DIR"}
    values.update({name: f"secret-{name}" for name in files if not name.startswith("auth_")})
    return Settings(**values), files


def test_every_process_gets_every_setting_and_secret_it_reads(rendered):
    _name, docs = rendered
    config = by_kind(docs, "ConfigMap")["platform-settings"]["data"]
    unknown = [key for key in config if key.lower() not in Settings.model_fields and key != "SECRETS_DIR"]
    assert not unknown, f"platform-settings keys that are no settings: {unknown}"
    seen = set()
    for workload, container, pod in platform_containers(docs):
        package, role = process_of(container)
        seen.add((package, role))
        settings, files = container_settings(container, pod, config)
        assert (settings.bus_backend, settings.blob_backend, settings.mail_backend) == (
            "rabbitmq",
            "s3",
            "smtp",
        )
        assert settings.migrate_on_start is False, "the migrations Job upgrades; processes only check"
        database = make_url(settings.database_url_for(package))
        assert (database.username, database.password) == (package, "secret-database_password"), workload
        if role == "migrate":
            assert files == {"database_password"}, f"{workload}: migrations need the database password only"
            continue
        broker = urlsplit(settings.broker_url())
        assert (
            broker.password == "secret-rabbitmq_password"
            and broker.path == f"/{deploy_secrets.RABBITMQ_VHOST}"
        )
        assert "auth_public_key" in files, workload
        assert ("auth_private_key" in files) == (package == "intake" and role == "api"), (
            f"{workload}: only intake's API signs"
        )
        if package in generate.USES_BLOBS:
            assert "s3_secret_key" in files
        if role == "api":
            assert settings.root_path == generate.PREFIXES[package]
        else:
            assert settings.model_dump().get("health_port", generate.HEALTH_PORT) == generate.HEALTH_PORT
            assert {"name": "HEALTH_PORT", "value": str(generate.HEALTH_PORT)} in container["env"]
    assert seen == {(s, r) for s in SERVICES for r in ("api", "worker", "migrate")}


# ---------------------------------------------------------------- operations: probes, resources, scaling, disruption


def test_processes_have_probes_resources_and_run_unprivileged(rendered):
    _name, docs = rendered
    for workload, container, pod in platform_containers(docs):
        _package, role = process_of(container)
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert limits["cpu"] and limits["memory"] and requests["cpu"] and requests["memory"], workload
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"] and pod["securityContext"]["runAsNonRoot"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        if role == "migrate":
            continue
        ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
        port = generate.API_PORT if role == "api" else generate.HEALTH_PORT
        assert (ready["path"], ready["port"]) == ("/readyz", port) and (live["path"], live["port"]) == (
            "/livez",
            port,
        )
        assert pod["terminationGracePeriodSeconds"] > 30, "longer than the worker's 30 s drain"


def test_apis_autoscale_workers_scale_on_queues_and_every_deployment_has_a_disruption_budget(rendered):
    _name, docs = rendered
    deployments = by_kind(docs, "Deployment")
    hpas = {
        doc["spec"]["scaleTargetRef"]["name"] for doc in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    assert hpas == {f"{generate.dns(s)}-api" for s in SERVICES}
    pdb_selectors = [
        doc["spec"]["selector"]["matchLabels"] for doc in by_kind(docs, "PodDisruptionBudget").values()
    ]
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(selector.items() <= labels.items() for selector in pdb_selectors), (
            f"{name} has no PodDisruptionBudget"
        )
        if name in hpas or name.endswith("-worker"):
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"


def test_network_policies_deny_by_default_and_let_each_process_reach_only_its_engines(rendered):
    _name, docs = rendered
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert (
        deny["podSelector"] == {}
        and set(deny["policyTypes"]) == {"Ingress", "Egress"}
        and "egress" not in deny
    )
    for _workload, container, _pod in platform_containers(docs):
        package, role = process_of(container)
        matching = [
            p
            for p in policies.values()
            if p["spec"]["podSelector"]
            and p["spec"]["podSelector"]["matchLabels"].items() <= pod_labels(docs, _workload).items()
        ]
        assert matching, f"{_workload} matches no NetworkPolicy"
        ports = {
            port["port"]
            for policy in matching
            for rule in policy["spec"].get("egress", [])
            for port in rule["ports"]
        }
        engines = {ENGINE_PORTS[port] for port in ports}
        expected = {"dns", "postgresql"} if role == "migrate" else {"dns", "rabbitmq", "postgresql"}
        if role != "migrate" and package in generate.USES_BLOBS:
            expected.add("minio")
        if role != "migrate" and package in generate.USES_SMTP:
            expected.add("smtp")
        assert engines == expected, f"{_workload} reaches {sorted(engines)}, expected {sorted(expected)}"


def pod_labels(docs: list[dict], workload: str) -> dict[str, str]:
    for doc in docs:
        if doc["metadata"]["name"] == workload and doc["kind"] in {"Deployment", "Job"}:
            return doc["spec"]["template"]["metadata"]["labels"]
    raise AssertionError(workload)


def test_ingress_serves_every_api_and_the_console_over_tls(rendered):
    _name, docs = rendered
    ingress = by_kind(docs, "Ingress")["campaign-evidence"]
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    services = by_kind(docs, "Service")
    backends = set()
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts, "every host is served over TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]["name"]
            assert backend in services, backend
            backends.add(backend)
    assert backends == {f"{generate.dns(s)}-api" for s in SERVICES} | {"console"}


def test_migrations_job_runs_every_services_migration_and_is_selectable_for_the_first_step(rendered):
    name, docs = rendered
    job = by_kind(docs, "Job")["campaign-migrate"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    steps = [process_of(container) for container in [*spec["initContainers"], *spec["containers"]]]
    assert steps == [(service, "migrate") for service in SERVICES]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    if name != "base":
        text = (K8S / "overlays" / name / "kustomization.yaml").read_text(encoding="utf-8")
        assert "-l app.kubernetes.io/component=migration" in text, "say how to run the migrations first"


def test_overlays_name_their_namespace_and_image(rendered):
    name, docs = rendered
    if name == "base":
        return
    namespaces = by_kind(docs, "Namespace")
    assert len(namespaces) == 1
    namespace = next(iter(namespaces))
    assert namespaces[namespace]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, f"{doc['kind']}/{doc['metadata']['name']}"
    images = {container["image"] for _w, container, _p in platform_containers(docs)}
    assert len(images) == 1 and not next(iter(images)).endswith(":latest")


def test_the_schema_check_is_not_vacuous():
    import kubernetes_validate

    deployment = next(doc for doc in load_base() if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {
        "not": "a port"
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    misspelt["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_VERSIONS[0], strict=True)
