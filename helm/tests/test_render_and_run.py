"""Render and run: the example release as Kubernetes would run it, on this
machine's loopback.

The ConfigMap the chart renders is laid out as the kubelet mounts it, the
Secret as `kubectl create secret generic fieldguard-demo-keys
--from-file=examples/demo/secrets/` (the README's command) makes it, the
real fieldguard binary runs with exactly the container's rendered args and
env, under its rendered securityContext (its uid/gid, no privileges, a
read-only filesystem but for the audit volume), beside the demo shop
started with the shop container's rendered args. Through the proxy it must
serve the shop with the reference policies; an update of the ConfigMap
applied as the kubelet applies it must reload the policies.

Rewritten, because this is one machine and not a pod (and only these):
the mount paths (/etc/fieldguard/..., /var/log/fieldguard) are prefixed with
a temporary directory, and the listen addresses (0.0.0.0:8080,
0.0.0.0:9090, 127.0.0.1:9000) become free 127.0.0.1 ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import kubelet
from conftest import (
    NEWEST,
    REPO,
    SCENARIOS,
    fieldguard_container,
    find,
    merge,
    pod_spec,
    reference_policy_files,
    render,
)

# What this test renders: the example release with the audit log on its
# volume (so the writable-volume part of the securityContext is exercised).
VALUES = {"audit": {"sink": "file"}}
DEADLINE_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(what: str, check, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError) as e:  # not listening yet, or a partial answer
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {deadline_s} s (last error: {last})")


def stop(proc: subprocess.Popen) -> int:
    """Stops a process this test started, by its pid."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


