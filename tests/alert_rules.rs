//! The alerting rules: `examples/monitoring/rules.yaml` (a plain Prometheus
//! rules file, the source) passes `promtool check rules` as written and its
//! unit tests (`rules.test.yaml`) under `promtool test rules`, every alert
//! has a test case where it fires and one where it stays quiet, the
//! PrometheusRule `alerts.yaml` says what `rules.yaml` says, and the
//! documents that list the alerts (docs/audit-and-metrics.md, the runbook,
//! the Helm chart's README) name exactly its alerts.

mod common;

use common::repo_path;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

const RULES: &str = "examples/monitoring/rules.yaml";
const PROMETHEUS_RULE: &str = "examples/monitoring/alerts.yaml";
const CHART_COPY: &str = "helm/fieldguard/files/alerts.yaml";
const UNIT_TESTS: &str = "examples/monitoring/rules.test.yaml";
const GENERATE: &str = "examples/monitoring/generate-alerts.sh";

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The alerting rules of `rules.yaml`, by name.
fn alerts() -> BTreeMap<String, Value> {
    let rules = yaml(RULES);
    let mut out = BTreeMap::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("only alerting rules");
            assert!(
                out.insert(name.to_string(), rule.clone()).is_none(),
                "{name} twice in {RULES}"
            );
        }
    }
    out
}

fn names(alerts: &BTreeMap<String, Value>) -> BTreeSet<String> {
    alerts.keys().cloned().collect()
}

#[test]
fn prometheus_rule_is_generated_from_the_rules_file() {
    let rules = yaml(RULES);
    let top: Vec<&String> = rules.as_object().unwrap().keys().collect();
    assert_eq!(top, ["groups"], "{RULES} is a plain rules file");
    let rule = yaml(PROMETHEUS_RULE);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["metadata"]["name"], "fieldguard");
    assert_eq!(
        rule["spec"], rules,
        "{PROMETHEUS_RULE} says something {RULES} does not: run {GENERATE}"
    );
    assert_eq!(
        read(CHART_COPY),
        read(PROMETHEUS_RULE),
        "{CHART_COPY} differs from {PROMETHEUS_RULE}: run {GENERATE} (or helm/sync-files.sh)"
    );
    // Every alert has a severity Alertmanager routes on and a runbook
    // section.
    for (name, rule) in alerts() {
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        assert_eq!(
            rule["annotations"]["runbook_url"],
            format!("docs/runbook.md#{}", name.to_lowercase()),
            "{name}"
        );
    }
}

/// Every alert has a `promtool test rules` case that expects it to fire, and
/// one that expects it to stay quiet; every case tests an alert that exists.
#[test]
fn every_alert_has_a_case_that_fires_and_one_that_does_not() {
    let tests = yaml(UNIT_TESTS);
    assert_eq!(tests["rule_files"], serde_json::json!(["rules.yaml"]));
    let alerts = alerts();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_array().expect("tests") {
        for case in group["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            assert!(
                alerts.contains_key(&name),
                "{UNIT_TESTS} tests {name}, which {RULES} does not have"
            );
            let expected = case["exp_alerts"].as_array().map_or(&[][..], Vec::as_slice);
            if expected.is_empty() {
                quiet.insert(name);
                continue;
            }
            for alert in expected {
                assert_eq!(
                    alert["exp_labels"]["severity"], alerts[&name]["labels"]["severity"],
                    "{name}: {alert}"
                );
            }
            fires.insert(name);
        }
    }
    let all = names(&alerts);
    let never_fire: Vec<_> = all.difference(&fires).collect();
    assert!(
        never_fire.is_empty(),
        "no case in {UNIT_TESTS} makes these fire: {never_fire:?}"
    );
    let never_quiet: Vec<_> = all.difference(&quiet).collect();
    assert!(
        never_quiet.is_empty(),
        "no case in {UNIT_TESTS} expects these to stay quiet: {never_quiet:?}"
    );
}

/// `promtool check rules` on the rules file as written, and `promtool test
/// rules` on its unit tests. CI installs Debian's `prometheus` package and
/// sets FIELDGUARD_REQUIRE_PROMTOOL=1; elsewhere this runs when `promtool`
/// is on PATH.
#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    for (what, file) in [("check", RULES), ("test", UNIT_TESTS)] {
        let out = std::process::Command::new(&promtool)
            .args([what, "rules"])
            .arg(repo_path(file))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "promtool {what} rules {file}:\n{text}"
        );
        eprintln!("promtool {what} rules {file}:\n{text}");
    }
}

/// Alert names (`Fieldguard` and a capital letter, then letters and digits)
/// in a text.
fn alert_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("Fieldguard") {
        let tail = &rest[i..];
        let end = tail[1..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(tail.len(), |e| e + 1);
        if tail["Fieldguard".len()..].starts_with(|c: char| c.is_ascii_uppercase()) {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The part of a Markdown text after `heading` (a whole line) up to the
/// next heading of the same or a higher level (outside code blocks).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"))
        + heading.len()
        + 2;
    let body = &text[start..];
    let mut at = 0;
    let mut in_code = false;
    for line in body.split_inclusive('\n') {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !in_code && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        at += line.len();
    }
    &body[..at]
}

#[test]
fn documents_name_exactly_the_alerts_of_the_rules_file() {
    let alerts = alerts();
    let all = names(&alerts);

    // docs/audit-and-metrics.md: a table of every alert and its severity.
    let doc = read("docs/audit-and-metrics.md");
    let table = section(&doc, "### Dashboard and alerts");
    let mut rows = BTreeMap::new();
    for line in table.lines().filter(|l| l.starts_with("| `Fieldguard")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        assert!(
            rows.insert(name.clone(), cells[2].to_string()).is_none(),
            "{name} twice in docs/audit-and-metrics.md's alert table"
        );
    }
    assert_eq!(
        rows.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "docs/audit-and-metrics.md's alert table against {RULES}"
    );
    for (name, severity) in &rows {
        assert_eq!(
            alerts[name]["labels"]["severity"],
            severity.as_str(),
            "{name}: the severity in docs/audit-and-metrics.md's alert table"
        );
    }

    // The runbook: one section per alert, and no other alert-named one
    // (sections for what is not an alert, like open audit chains, say so
    // in their heading and are not named `Fieldguard…`).
    let runbook = read("docs/runbook.md");
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_string())
        .filter(|h| h.starts_with("Fieldguard"))
        .collect();
    assert_eq!(sections, all, "docs/runbook.md's sections against {RULES}");

    // The Helm chart's README: its Monitoring section lists them.
    let chart = read("helm/fieldguard/README.md");
    assert_eq!(
        alert_names(section(&chart, "## Monitoring")),
        all,
        "the alerts listed in helm/fieldguard/README.md's Monitoring section against {RULES}"
    );

    // Nowhere does a document name an alert that does not exist.
    let mut documents = vec![
        PathBuf::from("README.md"),
        "helm/fieldguard/README.md".into(),
    ];
    for entry in std::fs::read_dir(repo_path("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path.strip_prefix(repo_path("")).unwrap().to_path_buf());
        }
    }
    for document in documents {
        let text = read(document.to_str().unwrap());
        let unknown: Vec<_> = alert_names(&text).difference(&all).cloned().collect();
        assert!(
            unknown.is_empty(),
            "{} names alerts {RULES} does not have: {unknown:?}",
            document.display()
        );
    }
}
