#!/usr/bin/env python3
"""Load benchmark: fieldguard next to Envoy and nginx as plain proxies.

Started by `bench/run.sh` (which installs the tools and builds the binaries);
see bench/README.md for what is measured and why. Standard library only.

Everything listens on 127.0.0.1. The processes this script starts are
stopped by pid when it exits, whatever the reason.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Customers the upstream's lists hold; (d) asks for 5,000 and (e) for all of
# them. The shop is started with the largest, so every list body carries
# `"total":20000` (one byte more than with 5,000 customers).
LIST_SIZES = (100, 5000, 20000)

# (key, label, caller, path). Callers are minted from the demo secrets.
WORKLOADS = [
    ("a", "one customer record, redacted", "support", "/customers/c-1001"),
    ("b", "denied (customer reads another customer)", "customer", "/customers/c-1002"),
    ("c", "100-customer list, redacted", "support", "/customers?limit=100"),
    ("d", "5,000-customer list, redacted", "support", "/customers?limit=5000"),
    ("e", "20,000-customer list, redacted", "support", "/customers?limit=20000"),
]
# Workloads fieldguard may refuse instead of answering with a redacted body,
# and why. Such a refusal is logged and the workload is reported as "not
# measured" for fieldguard (the other systems are measured as usual); any
# other wrong answer still stops the run.
MAY_BE_REFUSED = {
    "e": "its ~9 MB body is larger than limits.max_response_body_bytes, and this "
         "fieldguard buffers a response whole to redact it",
}
# The two-worker section: the original four workloads ((e) is one worker only).
TWO_WORKER_WORKLOADS = ("a", "b", "c", "d")
CALLERS = {
    "support": ("support_agent", "agent-7"),
    "customer": ("customer", "c-1001"),
}
PROXIES = ["fieldguard", "envoy", "nginx"]
# The budget-store section (issue 20): the same fieldguard twice, its
# budgets counted in its own memory or in a local redis-server, on these
# workloads (one record, 100 records).
BUDGET_STORE_WORKLOADS = ("a", "c")
BUDGET_TWINS = ["fieldguard+memory", "fieldguard+redis"]
# Targets for the Redis store against the memory store, on (a) only.
REDIS_MAX_LOSS = 0.10
REDIS_MAX_ADDED_P99_MS = 0.5
# The steady-rate section (issue 21): these workloads at a fixed request
# rate, STEADY_SHARE of Envoy's saturation req/s measured on the same
# workload in the same run (nginx's if Envoy is not run), driven by oha with
# latency correction (coordinated omission corrected).
STEADY_WORKLOADS = ("a", "c")
STEADY_SHARE = 0.5
# A system that answered fewer than this share of the offered rate did not
# keep up: its queue grew through the round, and its latency figures say
# "overloaded", nothing finer.
STEADY_KEEPS_UP = 0.95
# oha's error for a request still in flight when the round's time is up
# (not an answer, so not an unexpected one).
OHA_DEADLINE_ERROR = "aborted due to deadline"


def is_fieldguard(system):
    """fieldguard itself or one of the budget-store section's twins."""
    return system == "fieldguard" or system in BUDGET_TWINS