class Pod:
    """The rendered example pod, laid out under `root` and run."""

    def __init__(self, image: Path, root: Path, values: dict = VALUES,
                 secrets: dict[str, dict[str, bytes]] | None = None,
                 config_maps: dict[str, dict[str, bytes]] | None = None):
        self.root = root
        self.image = image
        self.values = values
        # The namespace's Secrets and ConfigMaps (other than the chart's
        # own), by name: key -> bytes.
        self.secrets = {"fieldguard-demo-keys": demo_keys(), **(secrets or {})}
        self.config_maps = config_maps or {}
        self.objs = render(values, NEWEST)
        self.spec = pod_spec(self.objs)
        self.fg, _ = fieldguard_container(self.spec)
        self.shop = next(c for c in self.spec["containers"] if c["name"] == "shop")
        self.ports = {"proxy": free_port(), "admin": free_port(), "app": free_port()}
        self.mounts = {m["name"]: m["mountPath"] for m in self.fg["volumeMounts"]}
        self.volumes = {v["name"]: v for v in self.spec["volumes"]}
        self.binary = image / "fieldguard"
        self.uid = self.fg["securityContext"]["runAsUser"]
        self.fs_group = self.spec["securityContext"]["fsGroup"]
        # What the API server would have given the pod.
        name = find(self.objs, "Deployment")["metadata"]["name"]
        self.pod_fields = {"metadata.name": f"{name}-5d8f7c9b6-x2x7q", "metadata.uid": str(uuid.uuid4())}

    def host_path(self, mount_path: str) -> Path:
        return self.root / mount_path.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Only the paths and addresses that differ from a pod (see the
        module doc)."""
        # One pass, longest first: /etc/fieldguard/budget-store is a prefix
        # of /etc/fieldguard/budget-store-ca, and a rewritten path must not
        # be rewritten again.
        paths = sorted(self.mounts.values(), key=len, reverse=True)
        text = re.sub("|".join(re.escape(p) for p in paths), lambda m: str(self.host_path(m.group(0))), text)
        return (
            text.replace("0.0.0.0:8080", f"127.0.0.1:{self.ports['proxy']}")
            .replace("0.0.0.0:9090", f"127.0.0.1:{self.ports['admin']}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{self.ports['app']}")
        )

    def config_map_files(self, objs: list[dict]) -> dict[str, bytes]:
        name = self.volumes["fieldguard-config"]["configMap"]["name"]
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)
        return {k: self.rewrite(v).encode() for k, v in cm["data"].items()}

    def lay_out_volumes(self) -> None:
        for name, mount_path in self.mounts.items():
            volume = self.volumes[name]
            target = self.host_path(mount_path)
            if "configMap" in volume and volume["configMap"]["name"] in self.config_maps:
                data = self.config_maps[volume["configMap"]["name"]]
                kubelet.mount_volume(target, kubelet.project(data, volume["configMap"].get("items")),
                                     mode=volume["configMap"]["defaultMode"])
            elif "configMap" in volume:
                kubelet.mount_volume(target, self.config_map_files(self.objs),
                                     mode=volume["configMap"]["defaultMode"])
            elif "secret" in volume:
                data = self.secrets[volume["secret"]["secretName"]]
                kubelet.mount_volume(target, kubelet.project(data, volume["secret"].get("items")),
                                     mode=volume["secret"]["defaultMode"])
            elif "emptyDir" in volume:
                # An emptyDir under fsGroup: group-owned, group-writable, setgid.
                target.mkdir(parents=True)
                if os.geteuid() == 0:
                    os.chown(target, 0, self.fs_group)
                target.chmod(0o2775)
            else:
                raise AssertionError(f"unexpected volume {volume}")

    def audit_dir(self) -> Path:
        return self.host_path(self.mounts["fieldguard-audit"])

    def env(self, container: dict) -> dict[str, str]:
        env = {e["name"]: e["value"] if "value" in e else kubelet.downward_api(e["valueFrom"], self.pod_fields)
               for e in container.get("env", [])}
        # The image's PATH (the wrappers below need it; fieldguard does not).
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        return env

    def start(self, sandboxed: bool) -> tuple[subprocess.Popen, subprocess.Popen]:
        shop_argv = [str(self.binary), *[self.rewrite(a) for a in self.shop["args"]]]
        fg_argv = [str(self.binary), *[self.rewrite(a) for a in self.fg["args"]]]
        if sandboxed:
            # The shop writes nothing: its one writable place is an empty
            # folder of its own.
            shop_scratch = self.root / "shop-scratch"
            shop_scratch.mkdir(exist_ok=True)
            shop_argv = kubelet.container_command(shop_argv, self.shop["securityContext"], shop_scratch)
            fg_argv = kubelet.container_command(fg_argv, self.fg["securityContext"], self.audit_dir())
        shop = subprocess.Popen(shop_argv, env=self.env(self.shop), cwd=self.image,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fg = subprocess.Popen(fg_argv, env=self.env(self.fg), cwd=self.image,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return shop, fg

    def url(self, port: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"


def demo_keys() -> dict[str, bytes]:
    """The Secret the README creates from examples/demo/secrets/."""
    return {p.name: p.read_bytes() for p in (REPO / "examples/demo/secrets").iterdir()}


def token(binary: Path, role: str, sub: str) -> str:
    out = subprocess.run(
        [str(binary), "token", "--role", role, "--sub", sub,
         "--config", str(REPO / "examples/demo/fieldguard.yaml")],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return out.stdout.strip()


def support_agent_without_mfa_rule(files: dict[str, str]) -> dict[str, str]:
    """The reference policies with support agents seeing phone and email
    without MFA (the change tests/reload.rs makes)."""
    text = files["support_agent.cedar"]
    changed = text.replace('when { context.mfa && ["phone", "email"]', 'when { ["phone", "email"]', 1)
    assert changed != text, "support_agent.cedar no longer has the MFA rule this test edits"
    return {**files, "support_agent.cedar": changed}


@pytest.fixture(scope="module")
def sandbox():
    why = kubelet.sandbox_unavailable()
    if why and os.environ.get("FIELDGUARD_REQUIRE_SANDBOX"):
        pytest.fail(f"FIELDGUARD_REQUIRE_SANDBOX is set but the container sandbox is unavailable: {why}")
    if why:
        print(f"\nrunning fieldguard without the container sandbox: {why}")
    return why is None


def world_readable_tempdir(prefix: str) -> Path:
    # Not pytest's tmp_path: its folders are private to root, and the
    # container's user must traverse these.
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def image(binary):
    """The image: the binary and nothing else, readable and executable by
    the container's user."""
    d = world_readable_tempdir("fieldguard-image-")
    try:
        shutil.copy(binary, d / "fieldguard")
        (d / "fieldguard").chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def pod(image):
    root = world_readable_tempdir("fieldguard-pod-")
    try:
        p = Pod(image, root)
        p.lay_out_volumes()
        yield p
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_sandbox_leaves_only_the_audit_volume_writable(pod, sandbox):
    if not sandbox:
        pytest.skip("the container sandbox needs root, unshare and setpriv")
    probe = (
        'for d in "$@"; do if touch "$d/.probe" 2>/dev/null; then echo "writable $d"; fi; done; '
        'id -u; id -g'
    )
    dirs = ["/", "/tmp", str(pod.root), str(pod.image),
            str(pod.host_path(pod.mounts["fieldguard-config"])), str(pod.audit_dir())]
    argv = kubelet.container_command(["/bin/sh", "-c", probe, "probe", *dirs],
                                     pod.fg["securityContext"], pod.audit_dir())
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == [f"writable {pod.audit_dir()}", str(pod.uid), str(pod.uid)], out.stdout
    # Outside the sandbox nothing changed.
    assert not (pod.root / ".probe").exists()


