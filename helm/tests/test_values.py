"""Bad values fail at install time with a message naming the value: first
values.schema.json (Helm validates it before rendering), then the chart's
own checks for what a schema cannot say."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import CHART, NAMESPACE, _team_config, merge, render_raw

SCHEMA_REFUSALS = [
    ({"sidecar": {"mode": "sidecar"}}, "/sidecar/mode"),
    ({"proxy": {"port": 70000}}, "/proxy/port"),
    ({"proxy": {"portName": "Fieldguard_Proxy"}}, "/proxy/portName"),
    ({"admin": {"portName": "a-very-long-port-name"}}, "/admin/portName"),
    ({"audit": {"sink": "syslog"}}, "/audit/sink"),
    ({"logging": {"format": "logfmt"}}, "/logging/format"),
    ({"workerThreads": 0}, "/workerThreads"),
    ({"securityContext": {"runAsNonRoot": False}}, "/securityContext/runAsNonRoot"),
    ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
    ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
    ({"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "/securityContext/capabilities/drop"),
    ({"policies": {"files": {"policy.txt": "permit(principal, action, resource);"}}}, "/policies/files"),
    ({"secrets": {"existingSecret": "Bad_Name"}}, "/secrets/existingSecret"),
    ({"secrets": {"jwtKey": "inline-secret"}}, "additional properties 'jwtKey' not allowed"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    # What is wrong, at the mount: the config and policy volumes take no subPath.
    ({"extraVolumeMounts": [{"name": "fieldguard-config", "mountPath": "/x", "subPath": "fieldguard.yaml"}]},
     "at '/extraVolumeMounts/0': additional properties 'subPath' not allowed"),
    ({"extraVolumeMounts": [{"name": "s", "mountPath": "/s"},
                            {"name": "fieldguard-policies", "mountPath": "/p", "subPathExpr": "$(POD)"}]},
     "at '/extraVolumeMounts/1': additional properties 'subPathExpr' not allowed"),
    ({"unknownKey": True}, "additional properties 'unknownKey' not allowed"),
    ({"metrics": {"runbookBaseUrl": "docs/"}}, "/metrics/runbookBaseUrl"),
    ({"budgets": {"onStoreError": "ignore"}}, "/budgets/onStoreError"),
    ({"budgets": {"store": {"type": "valkey"}}}, "/budgets/store/type"),
    ({"budgets": {"store": {"redis": {"mode": "replicated"}}}}, "/budgets/store/redis/mode"),
    ({"budgets": {"store": {"redis": {"url": "valkey:6379"}}}}, "/budgets/store/redis/url"),
    ({"budgets": {"store": {"redis": {"nodes": ["sentinel-0:26379"]}}}}, "/budgets/store/redis/nodes/0"),
    ({"budgets": {"store": {"redis": {"password": "inline"}}}}, "additional properties 'password' not allowed"),
    ({"budgets": {"store": {"redis": {"timeoutMs": 0}}}}, "/budgets/store/redis/timeoutMs"),
    ({"budgets": {"replicas": 0}}, "/budgets/replicas"),
    ({"networkPolicy": {"budgetStoreEgress": {"ports": [70000]}}}, "/networkPolicy/budgetStoreEgress/ports/0"),
]


@pytest.mark.parametrize("values,message", SCHEMA_REFUSALS, ids=[m for _, m in SCHEMA_REFUSALS])
def test_schema_refuses_bad_values(values, message):
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as e:
            chart.validate_schema(values)
    assert message in str(e.value), str(e.value)
    # An install renders nothing either.
    with pytest.raises(helm.HelmValuesError):
        render_raw(values)


def test_schema_accepts_the_defaults():
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema({})


CHART_REFUSALS = [
    ({"config": {"file": "listeners: [{address: 0.0.0.0:1}]\n"}}, "config.file sets `listeners`"),
    ({"config": {"file": "admin: {address: 127.0.0.1:9090}\n"}}, "config.file sets `admin`"),
    ({"config": {"file": "upstream: {url: http://10.0.0.1}\n"}}, "config.file sets `upstream.url`"),
    ({"config": {"file": "policies: {directory: /p}\n"}}, "config.file sets `policies.directory`"),
    ({"config": {"file": "audit: {file: /tmp/a.log}\n"}}, "config.file sets `audit.file`"),
    ({"config": {"file": "routes: [\n"}}, "config.file is not valid YAML"),
    # Nothing to put in front of the app: not the demo's config, silently.
    ({"example": {"enabled": False}},
     "config.file is empty and example.enabled is false: the chart would put the demo shop's reference configuration"),
    ({"example": {"enabled": False}}, "--set-file config.file=fieldguard.yaml"),
    ({"config": {"file": "identity: {jwt: {hs256_secret_file: secrets/jwt.key}}\n"}},
     "config.file names relative paths (`identity.jwt.hs256_secret_file: secrets/jwt.key`)"),
    ({"config": {"file": "identity: {jwt: {hs256_secret_file: secrets/jwt.key}}\n"}},
     "give the absolute paths where they are mounted (secrets.mountPath /etc/fieldguard/secrets"),

    ({"policies": {"files": {"a.cedar": "permit(principal, action, resource);"}}},
     "policies.files has no schema.cedarschema"),
    ({"audit": {"sink": "file", "volume": {"persistentVolumeClaim": {"claimName": "a"}}}},
     "audit.volume needs exactly one volume source"),
    ({"admin": {"port": 9000}}, "proxy.port, admin.port and app.port must differ"),
    ({"example": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": True}},
      "config": {"file": _team_config()}}, "podSelector is required"),
    ({"config": {"file": "budgets: {store: {type: memory}}\n"}}, "config.file sets `budgets.store`"),
    ({"config": {"file": "budgets: {replicas: 3}\n"}}, "config.file sets `budgets.replicas`"),
    ({"config": {"file": "budgets: {on_store_error: allow}\n"}}, "config.file sets `budgets.on_store_error`"),
    ({"config": {"file": "policies: {verify_keys: [/k.pub]}\n"}}, "config.file sets `policies.verify_keys`"),
    ({"verifyKeys": {"existingSecret": "keys"}}, "verifyKeys.existingSecret is set but policies.signature is empty"),
    ({"verifyKeys": {"existingSecret": "keys", "files": []}, "policies": {"signature": "x"}},
     "verifyKeys.existingSecret is set but verifyKeys.files is empty"),
    (REDIS := {"budgets": {"store": {"type": "redis"}}}, "budgets.store.redis.url is required with mode standalone"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://a:6379", "nodes": ["redis://b:6379"]}}}}),
     "budgets.store.redis.nodes is for modes sentinel and cluster"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"mode": "sentinel", "nodes": ["redis://s:26379"]}}}}),
     "budgets.store.redis.masterName is required with mode sentinel"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"mode": "cluster"}}}}),
     "budgets.store.redis.nodes is required with mode cluster"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"mode": "cluster", "nodes": ["redis://c:6379"],
                                                   "masterName": "m"}}}}),
     "budgets.store.redis.masterName is for mode sentinel, not cluster"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"mode": "cluster", "nodes": ["redis://c:6379"],
                                                   "url": "redis://c:6379"}}}}),
     "budgets.store.redis.url is for mode standalone"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://v:6379", "tls": {"enabled": True}}}}}),
     "redis://v:6379 does not start with rediss://"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "rediss://v:6379"}}}}),
     "rediss://v:6379 does not start with redis://"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "rediss://v:6379",
                                                   "tls": {"enabled": True, "caSecret": "a", "caConfigMap": "b"}}}}}),
     "set caSecret or caConfigMap, not both"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://v:6379", "tls": {"caSecret": "a"}}}}}),
     "need tls.enabled"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://v:6379"}}},
                   "example": {"enabled": False}, "podSelector": {"app": "my-api"},
                   "config": {"file": _team_config()}}),
     "budgets.replicas is required with budgets.store.type redis when example.enabled is false"),
    ({"networkPolicy": {"enabled": True, "budgetStoreEgress": {"enabled": True, "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}}},
     "networkPolicy.budgetStoreEgress.enabled is for budgets.store.type redis"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://v:6379"}}},
                   "networkPolicy": {"enabled": True, "budgetStoreEgress": {"enabled": True}}}),
     "networkPolicy.budgetStoreEgress.to is required"),
    (merge(REDIS, {"budgets": {"store": {"redis": {"url": "redis://v:6379"}}},
                   "networkPolicy": {"budgetStoreEgress": {"enabled": True, "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}}}),
     "set networkPolicy.enabled too"),
]


@pytest.mark.parametrize("values,message", CHART_REFUSALS, ids=[m for _, m in CHART_REFUSALS])
def test_chart_refuses_what_a_schema_cannot_see(values, message):
    with pytest.raises(helm.HelmRenderError) as e:
        render_raw(values)
    assert message in str(e.value), str(e.value)


def test_schema_messages_say_what_is_wrong():
    """Each refusal names the value and what is expected of it, never only
    the schema keyword that failed ("'not' failed", "'allOf' failed")."""
    with helm.Chart.load(str(CHART)) as chart:
        for values, _ in SCHEMA_REFUSALS:
            with pytest.raises(helm.HelmValuesError) as e:
                chart.validate_schema(values)
            for opaque in ("'not' failed", "'allOf' failed", "'anyOf' failed", "'oneOf' failed"):
                assert opaque not in str(e.value), (values, str(e.value))


# Paths relative to the config file, in every place a config names a file.
RELATIVE = {
    "identity": {"jwt": {"hs256_secret_file": "secrets/jwt.key",
                         "public_keys": [{"file": "/etc/fieldguard/secrets/a.pem"}, {"file": "keys/b.pem"}]}},
    "redaction": {"hash_key_file": "./hash.key"},
    "tls": {"cert_file": "/etc/fieldguard/tls/tls.crt", "key_file": "tls.key"},
    "audit": {"hmac_key_file": "../secrets/audit.key"},
}


def test_relative_key_paths_are_refused_all_named_absolute_ones_pass():
    import yaml
    with pytest.raises(helm.HelmRenderError) as e:
        render_raw({"config": {"file": yaml.safe_dump(RELATIVE)}})
    message = str(e.value)
    for named in ("`identity.jwt.hs256_secret_file: secrets/jwt.key`",
                  "`identity.jwt.public_keys[1].file: keys/b.pem`",
                  "`redaction.hash_key_file: ./hash.key`",
                  "`tls.key_file: tls.key`",
                  "`audit.hmac_key_file: ../secrets/audit.key`"):
        assert named in message, message
    for absolute in ("a.pem", "tls.crt"):
        assert absolute not in message, message
    # The team's own config (absolute paths under secrets.mountPath) renders.
    render_raw({"config": {"file": _team_config()}})


def test_every_problem_of_a_config_file_is_in_one_message():
    config = ("listeners: [{address: 0.0.0.0:1}]\n"
              "admin: {address: 127.0.0.1:9090}\n"
              "upstream: {url: http://10.0.0.1}\n"
              "policies: {directory: /p, schema: /p/s}\n"
              "audit: {file: /tmp/a.log, stdout: true}\n"
              "budgets: {store: {type: memory}, replicas: 3, on_store_error: allow}\n"
              "redaction: {hash_key_file: hash.key}\n")
    with pytest.raises(helm.HelmRenderError) as e:
        render_raw({"config": {"file": config}})
    message = str(e.value)
    expected = ["`listeners`", "`admin`", "`upstream.url`", "`policies.directory`", "`policies.schema`",
                "`audit.file`", "`audit.stdout`", "`budgets.store`", "`budgets.replicas`",
                "`budgets.on_store_error`", "relative paths (`redaction.hash_key_file: hash.key`)"]
    for name in expected:
        assert name in message, (name, message)
    assert f"({len(expected)} problem(s), all listed)" in message, message


def test_notes_name_the_namespace():
    for values in ({}, {"example": {"enabled": False}, "config": {"file": _team_config()}}):
        notes = render_raw(values)["fieldguard/templates/NOTES.txt"]
        assert f"namespace {NAMESPACE}" in notes, notes
        # Every kubectl line works from another namespace's context.
        kubectl = [line for line in notes.splitlines() if "kubectl " in line]
        assert kubectl and all(f"kubectl -n {NAMESPACE} " in line for line in kubectl), notes


def test_subpath_mounts_are_refused_by_the_templates_too(tmp_path):
    """Behind the schema, the sidecar template refuses them itself, naming
    each mount and why (for values no schema checked): rendered from a copy
    of the chart without its schema."""
    import shutil
    chart = tmp_path / "fieldguard"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()
    mounts = [{"name": "fieldguard-config", "mountPath": "/x", "subPath": "fieldguard.yaml"},
              {"name": "scratch", "mountPath": "/s", "subPath": "a"},
              {"name": "fieldguard-policies", "mountPath": "/p", "subPathExpr": "$(POD)"}]
    with pytest.raises(helm.HelmRenderError) as e:
        render_raw({"extraVolumeMounts": mounts}, chart=chart)
    message = str(e.value)
    assert "extraVolumeMounts[0] mounts fieldguard-config with subPath; " \
           "extraVolumeMounts[2] mounts fieldguard-policies with subPathExpr: " \
           "a subPath mount is a copy made at pod start that never receives ConfigMap updates" in message, message
    assert "extraVolumeMounts[1]" not in message
