"""Write the kustomize base (deploy/k8s/base/*.yaml) from one description of the platform's processes.

    python -m deploy.k8s.generate          # rewrite deploy/k8s/base from this file
    python -m deploy.k8s.generate --check  # exit 1 if the committed files differ (tests/test_k8s_manifests.py)

Eight near-identical Deployments are easier to keep right from one place; the YAML stays committed and
readable, and the overlays (dev, production) patch it with plain kustomize.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parent / "base"
SERVICES = ("intake", "evidence_storage", "review", "notification")
PREFIXES = {
    "intake": "/intake",
    "evidence_storage": "/evidence",
    "review": "/review",
    "notification": "/notification",
}
IMAGE = "campaign-evidence"
API_PORT = 8000
HEALTH_PORT = 8081
GRACE_S = 45  # longer than a worker's 30 s drain
PART_OF = {"app.kubernetes.io/part-of": "campaign-evidence"}
USES_BLOBS = {"intake", "evidence_storage", "review"}
USES_SMTP = {"notification"}

PLATFORM_SETTINGS = {
    "SECRETS_DIR": "/run/secrets",
    "BUS_BACKEND": "rabbitmq",
    "RABBITMQ_URL": "amqp://campaign@rabbitmq.campaign-infra.svc:5672/campaign",
    "DATABASE_URL": "postgresql+psycopg://{service}@postgresql.campaign-infra.svc:5432/campaign",
    "MIGRATE_ON_START": "false",  # the migrations Job upgrades the schemas before the rollout
    "BLOB_BACKEND": "s3",
    "S3_ENDPOINT": "minio.campaign-infra.svc:9000",
    "S3_ACCESS_KEY": "campaign-app",
    "S3_BUCKET": "campaign-evidence",
    "S3_PUBLIC_ENDPOINT": "s3.campaign.example.org",
    "S3_SECURE": "false",
    "MAIL_BACKEND": "smtp",
    "SMTP_HOST": "smtp.campaign-infra.svc",
    "SMTP_PORT": "25",
    "PUBLIC_BASE_URL": "https://campaign.example.org",
    # the ingress controller's pods; narrow to their CIDR in an overlay where it is known
    "FORWARDED_ALLOW_IPS": "*",
    "HOST": "0.0.0.0",
}

# Where the platform's engines listen (podSelector labels, in any namespace); NetworkPolicies allow only these.
ENGINES = {
    "rabbitmq": ({"app.kubernetes.io/name": "rabbitmq"}, 5672),
    "postgresql": ({"app.kubernetes.io/name": "postgresql"}, 5432),
    "minio": ({"app.kubernetes.io/name": "minio"}, 9000),
    "smtp": ({"app.kubernetes.io/name": "smtp-relay"}, 25),
}


def dns(service: str) -> str:
    """Kubernetes names use dashes."""
    return service.replace("_", "-")


def labels(name: str, component: str) -> dict[str, str]:
    """The labels of one process's objects."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **PART_OF}


def secret_volume(service: str, *, signing: bool, database_only: bool = False) -> dict:
    """/run/secrets for one process: its database password, the bus/store secrets, the token key(s)."""
    sources = [{"secret": {"name": f"{dns(service)}-db"}}]
    if not database_only:
        sources.append({"secret": {"name": "platform-bus-store"}})
        sources.append({"secret": {"name": "token-public-key"}})
        if signing:
            sources.append({"secret": {"name": "token-signing-key"}})
    return {"name": "secrets", "projected": {"sources": sources, "defaultMode": 0o440}}


