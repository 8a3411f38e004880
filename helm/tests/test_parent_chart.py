"""The chart README's "Add fieldguard to your Deployment", done as a team
would: a parent chart with fieldguard as a dependency, the README's values,
Deployment and Service blocks as its templates, rendered by Helm and
validated strictly. If the README's snippet stops working, this fails."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import CHART, NEWEST, _team_config, fieldguard_container, find, objects, render_raw

README = (CHART / "README.md").read_text()


def yaml_block_after(marker: str) -> str:
    """The first ```yaml block after `marker` in the chart README."""
    start = README.index(marker)
    m = re.compile(r"```yaml\n(.*?)```", re.S).search(README, start)
    assert m, f"no yaml block after {marker!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def parent_chart(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parent") / "my-api"
    (root / "templates").mkdir(parents=True)
    (root / "charts").mkdir()
    shutil.copytree(CHART, root / "charts" / "fieldguard")
    (root / "Chart.yaml").write_text(
        "apiVersion: v2\nname: my-api\nversion: 1.0.0\n"
        "dependencies:\n  - name: fieldguard\n    version: 0.1.0\n"
    )
    (root / "values.yaml").write_text(yaml_block_after("In your chart's `values.yaml`"))
    (root / "templates" / "deployment.yaml").write_text(yaml_block_after("<!-- sidecar-snippet"))
    (root / "templates" / "service.yaml").write_text(yaml_block_after("And your Service targets fieldguard"))
    return root


def render_parent(chart: Path, kube: str) -> list[dict]:
    # --set-file fieldguard.config.file=fieldguard.yaml, as the README says.
    values = {"fieldguard": {"config": {"file": _team_config()}}}
    return objects(render_raw(values, kube, chart=chart))


@pytest.mark.parametrize("kube,where", [(NEWEST, "initContainers"), ("1.28.0", "containers")])
def test_readme_snippet_adds_the_sidecar_to_a_team_deployment(parent_chart, kube, where):
    objs = render_parent(parent_chart, kube)
    deployment = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "my-api")
    spec = deployment["spec"]["template"]["spec"]
    fg, found = fieldguard_container(spec)
    assert found == where
    assert [c["name"] for c in spec["containers"]][-1] == "my-api"
    # The volumes name the ConfigMap the dependency rendered.
    cm = find(objs, "ConfigMap", "-config")
    assert cm["metadata"]["name"] == "release-name-fieldguard-config" or cm["metadata"]["name"].endswith("fieldguard-config")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["fieldguard-config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert volumes["fieldguard-policies"]["configMap"]["name"] == "my-api-policies"
    assert volumes["fieldguard-secrets"]["secret"]["secretName"] == "my-api-fieldguard-keys"
    cfg = yaml.safe_load(cm["data"]["fieldguard.yaml"])
    assert cfg["upstream"]["url"] == "http://127.0.0.1:8000"
    assert cfg["policies"]["directory"] == "/etc/fieldguard/policies"
    # The grace the team config asks for (25 s + 5 s) plus the preStop sleep.
    assert spec["terminationGracePeriodSeconds"] == 35
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "my-api")
    assert svc["spec"]["ports"][0]["targetPort"] == "fg-proxy"
    # No example release from the dependency, and the NetworkPolicy selects
    # the team's pods.
    assert not [o for o in objs if o["kind"] in ("PodDisruptionBudget",)]
    assert find(objs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == {"app": "my-api"}
    for obj in objs:
        kubernetes_validate.validate(obj, kube, strict=True)
