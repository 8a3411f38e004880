"""Lint (strict), render every scenario on the oldest, first-native and
newest supported Kubernetes versions, and validate every rendered object
strictly against that version's schemas (kubernetes-validate). The two
Prometheus Operator kinds have no schema there: their rules go through
`promtool check rules`, their shape through the tests in test_objects.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import CHART, KUBE_VERSIONS, NATIVE_SINCE, NEWEST, OLDEST, SCENARIOS, render, render_raw

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_strict(scenario):
    for kube in (OLDEST, NEWEST):
        report = helm.lint(str(CHART), SCENARIOS[scenario], strict=True, kube_version="v" + kube)
        # Severity 1 is INFO ("icon is recommended"): no icon is published.
        problems = [m for m in report["messages"] if m["severity"] > 1]
        assert not problems and not report["errors"], report


# native-mode is refused before 1.29 (test_native_mode_is_refused_on_old_clusters).
RENDERS = [(s, k) for s in sorted(SCENARIOS) for k in KUBE_VERSIONS if not (s == "native-mode" and k == OLDEST)]


@pytest.mark.parametrize("scenario,kube", RENDERS)
def test_rendered_objects_validate_strictly(scenario, kube):
    values = SCENARIOS[scenario]
    objs = render(values, kube)
    assert objs, "nothing rendered"
    validated = 0
    for obj in objs:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {kube} at {path}: {e.message}")
        validated += 1
    assert validated >= 1


def test_native_mode_is_refused_on_old_clusters():
    with pytest.raises(helm.HelmRenderError, match=r"sidecar.mode native needs Kubernetes >= 1.29"):
        render_raw({"sidecar": {"mode": "native"}}, "1.28.0")


def test_auto_mode_follows_the_cluster():
    from conftest import fieldguard_container, pod_spec

    for kube, where in (("1.28.0", "containers"), (NATIVE_SINCE, "initContainers"), (NEWEST, "initContainers")):
        _, found = fieldguard_container(pod_spec(render({}, kube)))
        assert found == where, kube


def _promtool() -> str | None:
    found = shutil.which(os.environ.get("FIELDGUARD_PROMTOOL", "promtool"))
    if not found and os.environ.get("FIELDGUARD_REQUIRE_PROMTOOL"):
        pytest.fail("FIELDGUARD_REQUIRE_PROMTOOL is set but promtool is not on PATH")
    return found


def test_prometheus_rule_passes_promtool(tmp_path):
    promtool = _promtool()
    if not promtool:
        pytest.skip("promtool not installed (CI installs Debian's prometheus package)")
    rule = next(o for o in render(SCENARIOS["all-options"]) if o["kind"] == "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_strict_validation_catches_a_misplaced_field():
    """The validator is not a no-op: a field Kubernetes does not know (here a
    volumeMount key misspelled) fails strict validation."""
    from conftest import pod_spec

    objs = render({}, NEWEST)
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    pod_spec([deployment])["volumes"][0]["configMap"]["defaultmode"] = 292
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, NEWEST, strict=True)


def test_the_packaged_chart_renders_the_same(tmp_path):
    """`helm package` output (what a chart repository serves) carries the
    files the templates read (policies, dashboard, alerts, demo config)."""
    archive = helm.package(str(CHART), destination=str(tmp_path))
    with helm.Chart.load(archive) as packaged:
        from_archive = packaged.render(SCENARIOS["all-options"], name="demo", namespace="shop", is_install=True)
    assert from_archive == render_raw(SCENARIOS["all-options"])
