"""Bad values fail at install time with a message naming the value: first
values.schema.json (Helm validates it before rendering), then the chart's
own checks for what a schema cannot say."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import CHART, render_raw

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
]


@pytest.mark.parametrize("values,message", CHART_REFUSALS, ids=[m for _, m in CHART_REFUSALS])
def test_chart_refuses_what_a_schema_cannot_see(values, message):
    with pytest.raises(helm.HelmRenderError) as e:
        render_raw(values)
    assert message in str(e.value), str(e.value)
