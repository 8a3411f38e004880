"""Shared helpers of the chart tests: the chart rendered by the real Helm
library (helm-python-sdk's bundled libhelm_c, Helm's own Go SDK), the
rendered manifests as objects, and the scenarios every test runs over.

No string matching on templates: every assertion is on objects Helm
rendered, as `helm template` would print them.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import _native

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "fieldguard"

# Kubernetes versions the chart supports: the oldest (Chart.yaml's
# kubeVersion), the first with native sidecars, and the newest whose
# schemas kubernetes-validate carries.
OLDEST, NATIVE_SINCE, NEWEST = "1.25.0", "1.29.0", "1.37.0"
KUBE_VERSIONS = [OLDEST, NATIVE_SINCE, NEWEST]

RELEASE, NAMESPACE = "demo", "shop"

# A config of a team's own (not the reference), as `config.file` takes it.
TEAM_CONFIG = (REPO / "examples" / "demo" / "fieldguard.yaml").read_text()


def _team_config() -> str:
    """The reference config without the keys the chart sets, with absolute
    key paths: what a team writes for its pod."""
    cfg = yaml.safe_load(TEAM_CONFIG)
    for key in ("listeners",):
        cfg.pop(key)
    cfg["upstream"].pop("url")
    cfg["policies"] = {}
    cfg["identity"]["jwt"]["hs256_secret_file"] = "/etc/fieldguard/secrets/jwt-hs256.key"
    cfg["redaction"]["hash_key_file"] = "/etc/fieldguard/secrets/hash.key"
    cfg["limits"]["shutdown_grace_ms"] = 25000
    cfg["audit"] = {"shutdown_timeout_ms": 5000, "queue_capacity": 4096}
    return yaml.safe_dump(cfg, sort_keys=False)


def reference_policy_files() -> dict[str, str]:
    return {
        p.name: p.read_text()
        for p in sorted((REPO / "policies").iterdir())
        if p.suffix in (".cedar", ".cedarschema")
    }


# Every mode and option, each on at least once.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "container-mode": {"sidecar": {"mode": "container"}},
    "native-mode": {"sidecar": {"mode": "native"}},
    "audit-file": {"audit": {"sink": "file"}},
    "all-options": {
        "audit": {
            "sink": "file",
            # Helm merges maps: null removes the default emptyDir.
            "volume": {"emptyDir": None, "persistentVolumeClaim": {"claimName": "audit"}},
        },
        "config": {"rolloutOnChange": True},
        "tls": {"existingSecret": "fieldguard-tls"},
        "networkPolicy": {
            "enabled": True,
            "proxyFrom": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}],
            "adminFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        },
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
            "dashboard": {"enabled": True, "annotations": {"grafana_folder": "fieldguard"}},
            "runbookBaseUrl": "https://git.example.com/fieldguard/-/blob/main",
        },
        "extraArgs": ["--log-format", "json"],
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "workerThreads": None,
        "terminationGracePeriodSeconds": 60,
        "image": {"digest": "sha256:" + "0" * 64},
        "imagePullSecrets": [{"name": "registry"}],
    },
    "team-config": {
        "config": {"file": _team_config()},
        "policies": {"files": reference_policy_files()},
    },
    "existing-policies": {"policies": {"existingConfigMap": "shop-policies"}},
    # The budgets shared in Redis/Valkey, one scenario per mode.
    "budget-store-standalone": {
        "budgets": {"store": {"type": "redis", "redis": {
            "url": "rediss://valkey.cache.svc.cluster.local:6379/0",
            "username": "fieldguard",
            "existingSecret": "valkey-auth",
            "passwordKey": "fieldguard-password",
            "tls": {"enabled": True, "caSecret": "valkey-ca"},
        }}},
        "networkPolicy": {"enabled": True, "budgetStoreEgress": {"enabled": True, "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cache"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "valkey"}},
        }]}},
    },
    "budget-store-sentinel": {
        "budgets": {"replicas": 6, "onStoreError": "refuse", "store": {"type": "redis", "redis": {
            "mode": "sentinel",
            "nodes": [f"redis://redis-node-{i}.redis-headless.cache:26379" for i in range(3)],
            "masterName": "mymaster",
            "existingSecret": "redis-auth",
        }}},
        "networkPolicy": {"enabled": True, "budgetStoreEgress": {
            "enabled": True, "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [26379, 6379], "allowDns": False,
        }},
    },
    "budget-store-cluster": {
        "budgets": {"onStoreError": "allow", "store": {"type": "redis", "redis": {
            "mode": "cluster",
            "nodes": ["rediss://clustercfg.shop-budgets.example.cache.amazonaws.com:6379"],
            "tls": {"enabled": True, "caConfigMap": "cluster-trust-bundle", "caKey": "ca-bundle.pem"},
            "timeoutMs": 20,
            "connectTimeoutMs": 500,
            "keyPrefix": "shop-fg",
            "requiredAtStart": False,
        }}},
    },
    "sidecar-only": {
        "example": {"enabled": False},
        # Without the example, a config of the team's own is required.
        "config": {"file": _team_config()},
        "podSelector": {"app": "my-api"},
        "networkPolicy": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    },
}


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render_raw(values: dict | None = None, kube_version: str | None = None,
               chart: Path = CHART) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` renders it.

    helm-python-sdk's `Chart.render` does not expose the Kubernetes version,
    but the library's render options take it (`kube_version`, Helm's
    `--kube-version`), so the call goes through the same native entry point
    with that option added.
    """
    opts: dict[str, Any] = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True}
    if kube_version:
        opts["kube_version"] = "v" + kube_version.lstrip("v")
    with helm.Chart.load(str(chart)) as c:
        out = _native.call_string(
            "helm_render", c._raw(), json.dumps(values or {}), json.dumps(opts)
        )
    return json.loads(out)


def objects(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object in a render (NOTES.txt is not one)."""
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def render(values: dict | None = None, kube_version: str | None = None) -> list[dict]:
    return objects(render_raw(values, kube_version))


def find(objs: list[dict], kind: str, name_suffix: str = "") -> dict:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def kinds(objs: list[dict]) -> list[str]:
    return sorted(o["kind"] for o in objs)


def pod_spec(objs: list[dict]) -> dict:
    return find(objs, "Deployment")["spec"]["template"]["spec"]


def fieldguard_container(spec: dict) -> tuple[dict, str]:
    """The fieldguard container and where it is (initContainers or containers)."""
    for where in ("initContainers", "containers"):
        for c in spec.get(where) or []:
            if c["name"] == "fieldguard":
                return c, where
    raise AssertionError("no fieldguard container in the pod spec")


def fieldguard_binary() -> Path:
    """The binary `cargo test` built (CI builds debug; no release build)."""
    explicit = os.environ.get("FIELDGUARD_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "fieldguard"


@pytest.fixture(scope="session")
def binary() -> Path:
    b = fieldguard_binary()
    if not b.is_file():
        pytest.fail(f"{b} is missing: build it first (cargo build), or set FIELDGUARD_BIN")
    return b
