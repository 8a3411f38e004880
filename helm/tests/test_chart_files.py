"""One source of truth: the files the chart ships are copies of the
repository's (helm/sync-files.sh makes them), the chart's documentation
covers every value, and every alert's runbook link has its section."""

from __future__ import annotations

import json
import re

import yaml

from conftest import CHART, REPO

SOURCES = {
    "files/alerts.yaml": "examples/monitoring/alerts.yaml",
    "files/grafana-dashboard.json": "examples/monitoring/grafana-dashboard.json",
    "files/demo/fieldguard.yaml": "examples/demo/fieldguard.yaml",
}


def test_chart_files_are_copies_of_their_sources():
    pairs = dict(SOURCES)
    for p in (REPO / "policies").iterdir():
        if p.suffix in (".cedar", ".cedarschema"):
            pairs[f"files/policies/{p.name}"] = f"policies/{p.name}"
    shipped = {str(p.relative_to(CHART)) for p in (CHART / "files").rglob("*") if p.is_file()}
    assert shipped == set(pairs), "run helm/sync-files.sh"
    for copy, source in pairs.items():
        assert (CHART / copy).read_bytes() == (REPO / source).read_bytes(), (
            f"helm/fieldguard/{copy} differs from {source}: run helm/sync-files.sh"
        )


def test_image_tag_is_the_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cargo = (REPO / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert values["image"]["tag"] == chart["appVersion"] == version


def leaf_paths(values: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in values.items():
        path = f"{prefix}{k}"
        # Maps documented as a whole (their keys are Kubernetes fields).
        if isinstance(v, dict) and v and path not in ("resources", "securityContext", "audit.volume",
                                                      "example.shopResources") and not path.startswith("probes."):
            out += leaf_paths(v, path + ".")
        else:
            out.append(path)
    return out


def test_readme_documents_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text().split("\n## Values\n", 1)[1]
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    missing = [p for p in leaf_paths(values) if p not in documented]
    assert not missing, f"values not in the README's table: {missing}"
    unknown = [d for d in documented if d not in leaf_paths(values)]
    assert not unknown, f"README documents values that do not exist: {unknown}"


def test_every_value_is_in_the_schema():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path in leaf_paths(values):
        node = schema
        for part in path.split("."):
            assert part in node.get("properties", {}), f"{path} is not in values.schema.json"
            node = node["properties"][part]


def runbook_anchors() -> set[str]:
    text = (REPO / "docs" / "runbook.md").read_text()
    return {h.strip().lower() for h in re.findall(r"^## (\S+)\s*$", text, re.M)}


def test_every_alert_has_a_runbook_section():
    alerts = yaml.safe_load((REPO / "examples/monitoring/alerts.yaml").read_text())
    anchors = runbook_anchors()
    rules = [r for g in alerts["spec"]["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"FieldguardDown", "FieldguardAbsent", "FieldguardAddedLatencyHigh"} <= names
    for r in rules:
        url = r["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{r['alert'].lower()}", url
        assert r["alert"].lower() in anchors, f"docs/runbook.md has no section {r['alert']}"
    assert anchors == {n.lower() for n in names}, "a runbook section without its alert"


def test_dashboard_links_the_runbook():
    dashboard = json.loads((REPO / "examples/monitoring/grafana-dashboard.json").read_text())
    anchors = runbook_anchors()
    assert dashboard["links"][0]["url"] == "docs/runbook.md"
    linked = [l["url"] for p in dashboard["panels"] for l in p.get("links", [])]
    assert len(linked) >= 8
    for url in linked:
        page, anchor = url.split("#")
        assert page == "docs/runbook.md" and anchor in anchors, url