PROFILES = {
    # One worker: 5 workloads x 4 systems x (warm-up + rounds x duration)
    # = 340 s; two workers: 4 workloads x 4 systems x (warm-up + 2 rounds x
    # duration) = 176 s; with set-up, about 9 minutes.
    "full": {"duration": 5, "rounds": 3, "warmup": 2, "connections": 32, "cost_iterations": 15,
             "rounds_2w": 2, "warmup_2w": 1,
             # The budget-store section: 2 workloads x 2 twins x (warm-up +
             # 5 rounds x duration) = 108 s. More rounds than the main part:
             # its target (0.5 ms of p99) is within one round's spread here.
             "rounds_bs": 5, "warmup_bs": 2,
             # The steady-rate section: 2 workloads x 4 systems x (warm-up
             # + 3 rounds x duration) = 136 s (plus oha's start-up, ~0.1 s a
             # run), within the 3 minutes it may add to a full run.
             "rounds_st": 3, "warmup_st": 2},
    # A few seconds per system: only proves the harness still runs end to
    # end, the two-worker path included (one 1 s round, no warm-up: ~20 s);
    # the steady-rate section (when oha is installed) one 1 s round, no
    # warm-up: ~8 s.
    "smoke": {"duration": 1, "rounds": 1, "warmup": 1, "connections": 4, "cost_iterations": 2,
              "rounds_2w": 1, "warmup_2w": 0, "rounds_bs": 1, "warmup_bs": 0,
              "rounds_st": 1, "warmup_st": 0},
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes


def pinned(argv, cpus):
    """argv run through taskset on the CPUs given (an int, a list, or None
    for no pinning: the harness's own affinity)."""
    if cpus is None:
        return argv
    if isinstance(cpus, int):
        cpus = [cpus]
    return ["taskset", "-c", ",".join(str(c) for c in cpus)] + argv


def cpu_list(cpus):
    if cpus is None:
        return "unpinned"
    if isinstance(cpus, int):
        return f"CPU {cpus}"
    return ("CPU " if len(cpus) == 1 else "CPUs ") + ",".join(str(c) for c in cpus)


def set_affinity(pids, cpus):
    """Moves running processes (every thread) onto the CPUs given."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = [pid]
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


class Procs:
    """Processes this run started; stopped by pid, children first."""

    def __init__(self):
        self.started = []

    def start(self, name, argv, cpu, log_dir, env=None):
        out = open(os.path.join(log_dir, f"{name}.log"), "wb")
        # taskset execs the program, so the pid is the program's own.
        p = subprocess.Popen(pinned(argv, cpu), stdout=out, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
        self.started.append((name, p))
        return p

    def stop(self, proc):
        """Stops one process this run started (SIGTERM, then SIGKILL)."""
        for name, p in self.started:
            if p is proc:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log(f"{name} (pid {p.pid}) ignored SIGTERM; killing it")
                    p.kill()
                    p.wait(timeout=5)
        self.started = [(n, p) for n, p in self.started if p is not proc]

    def stop_all(self):
        for name, p in reversed(self.started):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.started):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) ignored SIGTERM; killing it")
                p.kill()
                p.wait(timeout=5)
        self.started = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with status {proc.returncode} at start-up "
                             f"(see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not listen on port {port} within {timeout}s")


def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
    return total


def machine_busy_ticks():
    """CPU time used on the whole machine (every process and the kernel),
    from /proc/stat: shows when something outside the benchmark (a build on
    a shared machine) took CPU during a round."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def reset_peak_rss(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass


def peak_rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


# ------------------------------------------------------------------- configs


def render(template, out_path, values):
    with open(os.path.join(BENCH, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("@" + key + "@", str(value))
    if "@" in text.replace("@type", ""):
        raise SystemExit(f"{template}: placeholder left unfilled")
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def fieldguard_config(tmp, port, admin_port, upstream_port, store=None):
    """The reference deployment with the bench's addresses, absolute paths
    (the file lives in a temp folder) and the audit trail on, to a file.

    store None: the main sections' config (budgets in shadow mode, counted
    in memory). store "memory" or ("redis", port): the budget-store
    section's twins (see budget_store_budgets)."""
    demo = os.path.join(ROOT, "examples", "demo")
    with open(os.path.join(demo, "fieldguard.yaml")) as f:
        text = f.read()
    replacements = [
        ("  - address: 127.0.0.1:8080", f"  - address: 127.0.0.1:{port}"),
        ("  url: http://127.0.0.1:9000", f"  url: http://127.0.0.1:{upstream_port}"),
        ("secrets/", os.path.join(demo, "secrets") + "/"),
        ("../../policies", os.path.join(ROOT, "policies")),
    ]
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"examples/demo/fieldguard.yaml no longer contains {old!r}; "
                             f"update bench/harness.py")
        text = text.replace(old, new)
    # The support agent reads 5,000-customer lists in a loop, which the
    # reference budgets refuse after a few: they count and flag in shadow
    # mode here, so their cost is measured and nothing is refused.
    enforce = "budgets:\n  mode: enforce"
    if enforce not in text:
        raise SystemExit("examples/demo/fieldguard.yaml no longer has `budgets:` "
                         "with `mode: enforce` first; update bench/harness.py")
    if store is None:
        text = text.replace(enforce, "budgets:\n  mode: shadow")
    else:
        text = budget_store_budgets(text, enforce, store)
    for section in ("audit:", "admin:"):
        if f"\n{section}" in text:
            raise SystemExit(f"examples/demo/fieldguard.yaml now has `{section}`; "
                             f"update bench/harness.py")
    # Records are written as requests finish and fsynced within a second:
    # the same durability class as nginx's and Envoy's buffered access logs
    # (which never fsync), with the hash chain computed for every record.
    text += (
        "\n# Added by bench/harness.py\n"
        "audit:\n"
        f"  file: {tmp}/logs/fieldguard-audit.log\n"
        "  stdout: false\n"
        "  fsync: interval\n"
        "  fsync_interval_ms: 1000\n"
        "admin:\n"
        f"  address: 127.0.0.1:{admin_port}\n"
    )
    # Its own folder: fieldguard watches the config's folder for changes, and
    # the logs written beside it would wake the watcher on every request.
    os.makedirs(os.path.join(tmp, "fieldguard"))
    path = os.path.join(tmp, "fieldguard", "fieldguard.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, response_body_limit(text)


# The refusing budgets' limit in the budget-store section: nothing the run
# can disclose reaches it (a (c) run at 10,000 req/s for an hour counts
# 3.6e9 records), so nothing is refused and every request does the same
# counting work in both twins.
BUDGET_STORE_LIMIT = 1_000_000_000_000


def budget_store_budgets(text, enforce, store):
    """The budgets of the budget-store section's twins: the reference
    budgets in `mode: enforce` (so a request makes both store calls: the
    precheck of the refusing budgets before the upstream and the charge
    after filtering; in shadow mode nothing refuses, so there is no
    precheck), every `on_exceed: refuse` limit raised to BUDGET_STORE_LIMIT
    (the reference support-records-day, 300 records a day, would refuse
    after a second of load), alerting limits unchanged (they flag in both
    twins alike), and `budgets.store` memory or redis. Both twins get the
    same text but for the store lines."""
    budgets_at = text.index(enforce)
    end = text.find("\n# ", budgets_at)  # the next top-level comment block
    nxt = [i for i in (text.find("\nunmatched:", budgets_at), end) if i != -1]
    stop = min(nxt) if nxt else len(text)
    section = text[budgets_at:stop]
    raised, count = re.subn(r"limit: \d+, on_exceed: refuse",
                            f"limit: {BUDGET_STORE_LIMIT}, on_exceed: refuse", section)
    if "support_agent:" not in section or "on_exceed: refuse" not in section or count < 1:
        raise SystemExit("examples/demo/fieldguard.yaml: the support agent no longer has a "
                         "refusing budget in `budgets:` written as `limit: N, on_exceed: "
                         "refuse`; update bench/harness.py (budget_store_budgets)")
    if "\n  store:" in section or "\n  replicas:" in section:
        raise SystemExit("examples/demo/fieldguard.yaml now sets budgets.store or "
                         "budgets.replicas; update bench/harness.py")
    if store == "memory":
        lines = "  store:\n    type: memory\n"
    else:
        _, port = store
        lines = ("  replicas: 1\n"
                 "  store:\n"
                 "    type: redis\n"
                 "    redis:\n"
                 f"      url: redis://127.0.0.1:{port}\n"
                 "      timeout_ms: 50\n")
    raised = raised.replace(enforce, "budgets:\n" + lines + "  mode: enforce", 1)
    return text[:budgets_at] + raised + text[stop:]


def response_body_limit(text):
    """`limits.max_response_body_bytes` of a fieldguard config (None if the
    file does not set it): the most fieldguard buffers per response, which
    bounds (d)'s memory. Read from the `limits:` section only, so a key of
    the same name elsewhere, or a comment after the value, cannot fool it."""
    in_limits = False
    for line in text.splitlines():
        bare = line.split("#", 1)[0].rstrip()
        if not bare.strip():
            continue
        if not bare[0].isspace():
            in_limits = bare == "limits:"
            continue
        key, _, value = bare.strip().partition(":")
        if in_limits and key == "max_response_body_bytes":
            return int(value.strip().replace("_", ""))
    return None


# ------------------------------------------------------------------ requests


def fetch(port, path, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_answers(ports, tokens, raw, keys):
    """One request per system and workload before any load: every system
    must answer what it is supposed to, or the figures mean nothing.
    Returns {(workload, system): reason} for what cannot be measured: only
    fieldguard's refusal of a workload in MAY_BE_REFUSED; any other wrong
    answer stops the run."""
    not_measured = {}
    for key, _label, caller, path in WORKLOADS:
        if key not in keys:
            continue
        token = tokens[caller]
        for system, port in ports.items():
            status, body = fetch(port, path, token)
            if not is_fieldguard(system):
                if status != 200 or body != raw[key]:
                    raise SystemExit(f"{system} {path}: status {status}, "
                                     f"{len(body)} bytes (expected the upstream's 200 body)")
                continue
            if key == "b":
                if status != 403:
                    raise SystemExit(f"{system} {path} as customer c-1001: {status}, not 403")
                continue
            if status != 200 and key in MAY_BE_REFUSED:
                log(f"({key}) NOT MEASURED for fieldguard: {path} ({len(raw[key]):,}-byte upstream "
                    f"body) answered {status} {body[:200]!r}; probably because "
                    f"{MAY_BE_REFUSED[key]}. The other systems are measured.")
                try:
                    error = json.loads(body).get("error")
                except (ValueError, AttributeError):
                    error = None
                not_measured[(key, system)] = (f"fieldguard answered {status}"
                                               + (f" `{error}`" if isinstance(error, str) else ""))
                continue
            if status != 200:
                raise SystemExit(f"{system} {path}: status {status}: {body[:200]!r}")
            doc = json.loads(body)
            original = json.loads(raw[key])
            if doc == original:
                raise SystemExit(f"{system} {path}: body not redacted")
            if "customers" in original and len(doc["customers"]) != len(original["customers"]):
                raise SystemExit(f"{system} {path}: record count changed")
    return not_measured


def run_wrk(cpu, port, path, token, seconds, connections):
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", os.path.join(BENCH, "wrk-report.lua"),
            "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(pinned(argv, cpu), capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            r = json.loads(line[len("WRK_JSON "):])
            # wrk's own CPU time (taskset execs it: it is our child).
            r["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return r
    raise SystemExit(f"wrk printed no report:\n{out.stdout}\n{out.stderr}")


# --------------------------------------------------------------------- stats


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2, suffix=""):
    if v is None:
        return "—"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:,.0f}{suffix}"
    return f"{v:,.{digits}f}{suffix}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def ms(us):
    return None if us is None else us / 1000.0


def summarise(runs):
    """Medians over rounds for each (workload, system)."""
    out = {}
    for (key, system), rs in runs.items():
        s = {
            "rps": med([r["requests"] / (r["duration_us"] / 1e6) for r in rs]),
            "p50": med([r["p50_us"] for r in rs]),
            "p99": med([r["p99_us"] for r in rs]),
            "p999": med([r["p999_us"] for r in rs]),
            "cpu_per_1k": med([r.get("cpu_per_1k") for r in rs]),
            "cpu_busy": med([r.get("cpu_busy") for r in rs]),
            "rss_mb": med([r.get("rss_mb") for r in rs]),
            "load_busy": med([r.get("load_busy") for r in rs]),
            "machine_busy": med([r.get("machine_busy") for r in rs]),
            "requests": sum(r["requests"] for r in rs),
            "bad": sum(r["unexpected"] for r in rs),
        }
        out[(key, system)] = s
    for key, *_ in WORKLOADS:
        floor = out.get((key, "direct"))
        for system in PROXIES:
            s = out.get((key, system))
            if s and floor:
                s["added_p50"] = s["p50"] - floor["p50"]
                s["added_p99"] = s["p99"] - floor["p99"]
    return out


# -------------------------------------------------------------------- report


def verdict(ok):
    return "met" if ok else "**missed**"


def over_by(value, limit, what=" the limit"):
    """How far a figure is over its limit: "N% over the limit", or "N× the
    limit" once it is ten times or more."""
    if limit <= 0:
        return f"over{what}"
    if value / limit >= 10:
        return f"{value / limit:,.0f}×{what}"
    return f"{(value / limit - 1) * 100:.0f}% over{what}"


def short_by(value, floor, what=""):
    """How far a figure is under its floor, in % of the floor."""
    if floor <= 0:
        return f"short{what}"
    return f"{(1 - value / floor) * 100:.0f}% short{what}"


def ms_over(value_us, limit_us):
    """How far a latency (µs) is over its limit: in ms, and in % of the
    limit when the limit is positive."""
    text = f"{fmt(ms(value_us - limit_us))} ms over"
    if limit_us <= 0:
        return text
    if value_us / limit_us >= 10:
        return text + f" ({value_us / limit_us:,.0f}× the limit)"
    return text + f" (+{(value_us / limit_us - 1) * 100:.0f}%)"


class Targets:
    """The rows of the Targets table: `| target | figure | verdict |`; a
    missed target's figure ends with by how much it was missed."""

    def __init__(self):
        self.rows = []
        self.not_measured = 0

    def judge(self, target, figure, ok, missed_by, note=""):
        """figure, then (if missed) by how much, then the note."""
        self.rows.append(f"| {target} | {figure}{'' if ok else ': ' + missed_by}"
                         f"{'. ' + note if note else ''} | {verdict(ok)} |")

    def unmeasured(self, target, why):
        self.not_measured += 1
        self.rows.append(f"| {target} | not measured: {why} | **not measured** |")

    def reported(self, target, figure):
        self.rows.append(f"| {target} | {figure} | reported (no target) |")


def targets_table(meta, S, nm, cost, idle_rss_mb, two, bs, st):
    """Every target of issues 20 and 21 (and the older ones) as rows of the
    Targets table, judged on the one-worker figures unless the row says
    otherwise. Returns the Targets (rows, count not measured)."""
    T = Targets()
    has_envoy = "envoy" in PROXIES

    def fg_of(key, target, against=None):
        """fieldguard's and the other system's one-worker figures for a
        target, or None (and a not-measured row) if one is missing."""
        if (key, "fieldguard") in nm:
            T.unmeasured(target, f"fieldguard: {nm[(key, 'fieldguard')]}")
            return None
        if against == "envoy" and not has_envoy:
            T.unmeasured(target, "Envoy was not run")
            return None
        fg = S.get((key, "fieldguard"))
        other = S.get((key, against)) if against else {}
        if not fg or other is None:
            T.unmeasured(target, "no figure in this run")
            return None
        return fg, other

    names = {"envoy": "Envoy", "nginx": "nginx"}

    def throughput_at_least(key, against, target):
        """fieldguard's req/s at least the other system's."""
        got = fg_of(key, target, against)
        if got:
            fg, other = got
            r = ratio(fg["rps"], other["rps"])
            T.judge(target, f"{fmt(r)}× {names[against]} ({fmt(fg['rps'], 0)} vs "
                    f"{fmt(other['rps'], 0)} req/s)", r >= 1.0, short_by(r, 1.0))

    def added_p99_at_most(key, factor, target):
        """fieldguard's added p99 at most `factor` times Envoy's."""
        got = fg_of(key, target, "envoy")
        if got:
            fg, en = got
            limit = factor * en["added_p99"]
            against = (f"{fmt(ms(en['added_p99']))} ms" if factor == 1 else
                       f"{factor} × {fmt(ms(en['added_p99']))} = {fmt(ms(limit))} ms")
            T.judge(target, f"{fmt(ms(fg['added_p99']))} ms vs {against}",
                    fg["added_p99"] <= limit, ms_over(fg["added_p99"], limit))

    def cpu_at_most(key, against, target):
        """fieldguard's CPU per request at most 1.5× the other system's."""
        got = fg_of(key, target, against)
        if got:
            fg, other = got
            r = ratio(fg["cpu_per_1k"], other["cpu_per_1k"])
            T.judge(target, f"{fmt(fg['cpu_per_1k'], 3)} vs {fmt(other['cpu_per_1k'], 3)} CPU-s "
                    f"per 1,000 = {fmt(r)}× {names[against]}", r <= 1.5,
                    over_by(r, 1.5, " the 1.5× limit"))

    # Throughput and added p99 against Envoy: (a), (b), (c).
    for key in ("a", "b", "c"):
        throughput_at_least(key, "envoy", f"({key}) throughput ≥ Envoy's" if key != "c"
                            else "(c) throughput ≥ 1.0× Envoy's")
        added_p99_at_most(key, 1, f"({key}) added p99 ≤ Envoy's")
        if key == "c":
            cpu_at_most(key, "envoy", "(c) CPU per request ≤ 1.5× Envoy's")
    cpu_at_most("a", "nginx", "(a) CPU per request ≤ 1.5× nginx's")
    throughput_at_least("d", "nginx", "(d) throughput ≥ 1.0× nginx's")
    added_p99_at_most("d", 2, "(d) added p99 ≤ 2× Envoy's")
    # (e): its figures, no target of its own (it has the RSS target below).
    target = "(e) 20,000-customer list (9 MB): reported"
    fg, en, ng = (S.get(("e", s), {}) for s in ("fieldguard", "envoy", "nginx"))
    if ("e", "fieldguard") in nm or not fg:
        T.rows.append(f"| {target} | fieldguard not measured: "
                      f"{nm.get(('e', 'fieldguard'), 'no figure')} | not measured (no target) |")
    else:
        T.reported(target, f"fieldguard {fmt(fg['rps'], 0)} req/s ("
                   + (f"{fmt(ratio(fg['rps'], en.get('rps')))}× Envoy, " if has_envoy else "")
                   + f"{fmt(ratio(fg['rps'], ng.get('rps')))}× nginx), added p99 "
                   f"{fmt(ms(fg.get('added_p99')))} ms ("
                   + (f"Envoy {fmt(ms(en.get('added_p99')))}, " if has_envoy else "")
                   + f"nginx {fmt(ms(ng.get('added_p99')))}), {fmt(fg['cpu_per_1k'], 3)} CPU-s "
                   f"per 1,000 requests, peak RSS {fmt(fg['rss_mb'], 0)} MB")
    # In-process figures (examples/body_cost.rs, same run, proxy core).
    target = "(d) redaction ≤ 2× serde_json parse + serialise"
    if cost:
        T.judge(target, f"{fmt(cost['redact_ms_per_mb'])} vs {fmt(cost['serde_json_ms_per_mb'])} "
                f"ms per MB = {fmt(cost['ratio'])}×", cost["ratio"] <= 2.0,
                over_by(cost["ratio"], 2.0, " the 2× limit"))
    else:
        T.unmeasured(target, "no examples/body_cost binary given")
    target = "5,000-customer support-agent redaction ≤ 1.0 ns per byte (in-process)"
    if cost:
        ns = cost["redact_ms"] * 1e6 / cost["body_bytes"]
        T.judge(target, f"{fmt(ns)} ns per byte = {fmt(cost['redact_ms'], 3)} ms ÷ "
                f"{cost['body_bytes']:,} bytes", ns <= 1.0, over_by(ns, 1.0),
                f"The time is examples/body_cost.rs's median of {cost['iterations']} in this run "
                f"(the (d) body as the support agent: route + decision + redaction, on the "
                f"proxy core), not criterion's `filter/support_agent/customers_5000`")
    else:
        T.unmeasured(target, "no examples/body_cost binary given")
    # Memory.
    target = "(d) peak RSS bounded by concurrency × body limit"
    fg_d = S.get(("d", "fieldguard"), {})
    if fg_d.get("rss_mb") is not None and meta.get("body_limit"):
        bound = meta["connections"] * meta["body_limit"] / 2**20
        grown = fg_d["rss_mb"] - (idle_rss_mb or 0)
        T.judge(target, f"{fmt(fg_d['rss_mb'], 0)} MB (idle {fmt(idle_rss_mb, 0)} MB) vs "
                f"{meta['connections']} × {meta['body_limit'] // 2**20} MiB = {bound:,.0f} MiB",
                grown <= bound, f"{grown - bound:,.0f} MiB over")
    else:
        T.unmeasured(target, nm.get(("d", "fieldguard"), "no peak RSS or no body limit"))
    target = "(d)/(e) peak RSS within 10%: fieldguard's peak RSS at 20,000 vs 5,000 customers"
    fg_e = S.get(("e", "fieldguard"), {})
    rss_d, rss_e = fg_d.get("rss_mb"), fg_e.get("rss_mb")
    if rss_d is not None and rss_e is not None:
        r = ratio(rss_e, rss_d)
        T.judge(target, f"{fmt(rss_e, 0)} MB at 20,000 vs {fmt(rss_d, 0)} MB at 5,000 "
                f"({meta['connections']} connections each) = {fmt(r)}×", abs(r - 1) <= 0.10,
                f"{abs(r - 1) * 100:.1f}% apart, {abs(r - 1) * 100 - 10:.1f} points outside")
    else:
        why = nm.get(("e", "fieldguard"), "no figure")
        T.unmeasured(target, f"{why} to (e) (5,000: {fmt(rss_d, 0)} MB)")
    # Steady rate (oha, latency-corrected).
    for key in STEADY_WORKLOADS:
        for q in ("p50", "p99"):
            target = f"({key}) steady rate: added {q} ≤ Envoy's"
            if "skipped" in st:
                T.unmeasured(target, st["skipped"])
                continue
            if key not in st["rates"]:
                T.unmeasured(target, "no saturation figure to set the rate from")
                continue
            if st["bases"][key] != "envoy":
                T.unmeasured(target, f"Envoy was not run (the rate was half of "
                             f"{st['bases'][key]}'s)")
                continue
            if (key, "fieldguard") in st["not_measured"]:
                T.unmeasured(target, f"fieldguard: {st['not_measured'][(key, 'fieldguard')]}")
                continue
            fg, en = st["summary"].get((key, "fieldguard")), st["summary"].get((key, "envoy"))
            a_fg = fg and fg.get("added_" + q)
            a_en = en and en.get("added_" + q)
            if a_fg is None or a_en is None:
                T.unmeasured(target, "no figure in this run")
                continue
            notes = [f"{name} **overloaded**: {fmt(s['achieved'], 0)} of "
                     f"{fmt(float(s['offered']), 0)} req/s answered" for name, s in (("fieldguard", fg), ("Envoy", en))
                     if s["achieved"] is not None and s["achieved"] < STEADY_KEEPS_UP * s["offered"]]
            T.judge(target, f"{fmt(ms(a_fg))} ms vs {fmt(ms(a_en))} ms at "
                    f"{fmt(float(st['rates'][key]), 0)} req/s offered", a_fg <= a_en,
                    ms_over(a_fg, a_en), "; ".join(notes))
    # Two workers: scaling against Envoy's, same run.
    for key in ("c", "d"):
        target = f"({key}) two workers: scaling (2-worker ÷ 1-worker req/s) ≥ Envoy's"
        if "skipped" in two:
            T.unmeasured(target, two["skipped"])
            continue
        if not has_envoy:
            T.unmeasured(target, "Envoy was not run")
            continue
        if (key, "fieldguard") in nm or (key, "fieldguard") in two["not_measured"]:
            T.unmeasured(target, "fieldguard: " + (nm.get((key, "fieldguard"))
                                                   or two["not_measured"][(key, "fieldguard")]))
            continue
        S2 = two["summary"]
        fg1, fg2 = S.get((key, "fieldguard"), {}).get("rps"), S2.get((key, "fieldguard"), {}).get("rps")
        en1, en2 = S.get((key, "envoy"), {}).get("rps"), S2.get((key, "envoy"), {}).get("rps")
        sf, se = ratio(fg2, fg1), ratio(en2, en1)
        if sf is None or se is None:
            T.unmeasured(target, "no figure in this run")
            continue
        T.judge(target, f"fieldguard {fmt(sf)}× ({fmt(fg2, 0)} ÷ {fmt(fg1, 0)} req/s) vs Envoy "
                f"{fmt(se)}× ({fmt(en2, 0)} ÷ {fmt(en1, 0)})", sf >= se,
                short_by(sf, se, " of Envoy's scaling"))
    # The budget store (issue 20).
    if "summary" in bs:
        T.rows.extend(budget_store_targets(bs["summary"])[2:])
    else:
        T.unmeasured("(a) Redis budget store vs memory", bs.get("skipped"))
    return T


def report(meta, summary, cost, raw_sizes, idle_rss_mb, not_measured, two, bs, st):
    """The Markdown report. not_measured: {(workload, system): reason};
    two: the two-worker part ({"summary", "not_measured", "layout", ...}),
    or {"skipped": reason}; bs: the budget-store section (budget_store);
    st: the steady-rate section (steady), or {"skipped": reason}."""
    S = summary
    nm = not_measured
    lines = []
    w = lines.append
    w(f"# fieldguard vs Envoy vs nginx — load benchmark ({meta['mode']} run)")
    w("")
    w(f"{meta['date']} · {meta['cpu_model']} · {meta['cpus']} CPUs · Linux {meta['kernel']} · "
      f"fieldguard {meta['fieldguard_rev']} ({meta['build']}) · {meta['envoy']} · {meta['nginx']} · "
      f"{meta['wrk']}")
    w("")
    w(f"Each cell: median of {meta['rounds']} rounds of {meta['duration']} s at "
      f"{meta['connections']} keep-alive connections (wrk, 1 thread), systems alternated "
      f"every round, after a {meta['warmup']} s warm-up. Proxies pinned to CPU "
      f"{meta['proxy_cpu']}, load generator and upstream to CPU {meta['load_cpu']}; every "
      f"proxy runs one worker (fieldguard `FIELDGUARD_WORKER_THREADS=1`, Envoy "
      f"`--concurrency 1`, nginx `worker_processes 1`) and writes one log line per request "
      f"to a file. Absolute numbers drift on a shared 2-core machine; compare the ratios. "
      f"Latency at a steady rate (half of Envoy's saturation, oha with latency correction) "
      f"and two workers per proxy: sections of their own below, the latter with its own CPU "
      f"layout.")
    w("")
    w("## fieldguard relative to the plain proxies, same run")
    w("")
    w("fieldguard evaluates the reference Cedar policies and redacts every record field by "
      "field; Envoy and nginx only forward. Ratios > 1 in throughput favour fieldguard; "
      "in CPU they cost it.")
    w("")
    w("| workload | throughput ÷ Envoy | throughput ÷ nginx | added p99 (ms) fieldguard / Envoy / nginx "
      "| CPU per request ÷ Envoy | CPU per request ÷ nginx |")
    w("|---|---|---|---|---|---|")
    for key, label, *_ in WORKLOADS:
        fg, en, ng = (S.get((key, s), {}) for s in ("fieldguard", "envoy", "nginx"))
        if (key, "fieldguard") in nm:
            w(f"| ({key}) {label} | not measured: {nm[(key, 'fieldguard')]} | — "
              f"| — / {fmt(ms(en.get('added_p99')))} / {fmt(ms(ng.get('added_p99')))} | — | — |")
            continue
        w(f"| ({key}) {label} | {fmt(ratio(fg.get('rps'), en.get('rps')))}× "
          f"| {fmt(ratio(fg.get('rps'), ng.get('rps')))}× "
          f"| {fmt(ms(fg.get('added_p99')))} / {fmt(ms(en.get('added_p99')))} / "
          f"{fmt(ms(ng.get('added_p99')))} "
          f"| {fmt(ratio(fg.get('cpu_per_1k'), en.get('cpu_per_1k')))}× "
          f"| {fmt(ratio(fg.get('cpu_per_1k'), ng.get('cpu_per_1k')))}× |")
    w("")
    w("## Targets")
    w("")
    w("| target | figure | |")
    w("|---|---|---|")
    T = targets_table(meta, S, nm, cost, idle_rss_mb, two, bs, st)
    for row in T.rows:
        w(row)
    if T.not_measured:
        w("")
        w("A target marked **not measured** is not met: its figure could not be taken in "
          "this run (see the log and the section or row it would come from).")
    w("")
    w("## All figures")
    w("")
    w("Latency in ms; added = minus the direct floor's same percentile; CPU = proxy "
      "process(es) user + system; busy = share of the proxy's core used during the round; "
      "peak RSS = VmHWM (reset before each round; nginx: master + worker).")
    w("")
    w("| workload | system | req/s | p50 | p99 | p99.9 | added p50 | added p99 "
      "| CPU-s / 1k req | busy | peak RSS MB | requests | unexpected |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, *_ in WORKLOADS:
        for system in ["direct"] + PROXIES:
            s = S.get((key, system))
            if (key, system) in nm:
                w(f"| ({key}) | {system} | not measured: {nm[(key, system)]} "
                  + "| — " * 10 + "|")
                continue
            if not s:
                continue
            w(f"| ({key}) | {system} | {fmt(s['rps'], 0)} | {fmt(ms(s['p50']))} "
              f"| {fmt(ms(s['p99']))} | {fmt(ms(s['p999']))} | {fmt(ms(s.get('added_p50')))} "
              f"| {fmt(ms(s.get('added_p99')))} | {fmt(s['cpu_per_1k'], 3)} "
              f"| {fmt(s['cpu_busy'] and s['cpu_busy'] * 100, 0, '%')} | {fmt(s['rss_mb'], 0)} "
              f"| {s['requests']:,} | {s['bad']} |")
    w("")
    steady_section(w, meta, st)
    budget_store_section(w, meta, bs)
    two_worker_section(w, meta, S, two)
    w("## Bodies")
    w("")
    w("Demo-shop records have more fields than the issue's 1 KB estimate assumed: one "
      "customer is about 450 bytes. Sizes as served by the upstream:")
    w("")
    for key, label, _caller, path in WORKLOADS:
        w(f"- ({key}) `GET {path}`: {raw_sizes[key]:,} bytes")
    if cost:
        w("")
        w(f"Redaction cost of the (d) body in-process (examples/body_cost.rs, median of "
          f"{cost['iterations']}): {fmt(cost['redact_ms'])} ms for route + decision + redaction "
          f"(scan, field decisions, write) vs {fmt(cost['serde_json_ms'])} ms for serde_json "
          f"parse + serialise; {cost['body_bytes']:,} → {cost['redacted_bytes']:,} bytes.")
        split = cost.get("split")
        if split:
            w("")
            w(f"More cores for one big body (issue 21), bounded from above "
              f"(examples/split_cost.rs, median of {split['iterations']}, both cores, unpinned): "
              f"the (d) body cut into {split['pieces']} pieces at record boundaries takes "
              f"{fmt(split['one_thread_ms'])} ms redacted one piece after the other on one thread "
              f"and {fmt(split['threads_ms'])} ms on {split['pieces']} threads "
              f"({fmt(split['speedup'])}×). Finding the cut and merging the pieces' reports are "
              f"left out. A proxy busy with other requests has no idle core to lend, so this "
              f"is what one request's latency could gain on an otherwise idle machine, not "
              f"throughput at saturation.")
    if meta.get("audit_records") is not None:
        w("")
        per = meta.get("audit_bytes", 0) / max(meta["audit_records"], 1)
        w(f"fieldguard audit records written during the run: {meta['audit_records']:,} "
          f"(requests sent to it: {meta['fieldguard_requests']:,}, incl. warm-up and checks); "
          f"{meta.get('audit_bytes', 0):,} bytes of audit log, {per:,.0f} bytes per request "
          f"including definition records.")
    w("")
    return "\n".join(lines)


def two_worker_section(w, meta, S1, two):
    w("## Two workers per proxy")
    w("")
    if "skipped" in two:
        w(f"Not run: {two['skipped']}.")
        w("")
        return
    S, nm, lay = two["summary"], two["not_measured"], two["layout"]
    keys = [k for k, *_ in WORKLOADS if k in TWO_WORKER_WORKLOADS]
    w(f"The same workloads ({', '.join(f'({k})' for k in keys)}) with two workers per proxy: "
      f"fieldguard `FIELDGUARD_WORKER_THREADS=2`, Envoy `--concurrency 2`, nginx "
      f"`worker_processes 2` (`listen ... reuseport`, one accept socket per worker, as Envoy "
      f"has by default on Linux). Fresh processes with otherwise the same configs, the same "
      f"{meta['connections']} connections and the same wrk (1 thread). Each cell: median of "
      f"{two['rounds']} round(s) of {meta['duration']} s"
      + (f" after a {two['warmup']} s warm-up" if two["warmup"] else ", no warm-up")
      + (" (fewer rounds than the one-worker part, to keep a full run under ten minutes)"
         if two["rounds"] < meta["rounds"] else "")
      + ". Scaling = the system's two-worker req/s ÷ its one-worker req/s in the tables "
      "above (same run). The targets are judged on the one-worker figures only.")
    w("")
    if lay["shared"]:
        w(f"**CPU layout: shared cores.** This machine has {len(lay['cpus'])} CPUs, so a "
          f"two-worker proxy cannot have cores of its own: the proxies run on "
          f"{cpu_list(lay['proxy'])}, and wrk and the upstream nginx are not pinned (upstream "
          f"{cpu_list(lay['upstream'])}, wrk {cpu_list(lay['load'])}), so the kernel spreads "
          f"all of them over both cores. Pinning wrk and the upstream to one CPU instead would "
          f"leave one proxy worker competing with them there while the other has a core to "
          f"itself; unpinned, the proxy gets all the CPU time the load side leaves. What that "
          f"means for the numbers: the load generator and the upstream take CPU time from the "
          f"proxy under test (column *wrk + upstream* below), so on a quiet machine no proxy "
          f"can reach 2× its one-worker throughput here; a proxy gets at most "
          f"{len(lay['cpus'])} cores minus the load side's share, and the direct floor (no "
          f"proxy, same layout) is a ceiling for all of them. A scaling above 2× means a round "
          f"was disturbed (most likely the one-worker one, by other work on the machine: the "
          f"log shows each round's machine CPU). The one-worker layout gave the proxy a core "
          f"of its own, so the "
          f"scaling ratio mixes the second worker's gain with the loss of that dedicated core: "
          f"read it as a lower bound for a machine where the proxy has two cores to itself, "
          f"and compare the systems with each other within this section.")
    else:
        w(f"**CPU layout:** proxies on {cpu_list(lay['proxy'])}, wrk on {cpu_list(lay['load'])}, "
          f"the upstream on {cpu_list(lay['upstream'])}: each proxy has two cores of its own.")
    w("")
    w("| workload | req/s fieldguard / Envoy / nginx | direct req/s (same layout) "
      "| added p99 (ms) fieldguard / Envoy / nginx | throughput ÷ Envoy | throughput ÷ nginx "
      "| scaling (2 ÷ 1 worker) fieldguard / Envoy / nginx |")
    w("|---|---|---|---|---|---|---|")
    for key, label, *_ in WORKLOADS:
        if key not in keys:
            continue
        fg, en, ng = (S.get((key, s), {}) for s in ("fieldguard", "envoy", "nginx"))
        dr = S.get((key, "direct"), {})
        scale = " / ".join(f"{fmt(ratio(S.get((key, s), {}).get('rps'), S1.get((key, s), {}).get('rps')))}×"
                           for s in PROXIES)
        fg_rps = f"not measured: {nm[(key, 'fieldguard')]}" if (key, "fieldguard") in nm \
            else fmt(fg.get("rps"), 0)
        w(f"| ({key}) {label} | {fg_rps} / {fmt(en.get('rps'), 0)} / {fmt(ng.get('rps'), 0)} "
          f"| {fmt(dr.get('rps'), 0)} "
          f"| {fmt(ms(fg.get('added_p99')))} / {fmt(ms(en.get('added_p99')))} / "
          f"{fmt(ms(ng.get('added_p99')))} "
          f"| {fmt(ratio(fg.get('rps'), en.get('rps')))}× "
          f"| {fmt(ratio(fg.get('rps'), ng.get('rps')))}× | {scale} |")
    w("")
    w("All two-worker figures (latency in ms; added = minus the direct floor measured in this "
      f"layout; CPU in cores = CPU-seconds per second of the round, {len(lay['cpus'])}.00 = "
      "every core: the proxy's process(es); wrk plus the upstream nginx; the whole machine, "
      "kernel included. Machine CPU well above the other two means something outside the "
      "benchmark, such as a build, took CPU during the round):")
    w("")
    w("| workload | system | req/s | p50 | p99 | p99.9 | added p99 | CPU-s / 1k req "
      "| proxy CPU (cores) | wrk + upstream CPU (cores) | machine CPU (cores) | peak RSS MB "
      "| requests | unexpected |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, *_ in WORKLOADS:
        if key not in keys:
            continue
        for system in ["direct"] + PROXIES:
            s = S.get((key, system))
            if (key, system) in nm:
                w(f"| ({key}) | {system} | not measured: {nm[(key, system)]} "
                  + "| — " * 11 + "|")
                continue
            if not s:
                continue
            w(f"| ({key}) | {system} | {fmt(s['rps'], 0)} | {fmt(ms(s['p50']))} "
              f"| {fmt(ms(s['p99']))} | {fmt(ms(s['p999']))} | {fmt(ms(s.get('added_p99')))} "
              f"| {fmt(s['cpu_per_1k'], 3)} | {fmt(s['cpu_busy'])} | {fmt(s['load_busy'])} "
              f"| {fmt(s['machine_busy'])} | {fmt(s['rss_mb'], 0)} | {s['requests']:,} | {s['bad']} |")
    w("")


# ---------------------------------------------------------------------- main


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except OSError:
        return "?"


def two_worker_layout(cpus):
    """CPUs for the two-worker part: each proxy on two CPUs, wrk and the
    upstream where they disturb it least. With two CPUs nothing can have a
    core of its own: the proxies may use both and wrk and the upstream are
    not pinned, so the kernel balances all of them (see bench/README.md).
    None with one CPU: two workers would only take turns."""
    n = len(cpus)
    if n >= 4:
        return {"cpus": cpus, "proxy": cpus[-2:], "load": [cpus[0]], "upstream": [cpus[1]],
                "shared": False}
    if n == 3:
        return {"cpus": cpus, "proxy": cpus[1:], "load": [cpus[0]], "upstream": [cpus[0]],
                "shared": False}
    if n == 2:
        return {"cpus": cpus, "proxy": list(cpus), "load": None, "upstream": list(cpus),
                "shared": True}
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=PROFILES, default="full")
    ap.add_argument("--fieldguard", required=True)
    ap.add_argument("--body-cost", help="examples/body_cost binary (optional)")
    ap.add_argument("--split-cost", help="examples/split_cost binary (optional): the (d) body "
                    "cut in two and redacted on two threads vs one")
    ap.add_argument("--envoy", help="Envoy binary (omit to leave Envoy out)")
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--out", help="write the Markdown table here too")
    ap.add_argument("--build", default="release")
    ap.add_argument("--redis-server", help="redis-server binary for the budget-store section")
    ap.add_argument("--redis-skip", help="why the budget-store section is not run (no "
                    "--redis-server): printed in the report")
    ap.add_argument("--oha", help="oha binary for the steady-rate section")
    ap.add_argument("--steady-skip", help="why the steady-rate section is not run (no --oha): "
                    "printed in the report")
    ap.add_argument("--budget-store-only", action="store_true",
                    help="run only the budget-store section (memory vs Redis on (a) and (c))")
    args = ap.parse_args()
    args.redis_version = (tool_version([args.redis_server, "--version"]).split(" v=")[-1].split()[0]
                          if args.redis_server else None)
    args.oha_flags = oha_output_flags(args.oha) if args.oha and not args.budget_store_only else []
    args.oha_version = tool_version([args.oha, "--version"]) if args.oha else None
    prof = PROFILES[args.mode]
    systems = ["direct", "fieldguard"] + (["envoy"] if args.envoy else []) + ["nginx"]
    if not args.envoy:
        PROXIES.remove("envoy")

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        load_cpu, proxy_cpu = cpus[0], cpus[-1]
    else:
        load_cpu = proxy_cpu = None
        log("one CPU only: nothing is pinned, figures are even less absolute")
    upstream_cpu = load_cpu if len(cpus) < 3 else cpus[1]
    layout2 = two_worker_layout(cpus)

    tmp = tempfile.mkdtemp(prefix="fieldguard-bench-")
    # nginx workers drop root privileges: they must be able to read the bodies.
    os.chmod(tmp, 0o755)
    os.makedirs(os.path.join(tmp, "logs"))
    procs = Procs()

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(args, prof, systems, tmp, procs, load_cpu, proxy_cpu, upstream_cpu, layout2)
    finally:
        procs.stop_all()
        if os.environ.get("BENCH_KEEP"):
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def start_proxies(args, systems, tmp, procs, ports, workers, cpus, tag):
    """fieldguard, Envoy and nginx with `workers` workers each, on `cpus`;
    configs, logs and the audit trail under tmp. Returns (process per
    system, pid getter per system, fieldguard config, its body limit)."""
    started, pids = {}, {}
    common = {"TMP": tmp, "UPSTREAM_PORT": ports["direct"]}
    fg_conf, body_limit = fieldguard_config(tmp, ports["fieldguard"], free_port(), ports["direct"])
    check = subprocess.run([args.fieldguard, "validate", "--config", fg_conf],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"bench fieldguard config invalid: {check.stderr}")
    env = dict(os.environ, FIELDGUARD_WORKER_THREADS=str(workers), FIELDGUARD_LOG="warn")
    fg = procs.start(f"fieldguard{tag}", [args.fieldguard, "run", "--config", fg_conf], cpus, tmp, env)
    wait_for_port(ports["fieldguard"], fg, f"fieldguard{tag}")
    started["fieldguard"] = fg
    pids["fieldguard"] = lambda: [fg.pid]

    if "envoy" in systems:
        en_conf = render("envoy.yaml.in", os.path.join(tmp, "envoy.yaml"),
                         dict(common, PORT=ports["envoy"]))
        en = procs.start(f"envoy{tag}", [args.envoy, "-c", en_conf, "--concurrency", str(workers),
                                         "--disable-hot-restart", "-l", "warning"], cpus, tmp)
        wait_for_port(ports["envoy"], en, f"envoy{tag}")
        started["envoy"] = en
        pids["envoy"] = lambda: [en.pid]

    # Several nginx workers get one accept socket each (reuseport), as
    # Envoy's workers do by default on Linux; one worker: as it always was.
    ng_conf = render("nginx-proxy.conf.in", os.path.join(tmp, "nginx-proxy.conf"),
                     dict(common, PORT=ports["nginx"], WORKERS=workers,
                          LISTEN_OPTIONS=" reuseport" if workers > 1 else ""))
    os.makedirs(os.path.join(tmp, "proxy"))
    ng = procs.start(f"nginx-proxy{tag}", [args.nginx, "-c", ng_conf, "-p", os.path.join(tmp, "proxy")],
                     cpus, tmp)
    wait_for_port(ports["nginx"], ng, f"nginx (proxy{tag})")
    started["nginx"] = ng
    pids["nginx"] = lambda: [ng.pid] + children(ng.pid)
    return started, pids, fg_conf, body_limit


def measure(keys, systems, ports, pids, tokens, load_cpus, upstream_pids, rounds, warmup,
            prof, not_measured, tag="", snap=None):
    """Warm-up, then `rounds` rounds of every workload in `keys` on every
    system (order rotated every round). Returns ({(workload, system):
    [wrk report + /proc figures per round]}, requests sent to fieldguard).
    snap: optional function called with the system and "before" / "after"
    around each round; its two results are kept in the round's report as
    "snap"."""
    runs = {}
    sent_to_fg = 0
    for key, _label, caller, path in WORKLOADS:
        if key not in keys:
            continue
        token = tokens[caller]
        active = [s for s in systems if (key, s) not in not_measured]
        for system in active if warmup else []:
            r = run_wrk(load_cpus, ports[system], path, token, warmup, prof["connections"])
            if is_fieldguard(system):
                sent_to_fg += r["requests"]
        for rnd in range(rounds):
            order = active[rnd % len(active):] + active[:rnd % len(active)]
            for system in order:
                proc_pids = pids[system]() if system in pids else []
                reset_peak_rss(proc_pids)
                before = cpu_ticks(proc_pids)
                up_before = cpu_ticks(upstream_pids)
                snap_before = snap(system, "before") if snap else None
                machine_before = machine_busy_ticks()
                r = run_wrk(load_cpus, ports[system], path, token, prof["duration"], prof["connections"])
                if snap:
                    r["snap"] = (snap_before, snap(system, "after"))
                seconds = r["duration_us"] / 1e6
                r["machine_busy"] = (machine_busy_ticks() - machine_before) / CLK_TCK / seconds
                # The load side: wrk plus the upstream nginx (which serves
                # the direct floor and every proxy alike).
                r["load_busy"] = ((cpu_ticks(upstream_pids) - up_before) / CLK_TCK
                                  + r["wrk_cpu_s"]) / seconds
                if proc_pids:
                    cpu_s = (cpu_ticks(proc_pids) - before) / CLK_TCK
                    r["cpu_per_1k"] = cpu_s / max(r["requests"], 1) * 1000
                    r["cpu_busy"] = cpu_s / seconds
                    r["rss_mb"] = peak_rss_kb(proc_pids) / 1024
                denied = is_fieldguard(system) and key == "b"
                non_2xx = r["errors_status"]
                r["unexpected"] = (r["errors_connect"] + r["errors_read"] + r["errors_write"]
                                   + r["errors_timeout"]
                                   + (r["requests"] - non_2xx if denied else non_2xx))
                if is_fieldguard(system):
                    sent_to_fg += r["requests"]
                runs.setdefault((key, system), []).append(r)
                log(f"({key}) {tag}round {rnd + 1} {system:10} {r['requests'] / seconds:10,.0f} req/s "
                    f"p99 {r['p99_us'] / 1000:8.2f} ms"
                    + (f"  cpu/1k {r['cpu_per_1k']:.3f}s  rss {r['rss_mb']:.0f} MB" if proc_pids else "")
                    + (f"  cores {r['cpu_busy']:.2f}" if proc_pids and tag else "")
                    + (f"  load side {r['load_busy']:.2f}" if tag else "")
                    + f"  machine {r['machine_busy']:.2f}"
                    + (f"  UNEXPECTED {r['unexpected']}" if r["unexpected"] else ""))
    return runs, sent_to_fg


# ------------------------------------------------------- budget store section


def redis_command(port, *words, timeout=5):
    """One command to the redis-server on 127.0.0.1:port (RESP); the reply's
    text (a status, an error, an integer or a bulk string)."""
    msg = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(w.encode())}\r\n".encode() + w.encode() + b"\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(msg)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n")
        if head[:1] != b"$":
            return head.decode(errors="replace")
        size = int(head[1:])
        if size < 0:
            return ""
        while len(rest) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return rest[:size].decode(errors="replace")


def redis_script_stats(port):
    """(calls, server-side µs) of the script commands (EVALSHA, and EVAL
    should the script cache ever miss) since the server started."""
    calls = usec = 0
    for line in redis_command(port, "INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            fields = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
            calls += int(fields.get("calls", 0))
            usec += int(float(fields.get("usec", 0)))
    return calls, usec


def store_metrics(admin_port):
    """fieldguard's budget-store metrics from its admin /metrics: the
    round-trip histogram ({le: cumulative count}, count, sum), errors by
    reason and the up gauge."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {"buckets": {}, "count": 0, "sum": 0.0, "errors": {}, "up": None}
    name = "fieldguard_budget_store_"
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        value = float(value)
        m = re.match(r'duration_seconds_bucket\{le="([^"]+)"\}', metric[len(name):])
        if m:
            out["buckets"][float(m.group(1))] = value
        elif metric == name + "duration_seconds_count":
            out["count"] = value
        elif metric == name + "duration_seconds_sum":
            out["sum"] = value
        elif metric.startswith(name + "errors_total"):
            m = re.search(r'reason="([^"]+)"', metric)
            out["errors"][m.group(1) if m else "?"] = value
        elif metric == name + "up":
            out["up"] = value
    return out


def wait_store_up(admin_port, timeout=10):
    """fieldguard's store metrics once `fieldguard_budget_store_up` is 1
    (a probe asks a store that failed every 500 ms); fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        m = store_metrics(admin_port)
        if m["up"] == 1:
            return m
        if time.monotonic() > deadline:
            raise SystemExit(f"fieldguard+redis: the budget store is not answering "
                             f"(fieldguard_budget_store_up {m['up']} for {timeout}s; "
                             f"errors {m['errors']})")
        time.sleep(0.1)


def histogram_quantile(q, buckets):
    """Prometheus's histogram_quantile over {le: count} (cumulative, +Inf
    included): linear within the bucket the quantile falls in; None when
    empty. Only as fine as the buckets (0.1, 0.25, 0.5, 1, 2.5 ms, ...)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if le == float("inf"):
                return lower  # beyond the largest finite bucket
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return bounds[-1]


def start_redis(args, tmp, procs, cpu):
    """A redis-server of our own on a free loopback port, persistence off,
    pinned like the upstream; stopped by pid with everything else."""
    port = free_port()
    rdir = os.path.join(tmp, "redis")
    os.makedirs(rdir)
    argv = [args.redis_server, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", rdir, "--daemonize", "no",
            "--logfile", ""]
    proc = procs.start("redis-server", argv, cpu, tmp)
    wait_for_port(port, proc, "redis-server")
    deadline = time.monotonic() + 10
    while redis_command(port, "PING") != "+PONG":
        if time.monotonic() > deadline:
            raise SystemExit("redis-server does not answer PING (see its log)")
        time.sleep(0.1)
    return proc, port


def budget_store(args, prof, tmp, procs, upstream_port, upstream_pids, tokens, raw,
                 load_cpu, proxy_cpu, upstream_cpu):
    """The budget-store section: fieldguard twice, one worker each, with
    the reference budgets in enforce mode (refusing limits raised so
    nothing is refused) counted in its memory or in a local redis-server,
    measured on BUDGET_STORE_WORKLOADS in the same layout as the one-worker
    part (twins where the proxies run, redis-server beside the upstream).
    Returns the section's figures, or {"skipped": reason}."""
    if not args.redis_server:
        return {"skipped": args.redis_skip or "no redis-server given"}
    t0 = time.monotonic()
    redis, redis_port = start_redis(args, tmp, procs, upstream_cpu)
    ports, admin, pids, started = {}, {}, {}, {}
    for system in BUDGET_TWINS:
        store = "memory" if system.endswith("memory") else ("redis", redis_port)
        twin_tmp = os.path.join(tmp, "bs-" + system.split("+")[1])
        os.makedirs(os.path.join(twin_tmp, "logs"))
        ports[system], admin[system] = free_port(), free_port()
        conf, _ = fieldguard_config(twin_tmp, ports[system], admin[system], upstream_port, store)
        check = subprocess.run([args.fieldguard, "validate", "--config", conf],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"bench {system} config invalid: {check.stderr}")
        env = dict(os.environ, FIELDGUARD_WORKER_THREADS="1", FIELDGUARD_LOG="warn")
        proc = procs.start(system, [args.fieldguard, "run", "--config", conf], proxy_cpu, tmp, env)
        wait_for_port(ports[system], proc, system)
        started[system] = proc
        pids[system] = (lambda p: lambda: [p.pid])(proc)
    keys = list(BUDGET_STORE_WORKLOADS)
    not_measured = check_answers(ports, tokens, raw, keys)
    if not_measured:
        raise SystemExit(f"budget store section: a twin refused a workload: {not_measured}")
    before = wait_store_up(admin["fieldguard+redis"])
    if before["count"] < 1:
        raise SystemExit("fieldguard+redis made no store call while answering the checks: "
                         "the section would measure the memory store twice")
    log(f"budget store: redis-server {args.redis_version} on 127.0.0.1:{redis_port} "
        f"({cpu_list(upstream_cpu)}, beside the upstream), twins on {cpu_list(proxy_cpu)}; "
        f"the answer checks made {before['count']:.0f} store calls")

    def snap(system, phase):
        redis_twin = system.endswith("redis")
        if redis_twin and phase == "before":
            # A round starts with the store answering (after a timeout the
            # budgets count locally until a probe finds it again).
            wait_store_up(admin[system])
        return {"metrics": store_metrics(admin[system]) if redis_twin else None,
                "redis_ticks": cpu_ticks([redis.pid]),
                "script": redis_script_stats(redis_port)}

    runs, sent = measure(keys, BUDGET_TWINS, ports, pids, tokens, load_cpu, upstream_pids,
                         prof["rounds_bs"], prof["warmup_bs"], prof, {}, tag="store ", snap=snap)
    after = store_metrics(admin["fieldguard+redis"])
    keys_held = redis_command(redis_port, "DBSIZE")
    for proc in started.values():
        procs.stop(proc)
    procs.stop(redis)
    log(f"budget store section took {time.monotonic() - t0:.0f}s")

    # Per round: redis-server's CPU, the store calls and their round trips.
    for (key, system), rs in runs.items():
        for r in rs:
            b, a = r["snap"]
            seconds = r["duration_us"] / 1e6
            r["redis_busy"] = (a["redis_ticks"] - b["redis_ticks"]) / CLK_TCK / seconds
            calls = a["script"][0] - b["script"][0]
            r["script_calls"] = calls
            r["script_usec"] = a["script"][1] - b["script"][1]
            if a["metrics"] is not None:
                r["store_hist"] = {le: a["metrics"]["buckets"].get(le, 0) - n
                                   for le, n in b["metrics"]["buckets"].items()}
                r["store_count"] = a["metrics"]["count"] - b["metrics"]["count"]
                r["store_sum"] = a["metrics"]["sum"] - b["metrics"]["sum"]
                r["store_errors"] = sum(a["metrics"]["errors"].values()) - sum(
                    b["metrics"]["errors"].values())
            del r["snap"]
    summary = summarise(runs)
    for (key, system), s in summary.items():
        rs = runs[(key, system)]
        s["rounds_rps"] = [r["requests"] / (r["duration_us"] / 1e6) for r in rs]
        s["rounds_p99"] = [r["p99_us"] for r in rs]
        s["redis_busy"] = med([r["redis_busy"] for r in rs])
        s["script_calls"] = sum(r["script_calls"] for r in rs)
        s["script_usec"] = sum(r["script_usec"] for r in rs)
        if "store_hist" in rs[0]:
            hist = {}
            for r in rs:
                for le, n in r["store_hist"].items():
                    hist[le] = hist.get(le, 0) + n
            count = sum(r["store_count"] for r in rs)
            s["store_count"] = count
            s["store_errors"] = sum(r["store_errors"] for r in rs)
            s["store_mean_ms"] = sum(r["store_sum"] for r in rs) / count * 1000 if count else None
            q50, q99 = histogram_quantile(0.50, hist), histogram_quantile(0.99, hist)
            s["store_p50_ms"] = None if q50 is None else q50 * 1000
            s["store_p99_ms"] = None if q99 is None else q99 * 1000
    return {"summary": summary, "rounds": prof["rounds_bs"], "warmup": prof["warmup_bs"],
            "redis_version": args.redis_version, "redis_cpu": upstream_cpu,
            "proxy_cpu": proxy_cpu, "store_errors_total": sum(after["errors"].values()),
            "store_up_at_end": after["up"], "keys_held": keys_held, "sent": sent + 2 * len(keys),
            "audit_dirs": [os.path.join(tmp, "bs-" + s.split("+")[1], "logs") for s in BUDGET_TWINS]}


def budget_store_section(w, meta, bs):
    w("## Budget store: memory vs Redis (issue 20)")
    w("")
    if "skipped" in bs:
        w(f"**Not run: {bs['skipped']}.**")
        w("")
        return
    S = bs["summary"]
    w(f"The same fieldguard twice, one worker each, one pinned like the proxies above "
      f"({cpu_list(bs['proxy_cpu'])}): `fieldguard+memory` counts the bulk-read budgets in its "
      f"own memory (`budgets.store.type: memory`), `fieldguard+redis` in a local "
      f"redis-server {bs['redis_version']} (`type: redis`, `timeout_ms: 50`, one multiplexed "
      f"connection) started by the harness on a free loopback port with persistence off "
      f"(`--save '' --appendonly no`), pinned like the upstream "
      f"({cpu_list(bs['redis_cpu'])}, beside wrk and the upstream nginx). Both run the "
      f"reference budgets in `mode: enforce` with every refusing limit raised to "
      f"{BUDGET_STORE_LIMIT:,} (the reference support-records-day, 300 records a day, would "
      f"refuse within a second of load) and the alerting limits unchanged: nothing is "
      f"refused, and each request of the support agent is prechecked (its two refusing "
      f"budgets, before the upstream: answered from what the replica's charges learned) and "
      f"charged (every budget it discloses to, after filtering): with Redis, one EVALSHA "
      f"round trip per request. Each cell: median of "
      f"{bs['rounds']} round(s) of {meta['duration']} s at {meta['connections']} connections"
      + (f" after a {bs['warmup']} s warm-up" if bs["warmup"] else ", no warm-up")
      + ", the twins alternated every round, in the same run as everything above. "
      "Targets (issue 20), on (a): throughput loss ≤ "
      f"{REDIS_MAX_LOSS:.0%} and added p99 ≤ {REDIS_MAX_ADDED_P99_MS} ms against the memory "
      "store. The machine is shared (2 CPUs, other builds running): the per-round figures "
      "show how far one round moves.")
    w("")
    w("| workload | req/s memory / redis | redis ÷ memory | p50 (ms) memory / redis "
      "| p99 (ms) memory / redis | added p99 redis − memory (ms) | fieldguard CPU-s / 1k req "
      "memory / redis | redis-server CPU (cores) | store calls per request "
      "| store round trip mean / p50 / p99 (ms) | redis-server time per call (µs) "
      "| store errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, label, *_ in WORKLOADS:
        if key not in BUDGET_STORE_WORKLOADS:
            continue
        m, r = S.get((key, BUDGET_TWINS[0]), {}), S.get((key, BUDGET_TWINS[1]), {})
        added = None if r.get("p99") is None or m.get("p99") is None else r["p99"] - m["p99"]
        per_req = ratio(r.get("store_count"), r.get("requests"))
        per_call = ratio(r.get("script_usec"), r.get("script_calls"))
        w(f"| ({key}) {label} | {fmt(m.get('rps'), 0)} / {fmt(r.get('rps'), 0)} "
          f"| {fmt(ratio(r.get('rps'), m.get('rps')))}× "
          f"| {fmt(ms(m.get('p50')))} / {fmt(ms(r.get('p50')))} "
          f"| {fmt(ms(m.get('p99')))} / {fmt(ms(r.get('p99')))} | {fmt(ms(added))} "
          f"| {fmt(m.get('cpu_per_1k'), 3)} / {fmt(r.get('cpu_per_1k'), 3)} "
          f"| {fmt(r.get('redis_busy'))} | {fmt(per_req)} "
          f"| {fmt(r.get('store_mean_ms'), 3)} / {fmt(r.get('store_p50_ms'), 3)} / "
          f"{fmt(r.get('store_p99_ms'), 3)} | {fmt(per_call, 1)} "
          f"| {fmt(r.get('store_errors'), 0)} |")
    w("")
    w("Per round (req/s, p99 ms), in the order run:")
    w("")
    for key, *_ in WORKLOADS:
        if key not in BUDGET_STORE_WORKLOADS:
            continue
        for system in BUDGET_TWINS:
            s = S.get((key, system))
            if not s:
                continue
            w(f"- ({key}) {system}: "
              + ", ".join(f"{rps:,.0f} / {p99 / 1000:.2f}"
                          for rps, p99 in zip(s["rounds_rps"], s["rounds_p99"]))
              + (f"; unexpected {s['bad']}" if s["bad"] else ""))
    w("")
    w("Store round trip: `fieldguard_budget_store_duration_seconds` over the measured rounds "
      "(mean from its sum; p50/p99 interpolated within its buckets, 0.1 / 0.25 / 0.5 / 1 / "
      "2.5 ms, as Prometheus's histogram_quantile does), measured by fieldguard from the call to "
      "the answer, so it includes waiting for its one worker thread. Store calls per request: "
      "1 while the store answers (the charge); fewer after a store error, as the "
      "budgets then count locally until the store answers a probe (every 500 ms), which also "
      "makes that round's figures not comparable. redis-server time per call: "
      "`INFO commandstats` (EVALSHA usec ÷ calls), the script's own run time. Store errors "
      f"during the section: {bs['store_errors_total']:.0f} "
      f"(`fieldguard_budget_store_errors_total`; a timeout would have counted locally instead); "
      f"store up at the end: {'yes' if bs['store_up_at_end'] == 1 else '**no**'}; keys held: "
      f"{bs['keys_held'].lstrip(':')}.")
    w("")
    for line in budget_store_targets(S):
        w(line)
    w("")


def budget_store_targets(S):
    """The issue's two targets for the Redis store, on (a), as table rows
    (also in the main Targets table)."""
    m, r = S.get(("a", BUDGET_TWINS[0]), {}), S.get(("a", BUDGET_TWINS[1]), {})
    rows = ["| target | figure | |", "|---|---|---|"]
    errors = r.get("store_errors") or 0
    caveat = (f" ({errors:.0f} store error(s) during (a): some requests counted locally, "
              f"the figure flatters Redis)" if errors else "")
    q = ratio(r.get("rps"), m.get("rps"))
    if q is not None:
        ok = q >= 1 - REDIS_MAX_LOSS
        by = "" if ok else (f": {(1 - q - REDIS_MAX_LOSS) * 100:.1f} points over the "
                            f"{REDIS_MAX_LOSS:.0%} allowance")
        rows.append(f"| (a) Redis budget store: throughput loss ≤ {REDIS_MAX_LOSS:.0%} vs memory "
                    f"| {fmt(r['rps'], 0)} vs {fmt(m['rps'], 0)} req/s = {fmt(q)}× "
                    f"({(1 - q) * 100:+.1f}% loss){caveat}{by} | {verdict(ok)} |")
    if r.get("p99") is not None and m.get("p99") is not None:
        added = ms(r["p99"] - m["p99"])
        ok = added <= REDIS_MAX_ADDED_P99_MS
        by = "" if ok else (f": {added - REDIS_MAX_ADDED_P99_MS:.2f} ms over the "
                            f"{REDIS_MAX_ADDED_P99_MS} ms allowance")
        rows.append(f"| (a) Redis budget store: added p99 ≤ {REDIS_MAX_ADDED_P99_MS} ms vs memory "
                    f"| {fmt(ms(r['p99']))} − {fmt(ms(m['p99']))} = {added:+.2f} ms{caveat}{by} "
                    f"| {verdict(ok)} |")
    return rows


# ------------------------------------------------------- steady-rate section


def oha_output_flags(oha):
    """The flags that make this oha print its report as JSON (newer oha:
    `--output-format json`; older: `--json`), checked in `oha --help`, and
    that it has `--latency-correction`."""
    out = subprocess.run([oha, "--help"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    if "--latency-correction" not in text:
        raise SystemExit(f"{oha} --help does not list --latency-correction: this oha cannot "
                         f"correct for coordinated omission")
    if "--output-format" in text:
        return ["--output-format", "json"]
    if "--json" in text:
        return ["--json"]
    raise SystemExit(f"{oha} --help lists neither --output-format nor --json")


def run_oha(args, cpu, port, path, token, seconds, connections, rate):
    """One oha run at a fixed rate (`-q`), latency measured from when each
    request should have been sent (`--latency-correction`). Returns its
    figures: answers per status, errors, achieved rate, p50/p99/p99.9 (µs)."""
    argv = [args.oha, "-z", f"{seconds}s", "-c", str(connections), "-q", f"{rate:.0f}",
            "--latency-correction", "--no-tui"] + args.oha_flags + [
            "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(pinned(argv, cpu), capture_output=True, text=True, timeout=seconds + 60)
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        raise SystemExit(f"oha printed no JSON report (status {out.returncode}):\n"
                         f"{out.stdout[:2000]}\n{out.stderr[:2000]}")
    summary = doc.get("summary", {})
    pct = doc.get("latencyPercentiles", {})
    statuses = {int(k): int(v) for k, v in (doc.get("statusCodeDistribution") or {}).items()}
    errors = {str(k): int(v) for k, v in (doc.get("errorDistribution") or {}).items()}
    elapsed = summary.get("total") or seconds  # seconds, the run's wall time
    answered = sum(statuses.values())

    def us(key):
        v = pct.get(key)
        return None if v is None else v * 1e6

    return {"statuses": statuses, "errors": errors, "answered": answered,
            "elapsed_s": elapsed, "achieved": answered / elapsed if elapsed else None,
            "p50_us": us("p50"), "p99_us": us("p99"), "p999_us": us("p99.9")}


def steady_rate_base(S, nm, key):
    """The system whose saturation req/s sets the steady rate of a workload:
    Envoy, or nginx if Envoy is not run (or not measured) here."""
    for system in ("envoy", "nginx"):
        if system in PROXIES and (key, system) not in nm and S.get((key, system), {}).get("rps"):
            return system
    return None


def steady(args, prof, ports, pids, tokens, load_cpu, S, nm):
    """The steady-rate section: STEADY_WORKLOADS at STEADY_SHARE of Envoy's
    saturation req/s (S: the one-worker medians of this run) on every
    system of the one-worker part, with oha. Returns the section's figures,
    or {"skipped": reason}."""
    if not args.oha:
        return {"skipped": args.steady_skip or "no oha given"}
    t0 = time.monotonic()
    systems = [s for s in ports if s in ("direct",) + tuple(PROXIES)]
    rates, bases, runs, sent_to_fg = {}, {}, {}, 0
    for key, _label, caller, path in WORKLOADS:
        if key not in STEADY_WORKLOADS:
            continue
        base = steady_rate_base(S, nm, key)
        if base is None:
            log(f"({key}) steady rate: NOT RUN: neither Envoy nor nginx has a saturation figure")
            continue
        bases[key] = base
        rate = rates[key] = max(1.0, round(STEADY_SHARE * S[(key, base)]["rps"]))
        if base != "envoy":
            log(f"({key}) steady rate: Envoy is not run, so the rate is half of {base}'s "
                f"saturation: {rate:,.0f} req/s")
        token = tokens[caller]
        active = [s for s in systems if (key, s) not in nm]
        for system in active if prof["warmup_st"] else []:
            r = run_oha(args, load_cpu, ports[system], path, token, prof["warmup_st"],
                        prof["connections"], rate)
            if is_fieldguard(system):
                sent_to_fg += r["answered"] + sum(r["errors"].values())
        for rnd in range(prof["rounds_st"]):
            order = active[rnd % len(active):] + active[:rnd % len(active)]
            for system in order:
                proc_pids = pids[system]() if system in pids else []
                before = cpu_ticks(proc_pids)
                r = run_oha(args, load_cpu, ports[system], path, token, prof["duration"],
                            prof["connections"], rate)
                if proc_pids:
                    r["cpu_busy"] = (cpu_ticks(proc_pids) - before) / CLK_TCK / r["elapsed_s"]
                expected = 403 if is_fieldguard(system) and key == "b" else 200
                r["unexpected"] = (sum(n for code, n in r["statuses"].items() if code != expected)
                                   + sum(n for e, n in r["errors"].items()
                                         if OHA_DEADLINE_ERROR not in e))
                r["in_flight_at_end"] = sum(n for e, n in r["errors"].items()
                                            if OHA_DEADLINE_ERROR in e)
                if is_fieldguard(system):
                    sent_to_fg += r["answered"] + sum(r["errors"].values())
                runs.setdefault((key, system), []).append(r)
                log(f"({key}) steady round {rnd + 1} {system:10} offered {rate:8,.0f} achieved "
                    f"{r['achieved']:8,.0f} req/s  p50 {ms(r['p50_us']):7.2f}  p99 "
                    f"{ms(r['p99_us']):8.2f}  p99.9 {ms(r['p999_us']):8.2f} ms"
                    + (f"  cores {r['cpu_busy']:.2f}" if proc_pids else "")
                    + (f"  UNEXPECTED {r['unexpected']} {r['statuses']} {r['errors']}"
                       if r["unexpected"] else ""))
    summary = {}
    for (key, system), rs in runs.items():
        summary[(key, system)] = {
            "offered": rates[key],
            "achieved": med([r["achieved"] for r in rs]),
            "p50": med([r["p50_us"] for r in rs]),
            "p99": med([r["p99_us"] for r in rs]),
            "p999": med([r["p999_us"] for r in rs]),
            "cpu_busy": med([r.get("cpu_busy") for r in rs]),
            "answered": sum(r["answered"] for r in rs),
            "in_flight_at_end": sum(r["in_flight_at_end"] for r in rs),
            "bad": sum(r["unexpected"] for r in rs),
            "statuses": sorted({c for r in rs for c in r["statuses"]}),
        }
    for (key, system), s in summary.items():
        floor = summary.get((key, "direct"))
        if system != "direct" and floor:
            for q in ("p50", "p99", "p999"):
                if s[q] is not None and floor[q] is not None:
                    s["added_" + q] = s[q] - floor[q]
    took = time.monotonic() - t0
    log(f"steady-rate section took {took:.0f}s")
    return {"summary": summary, "runs": runs, "rates": rates, "bases": bases,
            "rounds": prof["rounds_st"], "warmup": prof["warmup_st"], "sent": sent_to_fg,
            "oha": args.oha_version, "took_s": took, "not_measured": nm}


def steady_section(w, meta, st):
    w("## Steady rate: latency at half of Envoy's saturation (one worker, oha)")
    w("")
    if "skipped" in st:
        w(f"**Not run: {st['skipped']}.** Its four targets are **not measured** in the "
          f"Targets table.")
        w("")
        return
    S, nm = st["summary"], st["not_measured"]
    keys = [k for k, *_ in WORKLOADS if k in st["rates"]]
    w(f"The saturation figures above measure throughput: every connection always has a "
      f"request waiting, so the latency they show is mostly queueing "
      f"({meta['connections']} connections ÷ req/s, by Little's law), not what one request "
      f"costs. This section asks how fast each system answers at a load it is meant to "
      f"carry: workloads {', '.join(f'({k})' for k in keys)} at a fixed request rate, "
      f"half ({STEADY_SHARE:.0%}) of Envoy's saturation req/s measured on the same workload in this "
      f"run (the one-worker table above), the same rate for every system, the direct floor "
      f"included. Half of a plain proxy's capacity leaves Envoy headroom, as a sidecar "
      f"normally runs, so its latency there is close to its per-request cost; a system "
      f"slower than Envoy per request has less headroom at the same rate, and shows it as "
      f"latency (or, past its own capacity, as a rate it cannot keep up with).")
    w("")
    w(f"Load generator: {st['oha']}, open loop: it sends requests on a fixed schedule "
      f"(`-q RATE`) over the same {meta['connections']} keep-alive connections and with the "
      f"same `Authorization` headers as the wrk runs, pinned like wrk "
      f"(CPU {meta['load_cpu']}; proxies on CPU {meta['proxy_cpu']}, one worker each, the "
      f"same processes as above). With `--latency-correction`, each request's latency is "
      f"measured from when it should have been sent by the schedule, not from when it was "
      f"sent: when a system stalls, the requests queued behind the stall count the time "
      f"they waited to be sent. A closed-loop generator such as wrk sends nothing while all "
      f"its connections wait, so a stall delays few of its measured requests and its tail "
      f"percentiles understate what callers arriving at a steady rate see (coordinated "
      f"omission). Each cell: median of {st['rounds']} round(s) of {meta['duration']} s"
      + (f" after a {st['warmup']} s warm-up per system" if st["warmup"] else ", no warm-up")
      + f", the systems' order rotated every round. Added = minus the direct floor's same "
      f"percentile at the same rate. Achieved = answers ÷ the round's time; a system that "
      f"achieves less than {STEADY_KEEPS_UP:.0%} of the offered rate did not keep up "
      f"(marked **overloaded**): its queue grew through the round, so its latency figures "
      f"grow with the round's length and mean only that (and they leave out the requests "
      f"the schedule called for that were never sent before the round's end). Unexpected = answers with another "
      f"status than 200 (oha's status code distribution) plus errors other than the requests "
      f"still in flight when a round's time was up.")
    w("")
    for key in keys:
        if st["bases"][key] != "envoy":
            w(f"**({key}): Envoy was not run, so the rate is {STEADY_SHARE:.0%} of "
              f"{st['bases'][key]}'s saturation req/s**, and the targets against Envoy are not "
              f"measured.")
            w("")
    w("| workload | system | offered req/s | achieved req/s | p50 | p99 | p99.9 "
      "| added p50 | added p99 | added p99.9 | busy | answers | unexpected |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for system in ["direct"] + PROXIES:
            if (key, system) in nm:
                w(f"| ({key}) | {system} | not measured: {nm[(key, system)]} " + "| — " * 11 + "|")
                continue
            s = S.get((key, system))
            if not s:
                continue
            achieved = fmt(s["achieved"], 0)
            if s["achieved"] is not None and s["achieved"] < STEADY_KEEPS_UP * s["offered"]:
                achieved += " **overloaded**"
            w(f"| ({key}) | {system} | {fmt(float(s['offered']), 0)} | {achieved} "
              f"| {fmt(ms(s['p50']))} | {fmt(ms(s['p99']))} | {fmt(ms(s['p999']))} "
              f"| {fmt(ms(s.get('added_p50')))} | {fmt(ms(s.get('added_p99')))} "
              f"| {fmt(ms(s.get('added_p999')))} "
              f"| {fmt(s['cpu_busy'] and s['cpu_busy'] * 100, 0, '%')} | {s['answered']:,} "
              f"| {s['bad']} |")
    w("")
    in_flight = sum(s["in_flight_at_end"] for s in S.values())
    w("Latency in ms. Busy = the proxy's CPU time ÷ the round's time (one worker: 100% is its "
      "core). Answers = the measured rounds' answers, each checked against the expected "
      "status (200) in oha's status code distribution; statuses seen: "
      + ", ".join(str(c) for c in sorted({c for s in S.values() for c in s["statuses"]}))
      + f". Requests still in flight when a round's time was up (oha's "
      f"`{OHA_DEADLINE_ERROR}`, not answers, not counted as unexpected): {in_flight:,} in all. "
      f"Section time: {st['took_s']:.0f} s.")
    w("")


def mint_tokens(args, fg_conf):
    tokens = {}
    for caller, (role, sub) in CALLERS.items():
        tokens[caller] = subprocess.run(
            [args.fieldguard, "token", "--config", fg_conf, "--role", role, "--sub", sub],
            capture_output=True, text=True, check=True).stdout.strip()
    return tokens


def run_budget_store_only(args, prof, tmp, procs, ports, upstream_pids, raw, load_cpu, proxy_cpu,
                          upstream_cpu, t0):
    """`--budget-store-only`: the upstream and the budget-store section,
    nothing else (no Envoy, nginx proxy, direct floor or two workers)."""
    os.makedirs(os.path.join(tmp, "tokens"))
    fg_conf, _ = fieldguard_config(os.path.join(tmp, "tokens"), free_port(), free_port(),
                                   ports["direct"])
    tokens = mint_tokens(args, fg_conf)
    bs = budget_store(args, prof, tmp, procs, ports["direct"], upstream_pids, tokens, raw,
                      load_cpu, proxy_cpu, upstream_cpu)
    if "skipped" in bs:
        raise SystemExit(f"budget store section not run: {bs['skipped']}")
    meta = {"duration": prof["duration"], "connections": prof["connections"]}
    lines = [f"# fieldguard budget store: memory vs Redis ({args.mode} run, --budget-store-only)",
             "",
             f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · "
             f"{cpu_model()} · {os.cpu_count()} CPUs · Linux {platform.release()} · fieldguard "
             f"{git_rev()} ({args.build}) · "
             + tool_version(["wrk", "-v"]).split(" [")[0].replace("debian/", ""),
             "",
             f"wrk (1 thread) on {cpu_list(load_cpu)}, the upstream nginx serving the demo "
             f"shop's bodies on {cpu_list(upstream_cpu)}.",
             ""]
    budget_store_section(lines.append, meta, bs)
    text = "\n".join(lines)
    print(text)
    if args.out:
        for path in args.out.split(","):
            with open(path, "w") as f:
                f.write(text)
            log(f"wrote {os.path.relpath(path, ROOT)}")
    log(f"finished in {time.monotonic() - t0:.0f}s")
    bad = sum(s["bad"] for s in bs["summary"].values())
    if bad:
        log(f"{bad} request(s) had unexpected errors or statuses")
        return 0 if args.mode == "smoke" else 1
    return 0


def run(args, prof, systems, tmp, procs, load_cpu, proxy_cpu, upstream_cpu, layout2):
    t0 = time.monotonic()
    # 1. Upstream bodies, generated by the demo shop itself, then served as
    #    static files by nginx: the cheapest upstream there is (sendfile, no
    #    per-request encoding), so it is never what limits a proxy.
    www = os.path.join(tmp, "www")
    os.makedirs(os.path.join(www, "customers"))
    shop_port = free_port()
    shop = procs.start("shop", [args.fieldguard, "shop", "--listen", f"127.0.0.1:{shop_port}",
                                "--customers", str(max(LIST_SIZES))], None, tmp)
    wait_for_port(shop_port, shop, "fieldguard shop")
    raw = {}
    for key, _label, _caller, path in WORKLOADS:
        status, body = fetch(shop_port, path, "unused")
        if status != 200:
            raise SystemExit(f"demo shop {path}: status {status}")
        raw[key] = body
        file = (f"list-{path.split('=')[1]}.json" if "limit=" in path else path.lstrip("/") + ".json")
        with open(os.path.join(www, file), "wb") as f:
            f.write(body)
    procs.stop(shop)

    ports = {s: free_port() for s in systems}
    up_conf = render("nginx-upstream.conf.in", os.path.join(tmp, "nginx-upstream.conf"),
                     dict(TMP=tmp, UPSTREAM_PORT=ports["direct"], WWW=www, PORT=ports["direct"]))
    os.makedirs(os.path.join(tmp, "upstream"))
    upstream = procs.start("nginx-upstream", [args.nginx, "-c", up_conf, "-p", os.path.join(tmp, "upstream")],
                           upstream_cpu, tmp)
    wait_for_port(ports["direct"], upstream, "nginx (upstream)")
    upstream_pids = [upstream.pid] + children(upstream.pid)

    if args.budget_store_only:
        return run_budget_store_only(args, prof, tmp, procs, ports, upstream_pids, raw, load_cpu,
                                     proxy_cpu, upstream_cpu, t0)

    # 2. The proxies, one worker each.
    started, pids, fg_conf, body_limit = start_proxies(args, systems, tmp, procs, ports, 1,
                                                       proxy_cpu, "")
    tokens = mint_tokens(args, fg_conf)
    time.sleep(0.5)
    idle_rss_mb = peak_rss_kb(pids["fieldguard"]()) / 1024

    all_keys = [k for k, *_ in WORKLOADS]
    not_measured = check_answers(ports, tokens, raw, all_keys)
    log(f"all systems answer correctly"
        + (f" ({len(not_measured)} not measured, see above)" if not_measured else "")
        + f"; setup took {time.monotonic() - t0:.1f}s")

    # 3. The in-process redaction cost of the (d) body, on the proxy core.
    cost = None
    if args.body_cost:
        argv = [args.body_cost, fg_conf, "support_agent", "agent-7", "/customers",
                os.path.join(www, "list-5000.json"), str(prof["cost_iterations"])]
        out = subprocess.run(pinned(argv, proxy_cpu), capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise SystemExit(f"body_cost failed: {out.stderr}")
        cost = json.loads(out.stdout)
        log(f"redaction {cost['redact_ms']:.1f} ms vs serde_json {cost['serde_json_ms']:.1f} ms "
            f"for {cost['body_bytes']:,} bytes")
        # Issue 21's "more cores for one big body", bounded from above: the
        # same body in two pieces on two threads (both cores, unpinned).
        if args.split_cost:
            argv = [args.split_cost, fg_conf, "support_agent", "agent-7", "/customers",
                    os.path.join(www, "list-5000.json"), str(prof["cost_iterations"]), "2"]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise SystemExit(f"split_cost failed: {out.stderr}")
            cost["split"] = json.loads(out.stdout)
            log(f"two pieces: {cost['split']['one_thread_ms']:.1f} ms on one thread, "
                f"{cost['split']['threads_ms']:.1f} ms on two")

    # 4. Load, one worker per proxy.
    runs, sent_to_fg = measure(all_keys, systems, ports, pids, tokens, load_cpu, upstream_pids,
                               prof["rounds"], prof["warmup"], prof, not_measured)
    sent_to_fg += len(all_keys)
    summary1 = summarise(runs)

    # 4a. Steady rate: (a) and (c) at half of Envoy's saturation req/s just
    #     measured, same processes and pinning, oha with latency correction.
    st = steady(args, prof, ports, pids, tokens, load_cpu, summary1, not_measured)
    sent_to_fg += st.get("sent", 0)
    if "skipped" in st:
        log(f"steady-rate section NOT RUN: {st['skipped']}")
    # Stopped now, so that only the proxies under load run in step 5; a
    # clean stop also flushes fieldguard's audit trail before it is counted.
    for proc in started.values():
        procs.stop(proc)

    # 4b. The budget store: memory vs Redis, same one-worker layout.
    bs = budget_store(args, prof, tmp, procs, ports["direct"], upstream_pids, tokens, raw,
                      load_cpu, proxy_cpu, upstream_cpu)
    sent_to_fg += bs.get("sent", 0)
    if "skipped" in bs:
        log(f"budget store section NOT RUN: {bs['skipped']}")

    # 5. Load, two workers per proxy: fresh processes with the same configs
    #    (own folder for logs and the audit trail), in the two-worker layout.
    runs2 = {}
    if layout2 is None:
        two = {"skipped": "this machine has one CPU, so two workers could only take turns"}
        log(f"two workers: not run ({two['skipped']})")
    else:
        t2 = time.monotonic()
        tmp2 = os.path.join(tmp, "2w")
        os.makedirs(os.path.join(tmp2, "logs"))
        set_affinity(upstream_pids, layout2["upstream"])
        ports2 = {s: ports["direct"] if s == "direct" else free_port() for s in systems}
        started2, pids2, _, _ = start_proxies(args, systems, tmp2, procs, ports2, 2,
                                              layout2["proxy"], " (2 workers)")
        log(f"two workers: proxies on {cpu_list(layout2['proxy'])}, wrk {cpu_list(layout2['load'])}, "
            f"upstream {cpu_list(layout2['upstream'])}"
            + (" (shared cores: the load side takes CPU from the proxies)" if layout2["shared"] else ""))
        keys2 = [k for k in all_keys if k in TWO_WORKER_WORKLOADS]
        not_measured2 = check_answers(ports2, tokens, raw, keys2)
        runs2, sent2 = measure(keys2, systems, ports2, pids2, tokens, layout2["load"], upstream_pids,
                               prof["rounds_2w"], prof["warmup_2w"], prof, not_measured2, tag="2w ")
        sent_to_fg += sent2 + len(keys2)
        for proc in started2.values():
            procs.stop(proc)
        two = {"summary": summarise(runs2), "not_measured": not_measured2, "layout": layout2,
               "rounds": prof["rounds_2w"], "warmup": prof["warmup_2w"]}
        log(f"two workers took {time.monotonic() - t2:.0f}s")

    # Request records only: definition records (shared parts written once
    # per file) and retention notes are not requests.
    audit_records = 0
    audit_bytes = 0
    for logs in [os.path.join(tmp, "logs"), os.path.join(tmp, "2w", "logs")] + bs.get("audit_dirs", []):
        if not os.path.isdir(logs):
            continue
        for name in os.listdir(logs):
            if name.startswith("fieldguard-audit.log"):
                with open(os.path.join(logs, name), "rb") as f:
                    for line in f:
                        audit_bytes += len(line)
                        if b'"request_id"' in line:
                            audit_records += 1

    meta = {
        "mode": args.mode,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "fieldguard_rev": git_rev(),
        "build": args.build,
        "envoy": envoy_version(args.envoy) if args.envoy else "Envoy not run",
        "nginx": tool_version([args.nginx, "-v"]).replace("nginx version: ", ""),
        "wrk": tool_version(["wrk", "-v"]).split(" [")[0].replace("debian/", ""),
        "rounds": prof["rounds"], "duration": prof["duration"], "warmup": prof["warmup"],
        "connections": prof["connections"], "load_cpu": load_cpu, "proxy_cpu": proxy_cpu,
        "body_limit": body_limit,
        "audit_records": audit_records, "audit_bytes": audit_bytes, "fieldguard_requests": sent_to_fg,
    }
    text = report(meta, summary1, cost, {k: len(v) for k, v in raw.items()}, idle_rss_mb,
                  not_measured, two, bs, st)
    print(text)
    if args.out:
        for path in args.out.split(","):
            with open(path, "w") as f:
                f.write(text)
            log(f"wrote {os.path.relpath(path, ROOT)}")
    log(f"finished in {time.monotonic() - t0:.0f}s")
    bs_runs = [[s] for s in bs.get("summary", {}).values() if s["bad"]]
    bad = (sum(len([r for r in rs if r["unexpected"]])
               for rs in list(runs.values()) + list(runs2.values())
               + list(st.get("runs", {}).values())) + len(bs_runs))
    if bad:
        log(f"{bad} round(s) had unexpected errors or statuses (see the 'unexpected' column)")
        # A smoke run's figures are not asserted (a debug build under load
        # may time out); its start-up and answer checks above still are.
        return 0 if args.mode == "smoke" else 1
    return 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_rev():
    out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    rev = out.stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + ("+changes" if dirty else "")


def envoy_version(binary):
    # "<path>  version: <hash>/1.40.0/Clean/RELEASE/BoringSSL"
    text = tool_version([binary, "--version"])
    if "version:" in text:
        fields = text.split("version:", 1)[1].split()
        if fields and fields[0].count("/") >= 2:
            return "Envoy " + fields[0].split("/")[1]
    return "Envoy"


if __name__ == "__main__":
    sys.exit(main())
