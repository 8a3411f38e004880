"""The image the chart deploys builds, without a container engine.

The Dockerfile's build stage is read as Docker reads it, its build context
is made as Docker makes it (the repository less what .dockerignore
excludes), exactly what its COPY lines name is copied into an empty
folder, and its RUN step runs there:

- always (a second or two): the COPY sources exist and are not excluded,
  `cargo metadata --locked` accepts the copied workspace (every member,
  path dependency and declared target is there, and Cargo.lock is current),
  every file the sources `include_str!` is in the copy, every locked crate
  the binary is built from accepts the image's Rust (its rust_version), and
  the runtime stage agrees with the build stage and with the chart;
- with FIELDGUARD_IMAGE_BUILD=1 (CI's image step): the RUN step itself,
  `cargo build --release --locked --bin fieldguard`, offline
  (CARGO_NET_OFFLINE: the machine's cargo registry cache, which `cargo
  test` filled). Without the variable it is skipped (loudly: pytest.ini's
  -rs lists the reason), and under CI=true it fails instead.

What differs from `docker build`, and only this: the toolchain is this
machine's (at least the rust-version the image's rust tag is checked
against); the crates come from the local registry cache instead of
crates.io (`--locked` pins the same versions and checksums); and, unless
FIELDGUARD_IMAGE_BUILD=optimized, the release profile's optimizer is off
(CARGO_PROFILE_RELEASE_OPT_LEVEL=0, no debug info, 256 codegen units): the
same command, files, lock file, features and cfg (no debug_assertions),
for a third of the CPU. CI builds no release binary otherwise (the
benchmark smoke run reuses `cargo test`'s debug build), so there is none
to reuse, and a debug build's artifacts are not: they are compiled with
the dev-dependencies' features, which change a dozen crates, cedar-policy
and the workspace's included.

The build goes to target/image-build/ (CARGO_TARGET_DIR's, if set), never
target/release/: an unoptimized binary built from a copy whose
CARGO_MANIFEST_DIR is gone must not stand in for a release build. The
folder is kept, so a second run locally compiles only the workspace's two
crates (about 15 s).

Python rather than a Rust integration test: the helm tests' pytest run is
where the image is already tested (test_render_and_run.py runs the binary
as the image runs it), and a `cargo test` that runs `cargo build --release`
would take cargo's target-directory lock it holds itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml

from conftest import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


# --- The Dockerfile, as BuildKit's parser reads it (the subset used here) ---


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comment lines dropped (also inside
    a continued instruction), `\\` line continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def exec_form(args: str) -> list[str] | None:
    return json.loads(args) if args.startswith("[") else None


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None = None


@dataclass
class Stage:
    base: str
    name: str | None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    rest: list[tuple[str, str]] = field(default_factory=list)


def parse_copy(args: str) -> Copy:
    words = exec_form(args) or shlex.split(args)
    from_stage = None
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0).partition("=")
        if flag == "--from":
            from_stage = value
        elif flag not in ("--chown", "--chmod", "--link"):
            # --parents, --exclude, ...: not modelled, so not silently ignored.
            raise AssertionError(f"COPY {flag} is not modelled by this test: teach it")
    assert len(words) >= 2, f"COPY {args}"
    return Copy(words[:-1], words[-1], from_stage)


def stages(text: str) -> list[Stage]:
    out: list[Stage] = []
    for word, args in instructions(text):
        if word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m, f"FROM {args}"
            out.append(Stage(base=m.group(1), name=m.group(2)))
            continue
        assert out, f"{word} before FROM"
        stage = out[-1]
        if word == "WORKDIR":
            stage.workdir = str(PurePosixPath(stage.workdir) / args)
        elif word == "COPY":
            stage.copies.append(parse_copy(args))
        elif word == "RUN":
            assert not args.startswith("--"), f"RUN {args}: RUN flags (--mount, ...) are not modelled by this test"
            form = exec_form(args)
            stage.runs.append(shlex.join(form) if form else args)
        elif word == "ENV":
            for pair in shlex.split(args):
                key, eq, value = pair.partition("=")
                assert eq, f"ENV {args}: only the KEY=value form is modelled"
                stage.env[key] = value
        else:
            stage.rest.append((word, args))
    return out


def build_and_runtime() -> tuple[Stage, Stage, Copy]:
    """The stage the image's binary comes from, the final stage, and the
    final stage's COPY --from of it."""
    all_stages = stages(DOCKERFILE.read_text())
    runtime = all_stages[-1]
    [artifact] = [c for c in runtime.copies if c.from_stage]
    [build] = [s for s in all_stages if s.name == artifact.from_stage]
    # Instructions of the build stage this test does not model would make
    # it test something other than what Docker builds.
    assert not build.rest, f"build stage instructions not modelled by this test: {build.rest}"
    assert not [c for c in build.copies if c.from_stage], "COPY --from in the build stage"
    return build, runtime, artifact


