#!/bin/sh
# Instructions of one warm response of a `benches/redaction.rs` case, under
# callgrind: deterministic, so comparable across builds on a busy machine
# (wall-clock figures are not). Usage, from the repository root:
#
#   benches/count.sh                                   # filter/support_agent/customers_5000
#   benches/count.sh filter/marketing_analyst/customers_5000
#   ANNOTATE=1 benches/count.sh                        # and the top of the inclusive profile
#
# In `--test` mode criterion runs a case's check (which warms the decision
# cache) and then one iteration; only `Bencher::iter` is collected, so the
# figure is one warm response (route, decide, redact), setup excluded.
set -eu
case_name=${1:-filter/support_agent/customers_5000}
bin=$(cargo bench --bench redaction --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*redaction-[^"]*\)".*/\1/p' | tail -1)
out=${TMPDIR:-/tmp}/callgrind.redaction.$$
valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
  --toggle-collect='criterion::bencher::Bencher*::iter*' \
  "$bin" --bench --test "^${case_name}\$" >/dev/null 2>&1
total=$(callgrind_annotate "$out" | sed -n 's/^ *\([0-9,]*\) (100.0%) *PROGRAM TOTALS.*/\1/p')
echo "$case_name: $total instructions"
if [ "${ANNOTATE:-0}" = 1 ]; then
  callgrind_annotate --inclusive=yes "$out" | sed -n '1,60p'
  echo "(profile kept in $out)"
else
  rm -f "$out"
fi