def container_security() -> dict:
    """Unprivileged, read-only, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> dict:
    """The image's user; the runtime's default seccomp profile."""
    return {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(path: str, port: int, *, period: int, failures: int) -> dict:
    """An HTTP GET probe."""
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 4,
        "failureThreshold": failures,
    }


def app_container(service: str, role: str, *, resources: dict, env: list[dict] | None = None) -> dict:
    """One platform process in the shared image."""
    args = ["-m", f"services.{service}", role] + (["--port", str(API_PORT)] if role == "api" else [])
    container = {
        "name": role,
        "image": IMAGE,
        "command": ["python"],
        "args": args,
        "envFrom": [{"configMapRef": {"name": "platform-settings"}}],
        "env": env or [],
        "volumeMounts": [
            {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": resources,
        "securityContext": container_security(),
    }
    if not container["env"]:
        del container["env"]
    return container


def deployment(service: str, role: str) -> dict:
    """The Deployment of one service's API or worker."""
    name = f"{dns(service)}-{role}"
    big = service == "evidence_storage"
    resources = {
        "requests": {"cpu": "250m", "memory": "256Mi" if big else "192Mi"},
        "limits": {"cpu": "1500m" if big else "1", "memory": "1Gi" if big else "512Mi"},
    }
    if role == "api":
        container = app_container(
            service, role, resources=resources, env=[{"name": "ROOT_PATH", "value": PREFIXES[service]}]
        )
        container["ports"] = [{"name": "http", "containerPort": API_PORT}]
        container["readinessProbe"] = http_probe("/readyz", API_PORT, period=10, failures=3)
        container["livenessProbe"] = http_probe("/livez", API_PORT, period=20, failures=3)
        container["startupProbe"] = http_probe("/livez", API_PORT, period=5, failures=24)
    else:
        container = app_container(
            service, role, resources=resources, env=[{"name": "HEALTH_PORT", "value": str(HEALTH_PORT)}]
        )
        container["ports"] = [{"name": "health", "containerPort": HEALTH_PORT}]
        container["readinessProbe"] = http_probe("/readyz", HEALTH_PORT, period=15, failures=3)
        container["livenessProbe"] = http_probe("/livez", HEALTH_PORT, period=20, failures=3)
    tmp_size = "2Gi" if big else "64Mi"  # evidence uploads and inspection spool to /tmp
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name, role)},
        "spec": {
            # no `replicas`: the HorizontalPodAutoscaler (APIs) or KEDA (workers) owns it
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {**labels(name, role), "campaign-evidence/service": dns(service)}},
                "spec": {
                    "serviceAccountName": "campaign-evidence",
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": GRACE_S,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [
                        secret_volume(service, signing=service == "intake" and role == "api"),
                        {"name": "tmp", "emptyDir": {"sizeLimit": tmp_size}},
                    ],
                },
            },
        },
    }


def api_service(service: str) -> dict:
    """The ClusterIP Service in front of one API."""
    name = f"{dns(service)}-api"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name, "api")},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": API_PORT, "targetPort": "http"}],
        },
    }


def worker_metrics_service(service: str) -> dict:
    """A headless Service over a worker's health port, for Prometheus to find /metrics."""
    name = f"{dns(service)}-worker"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name, "worker")},
        "spec": {
            "clusterIP": "None",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "health", "port": HEALTH_PORT, "targetPort": "health"}],
        },
    }


def pdb(name: str, component: str) -> dict:
    """At most one pod of a process away during voluntary disruptions (drains, upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels(name, component)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def hpa(service: str) -> dict:
    """CPU-based autoscaling of one API."""
    name = f"{dns(service)}-api"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(name, "api")},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def scaled_object(service: str) -> dict:
    """KEDA: a worker scales on the length of its RabbitMQ queue (the queue is named after the service)."""
    name = f"{dns(service)}-worker"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": labels(name, "worker")},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 1,
            "maxReplicaCount": 6,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "amqp",
                        "queueName": service,
                        "mode": "QueueLength",
                        "value": "100",
                    },
                    "authenticationRef": {"name": "rabbitmq-queue-length"},
                }
            ],
        },
    }


def trigger_authentication() -> dict:
    """KEDA reads the broker URL (with the platform user's password) from the keda-rabbitmq Secret."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "rabbitmq-queue-length", "labels": dict(PART_OF)},
        "spec": {"secretTargetRef": [{"parameter": "host", "name": "keda-rabbitmq", "key": "host"}]},
    }


def migrations_job() -> dict:
    """One Job, applied and awaited before the rollout: each service's migrations with its own role, in turn."""
    steps = []
    for service in SERVICES:
        step = app_container(
            service,
            "migrate",
            resources={
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            },
        )
        step["name"] = f"migrate-{dns(service)}"
        step["volumeMounts"][0]["name"] = f"secrets-{dns(service)}"
        steps.append(step)
    volumes = [
        {**secret_volume(service, signing=False, database_only=True), "name": f"secrets-{dns(service)}"}
        for service in SERVICES
    ]
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "campaign-migrate",
            "labels": labels("campaign-migrate", "migration"),
            "annotations": {
                "argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
            },
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels("campaign-migrate", "migration")},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "campaign-evidence",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "initContainers": steps[:-1],
                    "containers": steps[-1:],
                    "volumes": volumes,
                },
            },
        },
    }


def console() -> list[dict]:
    """The web console: pages only, no secrets."""
    name = "console"
    container = {
        "name": "console",
        "image": IMAGE,
        "command": ["python"],
        "args": ["-m", "services.console", "api", "--port", str(API_PORT)],
        "env": [{"name": "HOST", "value": "0.0.0.0"}, {"name": "ROOT_PATH", "value": "/console"}],
        "ports": [{"name": "http", "containerPort": API_PORT}],
        "readinessProbe": http_probe("/healthz", API_PORT, period=10, failures=3),
        "livenessProbe": http_probe("/healthz", API_PORT, period=20, failures=3),
        "resources": {
            "requests": {"cpu": "50m", "memory": "96Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name, "console")},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels(name, "console")},
                "spec": {
                    "serviceAccountName": "campaign-evidence",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name, "console")},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": API_PORT, "targetPort": "http"}],
        },
    }
    return [deploy, service, pdb(name, "console")]