def test_the_rendered_pod_serves_the_shop_and_reloads_a_config_map_update(pod, sandbox, binary):
    shop, fg = pod.start(sandbox)
    stopped = False
    try:
        ready = wait_for("/readyz answers 200", lambda: http("GET", pod.url("admin", "/readyz"))[0] == 200 or None)
        assert ready
        status, body = http("GET", pod.url("admin", "/readyz"))
        assert json.loads(body)["audit_sink"] == "ok"
        assert http("GET", pod.url("admin", "/healthz"))[0] == 200

        if sandbox:
            # The serving process is fieldguard itself (the wrappers exec'd
            # it), as the container's user, without privileges.
            status_lines = Path(f"/proc/{fg.pid}/status").read_text().splitlines()
            fields = dict(line.split(":", 1) for line in status_lines if ":" in line)
            assert os.readlink(f"/proc/{fg.pid}/exe") == str(pod.binary)
            assert fields["Uid"].split()[:2] == [str(pod.uid)] * 2, fields["Uid"]
            assert fields["Gid"].split()[0] == str(pod.fg["securityContext"]["runAsGroup"])
            assert fields["NoNewPrivs"].strip() == "1"
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0

        agent = token(binary, "support_agent", "agent-7")

        def phone() -> str | None:
            status, body = http("GET", pod.url("proxy", "/customers/c-1001"), agent)
            if status != 200:
                return None
            record = json.loads(body)
            assert "id_card_number" not in record, "never unfiltered"
            return record["phone"]

        # The demo shop, through the proxy, with the reference policies:
        # agents without MFA see the phone masked.
        first = wait_for("the shop answers through the proxy", phone)
        assert "*" in first, first
        assert http("GET", pod.url("proxy", "/customers/c-1001"))[0] == 401
        assert http("GET", pod.url("proxy", "/catalog/products"))[0] == 200
        policies = json.loads(http("GET", pod.url("admin", "/policies"))[1])
        v1 = policies["version"]
        assert len(policies["policies"]) > 0

        # A ConfigMap update as `helm upgrade --set-file ...` makes it and as
        # the kubelet applies it: the new render, a new payload, ..data swapped.
        files = support_agent_without_mfa_rule(reference_policy_files())
        v2_objs = render({**VALUES, "policies": {"files": files}}, NEWEST)
        kubelet.update_volume(pod.host_path(pod.mounts["fieldguard-config"]), pod.config_map_files(v2_objs),
                              mode=pod.volumes["fieldguard-config"]["configMap"]["defaultMode"])

        def reloaded():
            p = json.loads(http("GET", pod.url("admin", "/policies"))[1])
            return p["version"] != v1 and p
        after = wait_for("the new policy version is served", reloaded)
        assert after["last_reload"].get("error") is None, after
        unmasked = wait_for("the decision changed", lambda: (lambda p: p if p and "*" not in p else None)(phone()))
        assert unmasked != first

        # SIGTERM, as the kubelet stops the container: a clean exit.
        assert stop(fg) == 0
        stopped = True

        # The audit trail went to the volume, written by the container's
        # user; it verifies, and read in full (`audit expand` resolves the
        # compact records' definitions) it holds the answers given.
        log = pod.audit_dir() / "audit.log"
        expanded = subprocess.run([str(pod.binary), "audit", "expand", str(log)],
                                  capture_output=True, text=True, timeout=60, check=True)
        records = [json.loads(line) for line in expanded.stdout.splitlines()]
        assert {r.get("status") for r in records} >= {200, 401}
        if sandbox:
            assert log.stat().st_uid == pod.uid
    finally:
        if not stopped:
            stop(fg)
        stop(shop)
        stderr = fg.stderr.read().decode() if fg.stderr else ""
        fg.stdout and fg.stdout.close()
        fg.stderr and fg.stderr.close()
    # The chart's FIELDGUARD_LOG_FORMAT=json: every line of the process log
    # is a JSON object, the start-up and shutdown notices included.
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    messages = [line["fields"].get("message", "") for line in lines]
    assert any(m.startswith("fieldguard listening on http://") for m in messages), stderr
    assert any("shutting down" in m for m in messages), stderr
    assert any(line["level"] == "INFO" and "reload" in json.dumps(line).lower() for line in lines), stderr


