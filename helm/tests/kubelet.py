"""What the kubelet and the container runtime do with a rendered pod, done
on this machine for the render-and-run tests:

- ConfigMap and Secret volumes laid out as the kubelet's atomic writer
  does: the files in a timestamped directory `..2026_11_29_14_00_00.N`, a
  `..data` symlink to it, and one symlink per key through `..data`; an
  update writes a new timestamped directory, renames a new symlink over
  `..data` (one atomic step), fixes the per-key links and removes the old
  directory.
- Environment variables from the downward API (`valueFrom.fieldRef`), from
  the pod's fields.
- The container's securityContext: `runAsUser`/`runAsGroup` (setpriv),
  `allowPrivilegeEscalation: false` (no_new_privs), capabilities dropped,
  and `readOnlyRootFilesystem` (every mount made read-only in a private
  mount namespace, except the audit volume), as root can do with
  util-linux's `unshare` and `setpriv`.
"""

from __future__ import annotations

import datetime
import itertools
import os
import shutil
import subprocess
from pathlib import Path

_SERIAL = itertools.count(1)


def _timestamped_name() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{next(_SERIAL):09d}"


def _write_payload(volume: Path, files: dict[str, bytes], mode: int, gid: int | None) -> Path:
    ts = volume / _timestamped_name()
    ts.mkdir(mode=0o755)
    for name, data in files.items():
        f = ts / name
        f.write_bytes(data)
        if gid is not None and os.geteuid() == 0:
            os.chown(f, 0, gid)
        f.chmod(mode)
    return ts


def _swap_data_link(volume: Path, ts: Path) -> None:
    tmp = volume / "..data_tmp"
    os.symlink(ts.name, tmp)
    os.rename(tmp, volume / "..data")


def project(data: dict[str, bytes], items: list[dict] | None) -> dict[str, bytes]:
    """A Secret's or ConfigMap's keys as its volume shows them: all of them,
    or with `items` only those, each at its `path`."""
    if items is None:
        return dict(data)
    return {item["path"]: data[item["key"]] for item in items}


def mount_volume(volume: Path, files: dict[str, bytes], mode: int = 0o444, gid: int | None = None) -> None:
    """A ConfigMap or Secret volume as the kubelet first writes it."""
    volume.mkdir(parents=True, mode=0o755)
    ts = _write_payload(volume, files, mode, gid)
    _swap_data_link(volume, ts)
    for name in files:
        os.symlink(Path("..data") / name, volume / name)


def update_volume(volume: Path, files: dict[str, bytes], mode: int = 0o444, gid: int | None = None) -> None:
    """A ConfigMap update as the kubelet applies it: new payload directory,
    `..data` swapped atomically, per-key links added or removed, old
    payload removed."""
    old = (volume / "..data").resolve()
    ts = _write_payload(volume, files, mode, gid)
    _swap_data_link(volume, ts)
    for name in files:
        if not (volume / name).is_symlink():
            os.symlink(Path("..data") / name, volume / name)
    for entry in volume.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    shutil.rmtree(old)


# Runs in a private mount namespace as root: the audit directory becomes
# its own (writable) mount, every other mount is made read-only (the
# container's read-only root filesystem), then the command is exec'd, so
# the process keeps the pid the test started.
_SANDBOX_SCRIPT = r"""
set -e
writable="$1"; shift
mount --bind "$writable" "$writable"
awk '{print $2}' /proc/self/mounts | sort -u | while read -r m; do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  [ "$m" = "$writable" ] && continue
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
exec "$@"
"""


def downward_api(value_from: dict, pod_fields: dict[str, str]) -> str:
    """An env var's `valueFrom` as the kubelet resolves it: a `fieldRef` to
    one of the pod's fields (only those; anything else is not modelled)."""
    assert list(value_from) == ["fieldRef"], f"valueFrom {value_from} is not modelled"
    path = value_from["fieldRef"]["fieldPath"]
    assert path in pod_fields, f"fieldRef {path} is not modelled"
    return pod_fields[path]


def sandbox_unavailable() -> str | None:
    """Why the container's security context cannot be reproduced here, or
    None when it can."""
    if os.geteuid() != 0:
        return "not running as root (unshare and setpriv need it)"
    for tool in ("unshare", "setpriv", "mount", "awk"):
        if not shutil.which(tool):
            return f"{tool} is not installed (util-linux)"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --mount failed: {probe.stderr.strip()}"
    return None


def container_command(argv: list[str], security_context: dict, writable: Path) -> list[str]:
    """`argv` wrapped so it runs as the container would under
    `security_context`, with only `writable` writable."""
    uid = security_context["runAsUser"]
    gid = security_context.get("runAsGroup", uid)
    assert security_context["runAsNonRoot"] is True and uid != 0
    assert security_context["capabilities"] == {"drop": ["ALL"]}
    assert security_context["allowPrivilegeEscalation"] is False
    assert security_context["readOnlyRootFilesystem"] is True
    setpriv = [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
        "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
    ]
    return ["unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", _SANDBOX_SCRIPT, "sandbox", str(writable), *setpriv, *argv]
