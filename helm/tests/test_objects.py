"""Unit tests on the objects the chart renders: what makes the sidecar safe
(security context, no subPath, no way around the proxy), probes on the
admin port, shutdown timing, and the monitoring objects."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import (
    _team_config,
    CHART,
    NEWEST,
    SCENARIOS,
    find,
    fieldguard_container,
    kinds,
    pod_spec,
    render,
    render_raw,
)


@pytest.fixture(scope="module")
def defaults():
    return render({}, NEWEST)


@pytest.fixture(scope="module")
def everything():
    return render(SCENARIOS["all-options"], NEWEST)


def config_of(objs) -> dict:
    cm = find(objs, "ConfigMap", "-config")
    return yaml.safe_load(cm["data"]["fieldguard.yaml"])


def test_default_release_is_the_example(defaults):
    assert kinds(defaults) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]


@pytest.mark.parametrize("scenario", ["defaults", "container-mode", "audit-file", "all-options"])
def test_restricted_security_context(scenario):
    spec = pod_spec(render(SCENARIOS[scenario], NEWEST))
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]


@pytest.mark.parametrize("scenario", sorted(set(SCENARIOS) - {"sidecar-only"}))
def test_config_and_policies_are_mounted_as_directories(scenario):
    """Never subPath: a subPath mount does not receive ConfigMap updates, so
    hot reload would silently stop."""
    objs = render(SCENARIOS[scenario], NEWEST)
    spec = pod_spec(objs)
    fg, _ = fieldguard_container(spec)
    for m in fg["volumeMounts"]:
        assert "subPath" not in m and "subPathExpr" not in m, m
    mounts = {m["name"]: m for m in fg["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    cfg_mount = mounts["fieldguard-config"]
    assert cfg_mount["readOnly"] is True
    assert volumes["fieldguard-config"]["configMap"]["name"] == find(objs, "ConfigMap", "-config")["metadata"]["name"]
    # The container reads the config from that directory.
    assert fg["args"][:3] == ["run", "--config", cfg_mount["mountPath"] + "/fieldguard.yaml"]
    cfg = config_of(objs)
    policy_dir = cfg["policies"]["directory"]
    policy_mount = next(m for m in fg["volumeMounts"] if m["mountPath"] == policy_dir)
    assert policy_mount["readOnly"] is True
    assert cfg["policies"]["schema"] == policy_dir + "/schema.cedarschema"


def test_policies_share_the_config_map_by_default(defaults):
    """One ConfigMap: routes and policies change in one atomic swap."""
    cm = find(defaults, "ConfigMap", "-config")
    assert sorted(cm["data"]) == sorted(
        ["fieldguard.yaml", "schema.cedarschema", "baseline.cedar", "customer.cedar",
         "data_protection_officer.cedar", "fulfillment.cedar", "marketing_analyst.cedar",
         "partner.cedar", "support_agent.cedar"]
    )
    assert config_of(defaults)["policies"]["directory"] == "/etc/fieldguard/config"


def test_existing_policy_config_map_is_its_own_volume():
    objs = render(SCENARIOS["existing-policies"], NEWEST)
    spec = pod_spec(objs)
    vol = next(v for v in spec["volumes"] if v["name"] == "fieldguard-policies")
    assert vol["configMap"]["name"] == "shop-policies"
    assert list(find(objs, "ConfigMap", "-config")["data"]) == ["fieldguard.yaml"]
    assert config_of(objs)["policies"]["directory"] == "/etc/fieldguard/policies"


def test_keys_come_from_the_existing_secret_only(everything):
    spec = pod_spec(everything)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["fieldguard-secrets"]["secret"]["secretName"] == "fieldguard-demo-keys"
    assert volumes["fieldguard-tls"]["secret"]["secretName"] == "fieldguard-tls"
    assert not [o for o in everything if o["kind"] == "Secret"], "the chart never renders key material"
    cfg = config_of(everything)
    assert cfg["identity"]["jwt"]["hs256_secret_file"] == "/etc/fieldguard/secrets/jwt-hs256.key"
    assert cfg["redaction"]["hash_key_file"] == "/etc/fieldguard/secrets/hash.key"


@pytest.mark.parametrize("scenario", ["defaults", "container-mode"])
def test_probes_are_on_the_admin_port(scenario):
    fg, _ = fieldguard_container(pod_spec(render(SCENARIOS[scenario], NEWEST)))
    admin = next(p for p in fg["ports"] if p["name"] == "fg-admin")
    assert admin["containerPort"] == 9090
    assert fg["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "fg-admin"}
    assert fg["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "fg-admin"}
    assert fg["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "fg-admin"}


def test_admin_listener_is_reachable_from_outside_the_container(defaults):
    """fieldguard's default admin address is loopback, where neither the
    kubelet's probes nor Prometheus can reach it."""
    cfg = config_of(defaults)
    assert cfg["admin"] == {"address": "0.0.0.0:9090"}
    assert cfg["listeners"] == [{"address": "0.0.0.0:8080"}]


