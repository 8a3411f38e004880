#!/usr/bin/env bash
# Copies the files the chart ships from their one source in the repository
# into helm/fieldguard/files/ (a chart cannot read outside its folder, and a
# packaged chart must carry them). helm/tests/test_chart_files.py fails when
# a copy differs from its source, naming this script.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
files="$repo/helm/fieldguard/files"
cp "$repo/examples/monitoring/alerts.yaml" "$files/alerts.yaml"
cp "$repo/examples/monitoring/grafana-dashboard.json" "$files/grafana-dashboard.json"
cp "$repo/examples/demo/fieldguard.yaml" "$files/demo/fieldguard.yaml"
rm -f "$files/policies/"*
cp "$repo/policies/"*.cedar "$repo/policies/schema.cedarschema" "$files/policies/"