# --- The build context: the repository less .dockerignore ---


def _pattern_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore pattern (Go's filepath.Match plus `**`),
    anchored at the context root."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):  # "**/" also matches no folder at all
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """(exception, pattern) per line, in order: the last match decides."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        line = line.lstrip("!").strip()
        # Docker cleans each pattern (filepath.Clean) and drops a leading /.
        cleaned = os.path.normpath(line).lstrip("/")
        rules.append((exception, _pattern_regex(cleaned)))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether `rel` (a path relative to the context) is left out of the
    context: it, or a folder it is in, matches a pattern."""
    parts = PurePosixPath(rel).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, pattern in rules:
        if any(pattern.fullmatch(p) for p in prefixes):
            excluded = not exception
    return excluded


def context_files(rules) -> set[str]:
    """Every file of the build context, as Docker sends it."""
    out = set()
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        rel_root = "" if rel_root == "." else rel_root + "/"
        # Excluded folders are not walked (unless an exception could
        # re-include something under them: none is used here).
        if not any(exc for exc, _ in rules):
            dirs[:] = [d for d in dirs if not ignored(rel_root + d, rules)]
        for f in files:
            if not ignored(rel_root + f, rules):
                out.add(rel_root + f)
    return out


def lay_out(build: Stage, dest_root: Path, rules=None) -> dict[str, Path]:
    """Copies what the build stage's COPY lines name from the context into
    `dest_root`, standing for the stage's filesystem root. Returns
    context path -> copied path."""
    rules = ignore_rules(DOCKERIGNORE.read_text()) if rules is None else rules
    files = context_files(rules)
    copied: dict[str, Path] = {}
    for copy in build.copies:
        dest = PurePosixPath(build.workdir) / copy.dest
        into_dir = copy.dest.endswith("/") or len(copy.sources) > 1
        for source in copy.sources:
            src = PurePosixPath(os.path.normpath(source)).as_posix().lstrip("/")
            assert not any(ch in src for ch in "*?["), f"COPY {source}: wildcards are not modelled by this test"
            under = [f for f in files if f == src or f.startswith(src + "/")]
            assert under, f"COPY {source}: nothing in the build context (missing, or excluded by .dockerignore)"
            for f in under:
                if f == src:  # a file: into the folder, or as the destination
                    target = dest / PurePosixPath(f).name if into_dir else dest
                else:  # a folder: its contents into the destination
                    target = dest / PurePosixPath(f).relative_to(src)
                out = dest_root / target.relative_to("/")
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / f, out)
                copied[f] = out
    return copied


def host_path(stage_path: str, root: Path) -> Path:
    return root / PurePosixPath(stage_path).relative_to("/")


def cargo_env(target_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, CARGO_NET_OFFLINE="true", CARGO_TERM_COLOR="never")
    if target_dir is not None:
        env["CARGO_TARGET_DIR"] = str(target_dir)
    return env