def test_native_sidecar_starts_before_the_app(defaults):
    spec = pod_spec(defaults)
    fg, where = fieldguard_container(spec)
    assert where == "initContainers" and fg["restartPolicy"] == "Always"
    assert "startupProbe" in fg
    assert [c["name"] for c in spec["containers"]] == ["shop"]


def test_container_mode_is_a_plain_second_container():
    spec = pod_spec(render(SCENARIOS["container-mode"], NEWEST))
    fg, where = fieldguard_container(spec)
    assert where == "containers" and "restartPolicy" not in fg
    assert "initContainers" not in spec
    assert fg["lifecycle"]["preStop"]["sleep"]["seconds"] == 5


def test_the_app_listens_on_loopback_and_the_service_targets_the_proxy(defaults):
    spec = pod_spec(defaults)
    shop = next(c for c in spec["containers"] if c["name"] == "shop")
    assert shop["args"] == ["shop", "--listen", "127.0.0.1:9000"]
    assert "ports" not in shop, "the app publishes no port"
    assert config_of(defaults)["upstream"]["url"] == "http://127.0.0.1:9000"
    svc = find(defaults, "Service")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["fg-proxy"]
    fg, _ = fieldguard_container(spec)
    assert {"name": "fg-proxy", "containerPort": 8080, "protocol": "TCP"} in fg["ports"]
    assert svc["spec"]["selector"] == find(defaults, "Deployment")["spec"]["selector"]["matchLabels"]


def test_network_policy_admits_only_proxy_and_admin_ports(everything):
    np = find(everything, "NetworkPolicy")
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"] == find(everything, "Deployment")["spec"]["selector"]["matchLabels"]
    ports = [[p["port"] for p in rule["ports"]] for rule in spec["ingress"]]
    assert ports == [[8080], [9090]]
    assert all(p["protocol"] == "TCP" for rule in spec["ingress"] for p in rule["ports"])
    assert spec["ingress"][1]["from"] == SCENARIOS["all-options"]["networkPolicy"]["adminFrom"]
    assert 9000 not in [p for rule in ports for p in rule]


