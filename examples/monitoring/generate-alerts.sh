#!/usr/bin/env bash
# Writes alerts.yaml (a PrometheusRule for the Prometheus Operator) from
# rules.yaml (the plain Prometheus rules file, the one source): the same
# `groups:`, comments included, indented under `spec:`. Then copies it into
# the Helm chart (helm/sync-files.sh). tests/alert_rules.rs fails, naming
# this script, when alerts.yaml says anything rules.yaml does not.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rules="$here/rules.yaml"
out="$here/alerts.yaml"
grep -q '^groups:$' "$rules" || { echo "$rules: no top-level 'groups:' line" >&2; exit 1; }
tmp="$(mktemp "$out.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
  cat <<'HEADER'
# GENERATED from rules.yaml by generate-alerts.sh: edit rules.yaml, then run
# examples/monitoring/generate-alerts.sh.
#
# Prometheus alerting rules for fieldguard as a PrometheusRule custom
# resource (for the Prometheus Operator). For a plain Prometheus use
# rules.yaml, the same rules as a rules file (with promtool unit tests in
# rules.test.yaml). The Helm chart ships a copy of this file
# (helm/fieldguard/files/alerts.yaml, kept identical by a test) as an opt-in
# PrometheusRule (metrics.prometheusRule.enabled).
#
# The availability rules expect fieldguard's scrape job to be named
# `fieldguard` (the chart's ServiceMonitor does this with
# `jobLabel: app.kubernetes.io/name`); change `job="fieldguard"` if yours is
# named otherwise.
#
# Every alert has a `runbook_url`: the section of docs/runbook.md that says
# what it means and what to do. The value is a path in this repository; put
# the web address of your copy in front (the chart does it with
# metrics.runbookBaseUrl).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: fieldguard
  labels:
    app.kubernetes.io/name: fieldguard
spec:
HEADER
  # Everything from `groups:` on, two spaces deeper (blank lines stay empty,
  # so block scalars keep their content).
  sed -n '/^groups:$/,$p' "$rules" | sed 's/^\(.\)/  \1/'
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
"$here/../../helm/sync-files.sh"
