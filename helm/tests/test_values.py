"""Bad values fail at install time with a message naming the value: first
values.schema.json (Helm validates it before rendering), then the chart's
own checks for what a schema cannot say."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import CHART, merge, render_raw

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
    ({"extraVolumeMounts": [{"name": "fieldguard-config", "mountPath": "/x", "subPath": "fieldguard.yaml"}]},
     "/extraVolumeMounts/0"),
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
    ({"policies": {"files": {"a.cedar": "permit(principal, action, resource);"}}},
     "policies.files has no schema.cedarschema"),
    ({"audit": {"sink": "file", "volume": {"persistentVolumeClaim": {"claimName": "a"}}}},
     "audit.volume needs exactly one volume source"),
    ({"admin": {"port": 9000}}, "proxy.port, admin.port and app.port must differ"),
    ({"example": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": True}}}, "podSelector is required"),
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
                   "example": {"enabled": False}, "podSelector": {"app": "my-api"}}),
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