def test_the_rendered_config_validates_as_fieldguard_loads_it(pod, binary):
    """`fieldguard validate` on the laid-out ConfigMap: what an operator runs
    before applying a change."""
    config = [pod.rewrite(a) for a in pod.fg["args"]][2]
    out = subprocess.run([str(binary), "validate", "--config", config],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ": ok (" in out.stdout


# --- A policy set signed in the repository, verified in the pod ---

def test_a_set_signed_in_the_repository_verifies_in_the_rendered_pod(image, binary):
    """The README's path from pull request to cluster: CI signs the
    reference deployment as the repository holds it (examples/demo, policies/),
    the chart ships the signature beside the policies and mounts the public
    key from verifyKeys.existingSecret; fieldguard in the pod accepts the set,
    and refuses it once one byte of a policy in the ConfigMap changes."""
    work = Path(tempfile.mkdtemp(prefix="fieldguard-sign-"))
    root = world_readable_tempdir("fieldguard-pod-")
    try:
        shutil.copytree(REPO / "policies", work / "policies")
        shutil.copytree(REPO / "examples" / "demo", work / "examples" / "demo")
        run = lambda *args: subprocess.run([str(binary), *args], cwd=work, capture_output=True,
                                           text=True, timeout=60)
        made = run("sign", "--generate-key", "ci.key")
        assert made.returncode == 0, made.stderr
        signed = run("sign", "--config", "examples/demo/fieldguard.yaml", "--key", "ci.key")
        assert signed.returncode == 0, signed.stderr
        values = merge(VALUES, {
            "verifyKeys": {"existingSecret": "fieldguard-verify-keys", "files": ["ci.pub"]},
            "policies": {"signature": (work / "policies" / "fieldguard.sig").read_text()},
        })
        pod = Pod(image, root, values=values,
                  secrets={"fieldguard-verify-keys": {"ci.pub": (work / "ci.key.pub").read_bytes()}})
        pod.lay_out_volumes()
        config = [pod.rewrite(a) for a in pod.fg["args"]][2]
        out = subprocess.run([str(binary), "validate", "--config", config],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        # The rendered config names the mounted key.
        assert "/verify-keys/ci.pub" in Path(config).read_text()

        files = pod.config_map_files(pod.objs)
        assert files["fieldguard.sig"] == (work / "policies" / "fieldguard.sig").read_bytes()
        changed = dict(files)
        changed["partner.cedar"] = files["partner.cedar"].replace(b"partner", b"partnes", 1)
        kubelet.update_volume(pod.host_path(pod.mounts["fieldguard-config"]), changed,
                              mode=pod.volumes["fieldguard-config"]["configMap"]["defaultMode"])
        out = subprocess.run([str(binary), "validate", "--config", config],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert "does not match this policy set" in out.stderr, out.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


# --- The budgets in Redis, as the chart wires them ---

STORE_SCENARIOS = ["budget-store-standalone", "budget-store-sentinel", "budget-store-cluster"]
STORE_PASSWORD = b"chart-test-password\n"
# A self-signed certificate whose key was thrown away: fieldguard reads a
# CA file at every config load (it must hold a PEM certificate), and
# validate does not connect.
TEST_CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBuDCCAV+gAwIBAgIUd4IXV3Y96pSS68WVE9J0PzhWsykwCgYIKoZIzj0EAwIw
MTEvMC0GA1UEAwwmZmllbGRndWFyZCBjaGFydCB0ZXN0IENBIChubyBrZXkga2Vw
dCkwIBcNMjYxMjA3MDg0NDAxWhgPMjEyNjExMTMwODQ0MDFaMDExLzAtBgNVBAMM
JmZpZWxkZ3VhcmQgY2hhcnQgdGVzdCBDQSAobm8ga2V5IGtlcHQpMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE0GmxDlAREwMzVLlhpA/JXtPqw6wconotWVYFITFi
lthKV4zxLNZ/s0SDyRHvyVHyNCN3KD4xR214pJQDsGaPU6NTMFEwHQYDVR0OBBYE
FH1/fC0Br4tOOsQCddHGPgVLf17bMB8GA1UdIwQYMBaAFH1/fC0Br4tOOsQCddHG
PgVLf17bMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgR0zEU+Mr
K3ZcGLJM1ZiMZZVmto6OCRgb4OPtDgoxTMUCIDizmdFC7a2esWAhP8ybq3tcxNxb
/GTJnzNhaaAFsDfi
-----END CERTIFICATE-----
"""


def store_objects(values: dict) -> tuple[dict, dict]:
    """The Secrets and ConfigMaps a store scenario names, as a cluster would
    hold them: (secrets, config maps)."""
    redis = values["budgets"]["store"]["redis"]
    tls = redis.get("tls", {})
    secrets, config_maps = {}, {}
    if redis.get("existingSecret"):
        secrets[redis["existingSecret"]] = {redis.get("passwordKey", "password"): STORE_PASSWORD,
                                            "unrelated": b"not mounted"}
    ca = {tls.get("caKey", "ca.crt"): TEST_CA_PEM}
    if tls.get("caSecret"):
        secrets[tls["caSecret"]] = ca
    if tls.get("caConfigMap"):
        config_maps[tls["caConfigMap"]] = ca
    return secrets, config_maps


@pytest.mark.parametrize("scenario", STORE_SCENARIOS)
def test_the_rendered_budget_store_config_validates_as_fieldguard_loads_it(image, binary, scenario):
    """Every key the chart writes into budgets (store, replicas,
    on_store_error) is one fieldguard reads, and the files it names are
    where the pod mounts them."""
    values = merge(VALUES, SCENARIOS[scenario])
    root = world_readable_tempdir("fieldguard-pod-")
    try:
        pod = Pod(image, root, values, *store_objects(values))
        pod.lay_out_volumes()
        config = Path([pod.rewrite(a) for a in pod.fg["args"]][2])
        out = subprocess.run([str(binary), "validate", "--config", str(config)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        store = json.loads(config.read_text())["budgets"]["store"]["redis"]
        for key in ("password_file",):
            if key in store:
                assert Path(store[key]).read_bytes() == STORE_PASSWORD
        if "tls" in store:
            assert Path(store["tls"]["ca_file"]).is_file()
        # Not a no-op: a key fieldguard does not know is refused.
        bad = root / "bad.yaml"
        bad.write_text(config.read_text().replace('"key_prefix"', '"keyPrefix"'))
        out = subprocess.run([str(binary), "validate", "--config", str(bad)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "keyPrefix" in out.stderr, out.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def redis_call(port: int, *args: str, password: str | None = None):
    """One command to a redis-server over RESP (no client library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")

        def read():
            line = f.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b"+":
                return rest.decode()
            if kind == b"-":
                raise RuntimeError(rest.decode())
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                return None if n < 0 else f.read(n + 2)[:-2].decode()
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise AssertionError(f"unexpected reply {line!r}")

        def send(*words: str):
            s.sendall(f"*{len(words)}\r\n".encode()
                      + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words))
            return read()

        if password:
            send("AUTH", password)
        return send(*args)


@pytest.fixture()
def redis_server():
    """A redis-server of this test's own (Debian's package, as .ci/run
    installs it), on a free loopback port, password set, persistence off."""
    found = shutil.which("redis-server")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (CI=true: .ci/run installs Debian's redis-server)")
        pytest.skip("NOT TESTED: the rendered pod against a real store: redis-server not found on PATH "
                    "(apt-get install redis-server)")
    port = free_port()
    password = STORE_PASSWORD.decode().strip()
    d = Path(tempfile.mkdtemp(prefix="fieldguard-redis-"))
    proc = subprocess.Popen([found, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", password, "--dir", str(d)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("redis-server answers", lambda: redis_call(port, "PING", password=password) == "PONG")
        yield port, password
    finally:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


def test_the_rendered_pod_counts_its_budgets_in_redis(image, sandbox, binary, redis_server):
    """The example release with the budgets in a real redis-server: the
    password comes from the Secret's key through the mounted file, the pod
    starts (which needs the store: requiredAtStart), and what a support
    agent is shown is counted under the chart's key prefix."""
    port, password = redis_server
    values = merge(VALUES, {"budgets": {"store": {"type": "redis", "redis": {
        "url": f"redis://127.0.0.1:{port}/0",
        "existingSecret": "shop-budget-store",
        "passwordKey": "redis-password",
        "keyPrefix": "chart-test",
    }}}})
    root = world_readable_tempdir("fieldguard-pod-")
    pod = Pod(image, root, values, secrets={"shop-budget-store": {"redis-password": STORE_PASSWORD}})
    pod.lay_out_volumes()
    shop, fg = pod.start(sandbox)
    try:
        wait_for("/readyz answers 200", lambda: http("GET", pod.url("admin", "/readyz"))[0] == 200 or None)
        agent = token(binary, "support_agent", "agent-7")
        status, _ = wait_for("the shop answers through the proxy",
                             lambda: (lambda r: r if r[0] == 200 else None)(
                                 http("GET", pod.url("proxy", "/customers/c-1001"), agent)))
        assert status == 200
        keys = wait_for("the budgets are counted in the store",
                        lambda: redis_call(port, "KEYS", "chart-test:*", password=password))
        assert any(k.startswith("chart-test:{p.") and k.endswith(":support-records-day") for k in keys), keys
        assert not redis_call(port, "KEYS", "fieldguard:*", password=password), "the default prefix was used"
    finally:
        stop(fg)
        stop(shop)
        for p in (fg,):
            p.stdout and p.stdout.close()
            p.stderr and p.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