def test_network_policy_for_a_team_pod_needs_its_selector():
    objs = render(SCENARIOS["sidecar-only"], NEWEST)
    assert find(objs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == {"app": "my-api"}
    assert kinds(objs) == ["ConfigMap", "NetworkPolicy", "PrometheusRule", "Service", "ServiceMonitor"]
    with pytest.raises(Exception, match="podSelector is required"):
        render_raw({"example": {"enabled": False}, "networkPolicy": {"enabled": True},
                    "config": {"file": _team_config()}})


def test_termination_grace_covers_shutdown_and_audit_drain(defaults):
    # preStop 5 s + shutdown_grace_ms 20 000 + audit.shutdown_timeout_ms 10 000
    assert pod_spec(defaults)["terminationGracePeriodSeconds"] == 35
    team = pod_spec(render(SCENARIOS["team-config"], NEWEST))
    # The team config sets 25 000 and 5 000 ms.
    assert team["terminationGracePeriodSeconds"] == 5 + 25 + 5
    assert pod_spec(render(SCENARIOS["all-options"], NEWEST))["terminationGracePeriodSeconds"] == 60


def test_pre_stop_sleep_needs_kubernetes_1_30():
    spec = pod_spec(render(SCENARIOS["container-mode"], "1.29.0"))
    fg, _ = fieldguard_container(spec)
    assert "lifecycle" not in fg
    assert all("lifecycle" not in c for c in spec["containers"])


def test_resources_have_overridable_defaults(defaults):
    fg, _ = fieldguard_container(pod_spec(defaults))
    assert fg["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    custom = render({"resources": {"limits": {"memory": "1Gi", "cpu": "2"}}}, NEWEST)
    fg, _ = fieldguard_container(pod_spec(custom))
    assert fg["resources"]["limits"] == {"memory": "1Gi", "cpu": "2"}


def test_pod_disruption_budget_of_the_example(defaults):
    pdb = find(defaults, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == find(defaults, "Deployment")["spec"]["selector"]["matchLabels"]


DOWNWARD_API = {
    # The audit log's chain id: which pod of the fleet wrote a chain.
    "FIELDGUARD_POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
    "FIELDGUARD_POD_UID": {"fieldRef": {"fieldPath": "metadata.uid"}},
}


def test_logs_are_json_and_environment_is_complete(defaults, everything):
    fg, _ = fieldguard_container(pod_spec(defaults))
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in fg["env"]}
    assert env == {"FIELDGUARD_LOG_FORMAT": "json", "FIELDGUARD_LOG": "info", "FIELDGUARD_WORKER_THREADS": "2",
                   **DOWNWARD_API}
    fg, _ = fieldguard_container(pod_spec(everything))
    env = {e["name"]: e.get("value") for e in fg["env"]}
    assert "FIELDGUARD_WORKER_THREADS" not in env and env["RUST_BACKTRACE"] == "1"
    assert fg["args"][3:] == ["--log-format", "json"]
    assert {"name": "scratch", "mountPath": "/scratch"} in fg["volumeMounts"]
    assert fg["image"] == "fieldguard@sha256:" + "0" * 64


def test_audit_to_stdout_or_to_a_volume(defaults, everything):
    assert config_of(defaults)["audit"] == {"stdout": True}
    audit = config_of(everything)["audit"]
    assert audit == {
        "file": "/var/log/fieldguard/audit.log",
        "stdout": False,
        # Sized to the volume; full means refuse, never a silent deletion.
        "retention": {"max_total_bytes": 838860800, "when_full": "refuse"},
    }
    spec = pod_spec(everything)
    vol = next(v for v in spec["volumes"] if v["name"] == "fieldguard-audit")
    assert vol == {"name": "fieldguard-audit", "persistentVolumeClaim": {"claimName": "audit"}}
    fg, _ = fieldguard_container(spec)
    assert {"name": "fieldguard-audit", "mountPath": "/var/log/fieldguard"} in fg["volumeMounts"]
    assert spec["securityContext"]["fsGroup"] == 65532


def test_prometheus_scrape_annotations_and_checksum(defaults, everything):
    ann = find(defaults, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9090"
    assert ann["prometheus.io/path"] == "/metrics"
    assert "checksum/config" not in ann
    checksum = find(everything, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    changed = render({**SCENARIOS["all-options"], "policies": {"files": {"schema.cedarschema": "", "a.cedar": ""}}}, NEWEST)
    assert find(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum


def test_service_monitor_scrapes_the_admin_service_as_job_fieldguard(everything):
    sm = find(everything, "ServiceMonitor")
    admin = find(everything, "Service", "-admin")
    assert sm["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert admin["metadata"]["labels"]["app.kubernetes.io/name"] == "fieldguard"
    sel = sm["spec"]["selector"]["matchLabels"]
    assert all(admin["metadata"]["labels"].get(k) == v for k, v in sel.items())
    # ...and only the admin Service: the client-facing one is not scraped.
    client = find(everything, "Service", "demo-fieldguard")
    assert not all(client["metadata"]["labels"].get(k) == v for k, v in sel.items())
    assert sm["spec"]["endpoints"] == [
        {"port": "fg-admin", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert admin["spec"]["ports"][0]["targetPort"] == "fg-admin"
    assert admin["spec"]["selector"] == find(everything, "Deployment")["spec"]["selector"]["matchLabels"]


def test_prometheus_rule_carries_the_example_alerts_with_runbooks(everything):
    from conftest import REPO

    rule = find(everything, "PrometheusRule")
    source = yaml.safe_load((REPO / "examples" / "monitoring" / "alerts.yaml").read_text())
    got = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    want = {r["alert"]: r for g in source["spec"]["groups"] for r in g["rules"]}
    assert sorted(got) == sorted(want)
    for name, r in got.items():
        assert r["expr"] == want[name]["expr"]
        assert r["annotations"]["runbook_url"] == (
            "https://git.example.com/fieldguard/-/blob/main/" + want[name]["annotations"]["runbook_url"]
        )


def test_dashboard_config_map_for_the_grafana_sidecar(everything):
    from conftest import REPO

    cm = find(everything, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "fieldguard"}
    dashboard = json.loads(cm["data"]["fieldguard.json"])
    source = json.loads((REPO / "examples" / "monitoring" / "grafana-dashboard.json").read_text())
    assert [p["title"] for p in dashboard["panels"]] == [p["title"] for p in source["panels"]]
    assert dashboard["links"][0]["url"] == "https://git.example.com/fieldguard/-/blob/main/docs/runbook.md"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_pod_name_and_uid_are_always_in_the_environment(scenario):
    """From the downward API, whatever the values: the audit chain id."""
    objs = render(SCENARIOS[scenario], NEWEST)
    if scenario == "sidecar-only":
        return  # no pod of the chart's own; the parent chart test covers a team's
    fg, _ = fieldguard_container(pod_spec(objs))
    env = {e["name"]: e for e in fg["env"]}
    for name, value_from in DOWNWARD_API.items():
        assert env[name] == {"name": name, "valueFrom": value_from}


# --- The budgets shared in Redis/Valkey (budgets.*) ---

STORE_VOLUMES = {"fieldguard-budget-store", "fieldguard-budget-store-ca"}


def budgets_of(objs) -> dict:
    """The config's budgets section less the roles (the config's own)."""
    return {k: v for k, v in config_of(objs)["budgets"].items() if k not in ("mode", "roles")}


def store_mounts(objs) -> tuple[dict, dict]:
    spec = pod_spec(objs)
    fg, _ = fieldguard_container(spec)
    mounts = {m["name"]: m for m in fg["volumeMounts"] if m["name"] in STORE_VOLUMES}
    volumes = {v["name"]: v for v in spec["volumes"] if v["name"] in STORE_VOLUMES}
    assert set(mounts) == set(volumes)
    return mounts, volumes


def test_budgets_stay_per_replica_by_default(defaults, everything):
    """No store, and nothing the config did not have before: the default
    config is one every fieldguard version reads."""
    for objs in (defaults, everything):
        assert budgets_of(objs) == {}
        assert store_mounts(objs) == ({}, {})
    reference = yaml.safe_load((CHART / "files/demo/fieldguard.yaml").read_text())["budgets"]
    assert config_of(defaults)["budgets"] == reference
    assert "egress" not in find(everything, "NetworkPolicy")["spec"]


def test_budget_store_standalone_with_password_and_tls_ca():
    objs = render(SCENARIOS["budget-store-standalone"], NEWEST)
    assert budgets_of(objs) == {
        "replicas": 2,  # example.replicas
        "on_store_error": "local",
        "store": {"type": "redis", "redis": {
            "mode": "standalone",
            "url": "rediss://valkey.cache.svc.cluster.local:6379/0",
            "username": "fieldguard",
            "password_file": "/etc/fieldguard/budget-store/password",
            "tls": {"ca_file": "/etc/fieldguard/budget-store-ca/ca.crt"},
            "timeout_ms": 50,
            "connect_timeout_ms": 1000,
            "key_prefix": "fieldguard",
        }},
    }
    # The reference config's roles and limits are kept beside them.
    assert "support_agent" in config_of(objs)["budgets"]["roles"]
    mounts, volumes = store_mounts(objs)
    assert mounts == {
        "fieldguard-budget-store": {"name": "fieldguard-budget-store", "mountPath": "/etc/fieldguard/budget-store",
                                    "readOnly": True},
        "fieldguard-budget-store-ca": {"name": "fieldguard-budget-store-ca",
                                       "mountPath": "/etc/fieldguard/budget-store-ca", "readOnly": True},
    }
    # Only the password's key, as the file password_file names.
    assert volumes["fieldguard-budget-store"]["secret"] == {
        "secretName": "valkey-auth", "items": [{"key": "fieldguard-password", "path": "password"}],
        "defaultMode": 0o444,
    }
    assert volumes["fieldguard-budget-store-ca"]["secret"] == {
        "secretName": "valkey-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o444,
    }
    np = find(objs, "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    assert np["egress"] == [
        {"to": SCENARIOS["budget-store-standalone"]["networkPolicy"]["budgetStoreEgress"]["to"],
         "ports": [{"port": 6379, "protocol": "TCP"}]},
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
    ]
    # Ingress is as before: only the proxy and admin ports.
    assert [[p["port"] for p in rule["ports"]] for rule in np["ingress"]] == [[8080], [9090]]


def test_budget_store_sentinel():
    objs = render(SCENARIOS["budget-store-sentinel"], NEWEST)
    assert budgets_of(objs) == {
        "replicas": 6,
        "on_store_error": "refuse",
        "store": {"type": "redis", "redis": {
            "mode": "sentinel",
            "nodes": [f"redis://redis-node-{i}.redis-headless.cache:26379" for i in range(3)],
            "master_name": "mymaster",
            "password_file": "/etc/fieldguard/budget-store/password",
            "timeout_ms": 50,
            "connect_timeout_ms": 1000,
            "key_prefix": "fieldguard",
        }},
    }
    mounts, volumes = store_mounts(objs)
    assert set(mounts) == {"fieldguard-budget-store"}
    assert volumes["fieldguard-budget-store"]["secret"]["items"] == [{"key": "password", "path": "password"}]
    np = find(objs, "NetworkPolicy")["spec"]
    assert np["egress"] == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                             "ports": [{"port": 26379, "protocol": "TCP"}, {"port": 6379, "protocol": "TCP"}]}]


def test_budget_store_cluster_with_a_ca_from_a_config_map():
    objs = render(SCENARIOS["budget-store-cluster"], NEWEST)
    assert budgets_of(objs) == {
        "replicas": 2,
        "on_store_error": "allow",
        "store": {"type": "redis", "redis": {
            "mode": "cluster",
            "nodes": ["rediss://clustercfg.shop-budgets.example.cache.amazonaws.com:6379"],
            "tls": {"ca_file": "/etc/fieldguard/budget-store-ca/ca.crt"},
            "timeout_ms": 20,
            "connect_timeout_ms": 500,
            "key_prefix": "shop-fg",
            "required_at_start": False,
        }},
    }
    mounts, volumes = store_mounts(objs)
    assert set(mounts) == {"fieldguard-budget-store-ca"}, "no password Secret: none mounted"
    assert volumes["fieldguard-budget-store-ca"]["configMap"] == {
        "name": "cluster-trust-bundle", "items": [{"key": "ca-bundle.pem", "path": "ca.crt"}], "defaultMode": 0o444,
    }
    # No NetworkPolicy asked for: none.
    assert not [o for o in objs if o["kind"] == "NetworkPolicy"]


def test_budget_replicas_follow_the_example_unless_set():
    store = {"store": {"type": "redis", "redis": {"url": "redis://valkey:6379/0"}}}
    objs = render({"budgets": store, "example": {"replicas": 5}}, NEWEST)
    assert budgets_of(objs)["replicas"] == 5 == find(objs, "Deployment")["spec"]["replicas"]
    objs = render({"budgets": {**store, "replicas": 10}, "example": {"replicas": 5}}, NEWEST)
    assert budgets_of(objs)["replicas"] == 10
    # A team's Deployment: the chart does not know its replicas, so they are set.
    team = {"budgets": {**store, "replicas": 4}, "example": {"enabled": False}, "podSelector": {"app": "my-api"},
            "config": {"file": _team_config()}}
    assert yaml.safe_load(find(render(team, NEWEST), "ConfigMap", "-config")["data"]["fieldguard.yaml"])[
        "budgets"]["replicas"] == 4


def test_memory_store_passes_only_what_is_set():
    """Without a store the chart adds only the values a user changed."""
    assert budgets_of(render({"budgets": {"onStoreError": "refuse"}}, NEWEST)) == {"on_store_error": "refuse"}
    assert budgets_of(render({"budgets": {"replicas": 3}}, NEWEST)) == {"replicas": 3}


def test_a_team_config_keeps_its_budgets_beside_the_store():
    team = SCENARIOS["team-config"]
    objs = render({**team, "budgets": SCENARIOS["budget-store-sentinel"]["budgets"]}, NEWEST)
    budgets = config_of(objs)["budgets"]
    assert budgets["store"]["redis"]["mode"] == "sentinel" and budgets["replicas"] == 6
    assert budgets["roles"] == yaml.safe_load(team["config"]["file"])["budgets"]["roles"]


def test_the_readme_store_example_renders_what_it_shows():
    """The chart README's values block for a shared store renders, validates,
    and gives the budgets section the README shows beneath it."""
    import re

    import kubernetes_validate

    readme = (CHART / "README.md").read_text()
    start = readme.index("<!-- budget-store-values")
    values_block, shown = re.compile(r"```yaml\n(.*?)```", re.S).findall(readme[start:])[:2]
    objs = render(yaml.safe_load(values_block), NEWEST)
    for obj in objs:
        kubernetes_validate.validate(obj, NEWEST, strict=True)
    assert budgets_of(objs) == yaml.safe_load(shown)["budgets"]
    mounts, _ = store_mounts(objs)
    assert set(mounts) == STORE_VOLUMES
    assert find(objs, "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress", "Egress"]