def ingress() -> dict:
    """HTTPS entry: each prefix to its API with the prefix stripped (ingress-nginx), TLS from a Secret."""
    paths = [
        {
            "path": f"{PREFIXES[s]}(/|$)(.*)",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": f"{dns(s)}-api", "port": {"name": "http"}}},
        }
        for s in SERVICES
    ]
    paths.append(
        {
            "path": "/console(/|$)(.*)",
            "pathType": "ImplementationSpecific",
            "backend": {"service": {"name": "console", "port": {"name": "http"}}},
        }
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "campaign-evidence",
            "labels": dict(PART_OF),
            "annotations": {
                "nginx.ingress.kubernetes.io/use-regex": "true",
                "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
                "nginx.ingress.kubernetes.io/proxy-body-size": "0",
                "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["campaign.example.org"], "secretName": "campaign-evidence-tls"}],
            "rules": [{"host": "campaign.example.org", "http": {"paths": paths}}],
        },
    }


def network_policies() -> list[dict]:
    """Deny by default; APIs take traffic from the ingress controller; each process reaches only DNS, the broker,
    the database, the store (and SMTP for notification); Prometheus may scrape every port."""

    def peer(engine: str) -> dict:
        selector, port = ENGINES[engine]
        return {
            "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": selector}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }

    dns_egress = {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    monitoring = {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    }
    policies = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "labels": dict(PART_OF)},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    ]
    for service in SERVICES:
        egress = [dns_egress, peer("rabbitmq"), peer("postgresql")]
        if service in USES_BLOBS:
            egress.append(peer("minio"))
        if service in USES_SMTP:
            egress.append(peer("smtp"))
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"{dns(service)}", "labels": dict(PART_OF)},
                "spec": {
                    "podSelector": {"matchLabels": {"campaign-evidence/service": dns(service)}},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                                    }
                                }
                            ],
                            "ports": [{"protocol": "TCP", "port": API_PORT}],
                        },
                        {
                            **monitoring,
                            "ports": [
                                {"protocol": "TCP", "port": API_PORT},
                                {"protocol": "TCP", "port": HEALTH_PORT},
                            ],
                        },
                    ],
                    "egress": egress,
                },
            }
        )
    policies.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "console", "labels": dict(PART_OF)},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "console"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": API_PORT}],
                    }
                ],
                "egress": [],
            },
        }
    )
    migrate_egress = [dns_egress, peer("postgresql")]
    policies.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "campaign-migrate", "labels": dict(PART_OF)},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "campaign-migrate"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],
                "egress": migrate_egress,
            },
        }
    )
    return policies


def files() -> dict[str, list[dict]]:
    """File name -> the objects in it."""
    out: dict[str, list[dict]] = {
        "platform.yaml": [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "campaign-evidence", "labels": dict(PART_OF)},
                "automountServiceAccountToken": False,
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "platform-settings", "labels": dict(PART_OF)},
                "data": dict(PLATFORM_SETTINGS),
            },
        ],
        "migrate-job.yaml": [migrations_job()],
        "console.yaml": console(),
        "ingress.yaml": [ingress()],
        "network-policies.yaml": network_policies(),
        "keda.yaml": [trigger_authentication(), *(scaled_object(s) for s in SERVICES)],
    }
    for service in SERVICES:
        out[f"{dns(service)}.yaml"] = [
            deployment(service, "api"),
            api_service(service),
            pdb(f"{dns(service)}-api", "api"),
            hpa(service),
            deployment(service, "worker"),
            worker_metrics_service(service),
            pdb(f"{dns(service)}-worker", "worker"),
        ]
    return out


def render() -> dict[str, str]:
    """File name -> YAML text, kustomization.yaml included."""
    header = "# Generated by `python -m deploy.k8s.generate` from deploy/k8s/generate.py: edit that, then regenerate.\n"
    texts = {
        name: header + yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, width=120)
        for name, docs in files().items()
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/managed-by": "kustomize"}}],
        "resources": sorted(texts),
    }
    texts["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return texts


def main(argv: list[str] | None = None) -> int:
    """Write the base, or check that it is up to date."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.k8s.generate", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    texts = render()
    if args.check:
        stale = [
            name
            for name, text in texts.items()
            if not (BASE / name).is_file() or (BASE / name).read_text(encoding="utf-8") != text
        ]
        extra = sorted({p.name for p in BASE.glob("*.yaml")} - set(texts))
        if stale or extra:
            print(
                f"deploy/k8s/base is stale ({', '.join(stale + extra)}): run python -m deploy.k8s.generate",
                file=sys.stderr,
            )
            return 1
        return 0
    BASE.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (BASE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} files to {BASE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