def check_workspace(workdir: Path) -> dict:
    """`cargo metadata --locked` in the copied workspace: it loads every
    member's and path dependency's manifest, finds every declared target's
    file, and refuses a Cargo.lock that needs updating."""
    host = re.search(r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                                      check=True).stdout, re.M).group(1)
    # --filter-platform: only the packages this machine's build uses, which
    # its registry cache holds (offline).
    out = subprocess.run(
        ["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", host],
        cwd=workdir, env=cargo_env(workdir / "target"), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"cargo metadata in the copied build context:\n{out.stderr}"
    return json.loads(out.stdout)


INCLUDE = re.compile(r"\binclude(?:_str|_bytes)?!\s*\(\s*\"((?:[^\"\\]|\\.)*)\"\s*\)")


def missing_includes(workdir: Path, metadata: dict) -> list[str]:
    """Files the workspace's sources include_str!/include_bytes!/include!
    by a literal path (relative to the including file) that the copy lacks.
    (env!("CARGO_MANIFEST_DIR") paths are only strings in the binary: the
    image does not carry them, nor need them to build.)"""
    missing = []
    for pkg in metadata["packages"]:
        if pkg["source"] is not None:
            continue
        for rs in Path(pkg["manifest_path"]).parent.rglob("*.rs"):
            for m in INCLUDE.finditer(rs.read_text()):
                if not (rs.parent / m.group(1)).exists():
                    missing.append(f"{rs.relative_to(workdir)}: {m.group(1)}")
    return missing


# --- Always: the static checks ---


@pytest.fixture(scope="module")
def dockerfile():
    return build_and_runtime()


def test_copy_sources_exist_and_are_not_excluded(dockerfile):
    build, _, _ = dockerfile
    rules = ignore_rules(DOCKERIGNORE.read_text())
    for copy in build.copies:
        for source in copy.sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert not ignored(os.path.normpath(source), rules), f"COPY {source}: excluded by .dockerignore"


def test_context_leaves_out_what_the_build_does_not_need():
    """The demo keys, the build output and the history stay out of the
    context (.dockerignore)."""
    rules = ignore_rules(DOCKERIGNORE.read_text())
    for path in ["target/release/fieldguard", ".git/HEAD", "examples/demo/secrets/hash.key",
                 "fuzz/artifacts/crash-1", "bench/results/latest.md", "crates/fieldguard-core/target/x",
                 "crates/fieldguard-core/proptest-regressions/a.txt"]:
        assert ignored(path, rules), path
    for path in ["Cargo.toml", "Cargo.lock", "src/main.rs", "crates/fieldguard-core/src/lib.rs",
                 "benches/redaction.rs"]:
        assert not ignored(path, rules), path


def test_dockerignore_patterns_as_docker_reads_them():
    rules = ignore_rules("target/\n/docs\n**/proptest-regressions\n*.md\nexamples/\n!examples/keep.rs\n")
    assert ignored("target", rules) and ignored("target/release/x", rules)
    assert ignored("docs/a.md", rules)
    assert ignored("proptest-regressions/x.txt", rules) and ignored("a/b/proptest-regressions/x", rules)
    assert ignored("README.md", rules) and not ignored("src/README.md", rules)
    assert not ignored("src/target.rs", rules) and not ignored("crates/x/target", ignore_rules("target/\n"))
    assert ignored("examples/a.rs", rules) and not ignored("examples/keep.rs", rules)


@pytest.fixture(scope="module")
def copied_context(dockerfile, tmp_path_factory):
    """The build stage's files laid out, and `cargo metadata` of them."""
    build, _, _ = dockerfile
    root = tmp_path_factory.mktemp("build-stage")
    copied = lay_out(build, root)
    workdir = host_path(build.workdir, root)
    return workdir, copied, check_workspace(workdir)


def test_the_copied_context_is_a_workspace_cargo_builds(copied_context):
    workdir, copied, metadata = copied_context
    local = [p for p in metadata["packages"] if p["source"] is None]
    assert sorted(p["name"] for p in local) == ["fieldguard", "fieldguard-core"]
    for pkg in local:
        assert Path(pkg["manifest_path"]).is_relative_to(workdir), pkg["manifest_path"]
        for target in pkg["targets"]:
            assert Path(target["src_path"]).is_file(), target["src_path"]
    assert not missing_includes(workdir, metadata)
    # Nothing outside what the build needs: no test, fuzz target, example
    # or key material.
    assert not [f for f in copied if f.split("/")[0] in ("tests", "fuzz", "examples", "target", ".git")]


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def test_the_locked_dependencies_build_on_the_image_toolchain(dockerfile, copied_context):
    """Every crate the binary is built from (normal and build dependencies,
    as locked) accepts the image's Rust: a lock file update that pulls a
    crate needing a newer rustc fails here, not in `docker build`. (The test
    build itself runs this machine's newer toolchain.)"""
    build, _, _ = dockerfile
    _, _, metadata = copied_context
    image_rust = version_tuple(re.match(r"rust:(\d+\.\d+)", build.base).group(1))
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    [root] = [p["id"] for p in metadata["packages"] if p["name"] == "fieldguard" and p["source"] is None]
    built, todo = set(), [root]
    while todo:
        pkg = todo.pop()
        if pkg not in built:
            built.add(pkg)
            todo += [d["pkg"] for d in nodes[pkg]["deps"]
                     if any(k["kind"] in (None, "build") for k in d["dep_kinds"])]
    assert len(built) > 100, "the dependency walk found too little"
    too_new = sorted(f"{packages[p]['name']} {packages[p]['version']} needs rustc {packages[p]['rust_version']}"
                     for p in built
                     if packages[p].get("rust_version")
                     and version_tuple(packages[p]["rust_version"])[:2] > image_rust)
    assert not too_new, f"{build.base} is too old for: {too_new}"


def test_the_check_catches_a_missing_workspace_member(dockerfile, tmp_path):
    """Not a no-op: the Dockerfile as it was before crates/ was copied fails
    the workspace check, naming the missing member."""
    build, _, _ = dockerfile
    without = Stage(build.base, build.name, build.workdir, build.env,
                    [c for c in build.copies if c.sources != ["crates"]], build.runs)
    assert len(without.copies) == len(build.copies) - 1
    lay_out(without, tmp_path)
    with pytest.raises(AssertionError, match="fieldguard-core"):
        check_workspace(host_path(build.workdir, tmp_path))


def test_the_build_stage_runs_the_release_build(dockerfile):
    build, _, artifact = dockerfile
    [run] = build.runs
    argv = shlex.split(run)
    assert argv[:2] == ["cargo", "build"] and {"--release", "--locked"} <= set(argv), run
    binary = argv[argv.index("--bin") + 1]
    # The runtime stage copies that binary from the build's target folder.
    assert artifact.sources == [str(PurePosixPath(build.workdir) / "target" / "release" / binary)]


def test_the_toolchain_is_the_rust_version(dockerfile):
    build, _, _ = dockerfile
    m = re.fullmatch(r"rust:(\d+\.\d+)(?:\.\d+)?-(\w+)", build.base)
    assert m, f"build stage FROM {build.base}: expected rust:<rust-version>-<debian release>"
    rust_version = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["rust-version"]
    assert m.group(1) == rust_version, "the build stage's rust tag is Cargo.toml's rust-version"
    # The runtime is the same Debian release (glibc the binary was linked against).
    _, runtime, _ = dockerfile
    release = {"bookworm": "debian12", "trixie": "debian13"}[m.group(2)]
    assert release in runtime.base, runtime.base


def test_the_runtime_stage_is_what_the_chart_runs(dockerfile):
    _, runtime, artifact = dockerfile
    rest = dict(runtime.rest)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    sc = values["securityContext"]
    assert rest["USER"] == f"{sc['runAsUser']}:{sc['runAsGroup']}"
    assert json.loads(rest["ENTRYPOINT"]) == [artifact.dest]
    assert json.loads(rest["CMD"]) == ["run", "--config", "/etc/fieldguard/config/fieldguard.yaml"]
    assert sorted(int(p) for p in rest["EXPOSE"].split()) == sorted([values["proxy"]["port"], values["admin"]["port"]])


# --- With FIELDGUARD_IMAGE_BUILD=1: the build step itself ---


def image_build_target_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return (target if target.is_absolute() else REPO / target) / "image-build"


def compiled_crates(stderr: str) -> list[str]:
    return re.findall(r"^\s*Compiling (\S+) v", stderr, re.M)


UNOPTIMIZED = {
    "CARGO_PROFILE_RELEASE_OPT_LEVEL": "0",
    "CARGO_PROFILE_RELEASE_DEBUG": "false",
    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "256",
}


@pytest.mark.image_build
def test_the_dockerfile_build_step_builds_offline(dockerfile, tmp_path, capsys):
    mode = os.environ.get("FIELDGUARD_IMAGE_BUILD")
    if mode not in ("1", "optimized"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but FIELDGUARD_IMAGE_BUILD is not set: CI must run the image build step "
                        "(.ci/run's image step sets it)")
        pytest.skip("NOT TESTED: the Dockerfile's build step (its cargo build in a copy of the build "
                    "context). FIELDGUARD_IMAGE_BUILD=1 runs it (CI does), =optimized with the optimizer on")
    build, _, artifact = dockerfile
    lay_out(build, tmp_path)
    workdir = host_path(build.workdir, tmp_path)
    target = image_build_target_dir()
    binary = target / PurePosixPath(artifact.sources[0]).relative_to(PurePosixPath(build.workdir) / "target")
    env = cargo_env(target)
    if mode == "1":
        env.update(UNOPTIMIZED)
    env.update(build.env)
    start = time.time()
    for run in build.runs:
        out = subprocess.run(["sh", "-c", run], cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=3600)
        assert out.returncode == 0, f"RUN {run} (offline, in the copied context):\n{out.stderr[-8000:]}"
    took = time.time() - start
    compiled = compiled_crates(out.stderr)
    with capsys.disabled():
        shown = ", ".join(compiled[:12]) + (", ..." if len(compiled) > 12 else "")
        print(f"\nimage build step ({'optimized' if mode == 'optimized' else 'optimizer off'}): {took:.0f} s, "
              f"{len(compiled)} crates compiled ({shown}), CARGO_TARGET_DIR {target}")
    # The binary the runtime stage copies, built now, and it runs.
    assert binary.is_file() and binary.stat().st_mtime >= start - 1, binary
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "fieldguard" in version.stdout, version
    # Built from the copy: the workspace's crates compiled from it.
    assert {"fieldguard", "fieldguard-core"} <= set(compiled), compiled
