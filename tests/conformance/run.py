#!/usr/bin/env python3
"""The conformance suite: every case of cases.py is built by BuildKit (the
docker daemon's, DOCKER_BUILDKIT=1) and by `strata build -f Dockerfile`, both
images are unpacked with umoci, and the trees and configurations compared:
every path, type, mode (setuid/setgid/sticky included), uid/gid, symlink
target, hard-link grouping, content hash and security.capability xattr, and
Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels,
StopSignal, Healthcheck, Shell and OnBuild. Timestamps and history text are
not compared. Each case's `strata convert` output must build the image
`strata build -f Dockerfile` built, digest for digest. Both builds start from the same base, a busybox image pushed to
a registry on 127.0.0.1.

Usage: run.py STRATA [--only NAME...] [--fast] [--keep]
Prints a table and exits 1 when a case differs (or strata fails where
BuildKit succeeds) and the difference is not in ALLOWED below."""
import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import cases as CASES  # noqa: E402

DOCKER = "/usr/bin/docker"
ENV = dict(os.environ, DOCKER_BUILDKIT="1")
CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
               "StopSignal", "Healthcheck", "Shell", "OnBuild"]

# Differences that are known and accepted: case name -> why.
ALLOWED = {}


def run(cmd, **kw):
    kw.setdefault("env", ENV)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def must(cmd, **kw):
    r = run(cmd, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    return r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(scratch):
    port = free_port()
    cfg = os.path.join(scratch, "registry.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {scratch}/registry\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    sys.exit("docker-registry did not start")


def write_context(d, files):
    """files: path -> str (a 0644 file) or a dict: {content, mode}, {symlink},
    {dir, mode}, {hardlink: other path}, {fifo}."""
    for path, spec in files.items():
        p = os.path.join(d, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(spec, str):
            spec = {"content": spec}
        if "tar" in spec:
            write_tar(p, spec["tar"], spec.get("compress", ""))
        elif "symlink" in spec:
            os.symlink(spec["symlink"], p)
        elif "hardlink" in spec:
            os.link(os.path.join(d, spec["hardlink"]), p)
        elif "dir" in spec:
            os.makedirs(p, exist_ok=True)
            os.chmod(p, spec.get("mode", 0o755))
        else:
            with open(p, "w") as f:
                f.write(spec["content"])
            os.chmod(p, spec.get("mode", 0o644))


def write_tar(path, entries, compress):
    """entries: name -> {type: file|dir|symlink|link, content, mode, uid, gid, target}."""
    import io
    import tarfile
    with tarfile.open(path, "w:" + compress if compress else "w", format=tarfile.GNU_FORMAT) as t:
        for name, e in entries.items():
            info = tarfile.TarInfo(name)
            info.mode = e.get("mode", 0o644)
            info.uid, info.gid = e.get("uid", 0), e.get("gid", 0)
            info.mtime = 1_600_000_000
            kind = e.get("type", "file")
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e["target"]
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, e["target"]
            else:
                data = e.get("content", "").encode()
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)


def snapshot(root):
    """path -> description of everything a layer carries but timestamps."""
    entries = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
                    stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFSOCK: "socket"}[stat.S_IFMT(st.st_mode)]
            e = {"type": kind, "mode": oct(stat.S_IMODE(st.st_mode)), "owner": f"{st.st_uid}:{st.st_gid}"}
            if kind == "file":
                with open(p, "rb") as f:
                    e["sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif kind == "symlink":
                e["target"] = os.readlink(p)
            if kind != "symlink":
                try:
                    e["capability"] = os.getxattr(p, "security.capability", follow_symlinks=False).hex()
                except OSError:
                    pass
            entries[rel] = e
    for paths in inodes.values():
        if len(paths) > 1:
            first = sorted(paths)[0]
            for rel in paths:
                entries[rel]["hardlink-group"] = first
    return entries


def normal(v):
    return None if v in (None, [], {}, "") else v


def config_of(raw):
    return {k: normal(raw.get(k)) for k in CONFIG_KEYS}


def unpack(layout, tag, dest):
    must(["umoci", "unpack", "--image", f"{layout}:{tag}", dest])
    return os.path.join(dest, "rootfs")


BASES_RECIPE = r"""
// The Debian bases of the real-world cases, built once by strata from the
// loopback mirror and pushed for both builders: like the official images,
// with apt reading the same mirror (no translations, no recommends: the
// mirror holds what debian() installs).
let mirror = "MIRROR";
let apt = text("Acquire::Languages \"none\";\nAPT::Install-Recommends \"false\";\n");
fn base(packages, apt, mirror) {
    debian("bookworm", packages, #{ mirror: mirror }).copy(apt, "/etc/apt/apt.conf.d/99conformance")
}
let deb = base([], apt, mirror).cmd(["bash"]);
let python = base(["python3", "python3-venv", "adduser"], apt, mirror)
    .run("python3 -m venv /usr/local/python")
    .env("PATH", "/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    .env(#{ PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INDEX: "1" })
    .cmd(["python3"]);
let nginx = base(["nginx"], apt, mirror)
    .run("groupadd --system --gid 101 nginx && useradd --system --gid nginx --no-create-home --home /nonexistent --shell /bin/false --uid 101 nginx && mkdir -p /var/cache/nginx /etc/nginx/templates /usr/share/nginx/html && echo 'server { listen 80; root /usr/share/nginx/html; }' > /etc/nginx/conf.d/default.conf")
    .expose(80)
    .stop_signal("SIGQUIT")
    .cmd(["nginx", "-g", "daemon off;"]);
image("debian", deb);
image("python", python);
image("nginx", nginx);
"""


def make_debian_bases(args, scratch, addr):
    """Builds the Debian bases with strata from the loopback mirror and
    pushes them; returns {placeholder: reference} and the mirror's server."""
    mirror_dir = os.environ.get("STRATA_TEST_DEBIAN_MIRROR", os.path.join(REPO, ".cache", "debian-mirror"))
    if not os.path.isdir(os.path.join(mirror_dir, "pool")):
        sys.exit(f"no Debian mirror at {mirror_dir}: run scripts/conformance.sh (it makes one)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", mirror_dir,
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    work = os.path.join(scratch, "bases")
    os.makedirs(work)
    with open(os.path.join(work, "strata.rhai"), "w") as f:
        f.write(BASES_RECIPE.replace("MIRROR", f"http://127.0.0.1:{port}"))
    refs = {"{DEBIAN}": f"{addr}/conformance/debian:bookworm", "{PYTHON}": f"{addr}/conformance/python:3",
            "{NGINX}": f"{addr}/conformance/nginx:1"}
    cmd = [args.strata, "--store", os.path.join(work, "store"), "build", "--progress", "plain"]
    for name, placeholder in [("debian", "{DEBIAN}"), ("python", "{PYTHON}"), ("nginx", "{NGINX}")]:
        cmd += ["--push", f"{name}={refs[placeholder]}"]
    must(cmd, cwd=work)
    return refs, server


def with_group(src, dest, group):
    """A copy of the tarball `src` with /etc/group replaced."""
    import io
    import tarfile
    with tarfile.open(src) as t, tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as out:
        for m in t.getmembers():
            if m.name in ("./etc/group", "etc/group"):
                data = group.encode()
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))
            else:
                out.addfile(m, t.extractfile(m) if m.isfile() else None)


ATTESTED = "attested-image-pulls-in-docker"


def attested_pull(args, scratch, busybox, addr):
    """An image strata pushed with its SBOM and provenance attached (an
    index with attestation manifests, as BuildKit's) pulls and runs in
    docker: the attestations do not get in the way of the image."""
    work = os.path.join(scratch, ATTESTED)
    os.makedirs(work)
    shutil.copy(busybox, os.path.join(work, "busybox.tar"))
    with open(os.path.join(work, "strata.rhai"), "w") as f:
        f.write('image("attested", from("rootfs:busybox.tar").run("echo hello from strata > /hello").cmd(["cat", "/hello"]));\n')
    ref = f"{addr}/conformance/attested:1"
    notes = []
    r = run([args.strata, "--store", os.path.join(work, "store"), "build", "--sbom", "--provenance", "--push", ref], cwd=work)
    if r.returncode != 0:
        notes.append(f"strata: {r.stderr.strip()[-300:]}")
    else:
        pulled = run([DOCKER, "pull", "-q", ref])
        ran = run([DOCKER, "run", "--rm", "--network", "none", ref]) if pulled.returncode == 0 else pulled
        if ran.returncode != 0 or ran.stdout != "hello from strata\n":
            notes.append(f"docker: {(ran.stderr or ran.stdout).strip()[-300:]}")
        run([DOCKER, "rmi", "-f", ref])
    status = "same" if not notes else "strata fails"
    print(f"{ATTESTED:<40} {'pulls and runs' if not notes else status}", flush=True)
    for n in notes:
        print(f"    {n}", flush=True)
    return (ATTESTED, status, notes)


HELLO = "hello-example-loads-and-runs-in-docker"


def hello_in_docker(args, scratch, busybox):
    """The README's first example goes into docker with `--load` (the
    engine API on docker's socket) and runs as the README shows."""
    work = os.path.join(scratch, HELLO)
    shutil.copytree(os.path.join(REPO, "examples", "hello"), work)
    shutil.copy(busybox, os.path.join(work, "busybox.tar"))
    notes = []
    env = dict(ENV, DOCKER_HOST="unix:///var/run/docker.sock")
    r = run([args.strata, "--store", os.path.join(work, "store"), "build", "hello", "--load"], cwd=work, env=env)
    if r.returncode != 0:
        notes.append(f"strata: {r.stderr.strip()[-300:]}")
    else:
        ran = run([DOCKER, "run", "--rm", "--network", "none", "example/hello"])
        if ran.returncode != 0 or ran.stdout != "hello, world\n":
            notes.append(f"docker: {(ran.stderr or ran.stdout).strip()[-300:]}")
        run([DOCKER, "rmi", "-f", "example/hello:latest", "example/hello:1.0"])
    status = "same" if not notes else "strata fails"
    print(f"{HELLO:<40} {'loads and runs' if not notes else status}", flush=True)
    for n in notes:
        print(f"    {n}", flush=True)
    return (HELLO, status, notes)


def given(case, args):
    """What both builders are given on the command line: an SSH agent, a secret."""
    out = []
    if case.get("ssh"):
        out += ["--ssh", f"default={args.agent}"]
    if case.get("secret"):
        out += ["--secret", f"id=tok,src={args.token}"]
    return out


def build_docker(case, ctx, work, args):
    tag = f"strata-conformance/{case['name']}:latest"
    cmd = [DOCKER, "build", "--network", "host", "-q", "-t", tag]
    cmd += given(case, args)
    for k, v in case.get("args", {}).items():
        cmd += ["--build-arg", f"{k}={v}"]
    if case.get("target"):
        cmd += ["--target", case["target"]]
    r = run(cmd + ["."], cwd=ctx)
    if r.returncode != 0:
        return None, None, (r.stderr.strip().splitlines() or ["failed"])[-1]
    archive = os.path.join(work, "docker.tar")
    must([DOCKER, "save", "-o", archive, tag])
    layout = os.path.join(work, "docker-oci")
    must(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{layout}:img"])
    rootfs = unpack(layout, "img", os.path.join(work, "docker-bundle"))
    raw = json.loads(must([DOCKER, "inspect", tag]))[0]["Config"]
    run([DOCKER, "rmi", "-f", tag])
    return snapshot(rootfs), config_of(raw), None


def build_strata(case, ctx, work, args):
    store = os.path.join(work, "strata-store")
    layout = os.path.join(work, "strata-oci")
    cmd = [args.strata, "--store", store, "build", "-f", "Dockerfile", "-o", f"oci:{layout}", "--progress", "plain"]
    cmd += given(case, args)
    for k, v in case.get("args", {}).items():
        cmd += ["--build-arg", f"{k}={v}"]
    if case.get("target"):
        cmd += ["--target", case["target"]]
    r = run(cmd, cwd=ctx)
    if r.returncode != 0:
        lines = [l for l in r.stderr.strip().splitlines() if l.startswith("error")] or r.stderr.strip().splitlines()
        return None, None, (lines or ["failed"])[0]
    lines = [l.split("\t") for l in r.stdout.splitlines() if l.count("\t") == 2]
    names = [l[0] for l in lines]
    if len(names) != 1:
        return None, None, f"expected one image, strata built {names}"
    # `strata convert` gave the recipe (written before either build, so both
    # see the same context) that builds the same image.
    again = [args.strata, "--store", store, "build", "-f", "converted.rhai", "--progress", "plain"]
    again += given(case, args)
    for k, v in case.get("args", {}).items():
        again += ["--arg", f"{k}={v}"]
    if case.get("convert_differs"):
        # Documented in the case: what a recipe cannot say yet.
        return snapshot_and_config(layout, names[0], store, work, args)
    r2 = run(again, cwd=ctx)
    digests = [l.split("\t")[2] for l in r2.stdout.splitlines() if l.count("\t") == 2]
    if r2.returncode != 0 or digests != [lines[0][2]]:
        return None, None, f"the converted recipe built {digests or r2.stderr.strip()[-300:]}, not {lines[0][2]}"
    return snapshot_and_config(layout, names[0], store, work, args)


def snapshot_and_config(layout, name, store, work, args):
    rootfs = unpack(layout, name, os.path.join(work, "strata-bundle"))
    raw = json.loads(must([args.strata, "--store", store, "inspect", name]))["config"]["config"]
    return snapshot(rootfs), config_of(raw), None


def differences(a, b, limit=6):
    out = []
    for path in sorted(set(a) | set(b)):
        if path not in b:
            out.append(f"only BuildKit: /{path} {a[path]}")
        elif path not in a:
            out.append(f"only strata: /{path} {b[path]}")
        elif a[path] != b[path]:
            diff = {k: (a[path].get(k), b[path].get(k)) for k in set(a[path]) | set(b[path])
                    if a[path].get(k) != b[path].get(k)}
            out.append(f"/{path}: " + ", ".join(f"{k} {x!r} vs {y!r}" for k, (x, y) in sorted(diff.items())))
        if len(out) >= limit:
            out.append("…")
            break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("strata")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--fast", action="store_true", help="the cases marked fast only")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    args = ap.parse_args()
    args.strata = os.path.abspath(args.strata)
    scratch = tempfile.mkdtemp(prefix="strata-conformance-")
    registry, addr = start_registry(scratch)
    # Files for ADD of a URL, served on 127.0.0.1.
    served = os.path.join(scratch, "http")
    os.makedirs(served)
    with open(os.path.join(served, "remote.txt"), "w") as f:
        f.write("fetched over http\n")
    http_port = free_port()
    http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", served,
                             str(http_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    # An SSH agent with one key, for the cases that mount it.
    args.agent = os.path.join(scratch, "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", args.agent], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(args.agent):
            break
        time.sleep(0.05)
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(scratch, "key")])
    subprocess.run(["ssh-add", "-q", os.path.join(scratch, "key")], env=dict(ENV, SSH_AUTH_SOCK=args.agent),
                   check=True, capture_output=True)
    args.token = os.path.join(scratch, "token")
    with open(args.token, "w") as f:
        f.write("s3cr3t\n")
    results = []
    mirror = None
    try:
        selected = [c for c in CASES.CASES
                    if (not args.only or c["name"] in args.only) and (not args.fast or c.get("fast"))]
        busybox = os.path.join(scratch, "busybox.tar")
        must(["bash", os.path.join(REPO, "scripts", "make-busybox-rootfs.sh"), busybox])
        base = f"{addr}/conformance/busybox:latest"
        must([DOCKER, "import", "-c", 'CMD ["/bin/sh"]', "-c",
              "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", busybox, base])
        must([DOCKER, "push", base])
        # A base with ONBUILD triggers, built by BuildKit: both tools run them.
        onbuild = f"{addr}/conformance/onbuild:latest"
        onbuild_ctx = os.path.join(scratch, "onbuild-base")
        os.makedirs(onbuild_ctx)
        with open(os.path.join(onbuild_ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {base}\nONBUILD RUN echo from-base > /onbuild.txt\nONBUILD COPY a.txt /onbuild/\n"
                    "ONBUILD ENV TRIGGERED=yes\n")
        must([DOCKER, "build", "--network", "host", "-q", "-t", onbuild, onbuild_ctx])
        must([DOCKER, "push", onbuild])
        run([DOCKER, "rmi", base, onbuild])
        placeholders = {"{BASE}": base, "{ONBUILD}": onbuild}
        # Prometheus' busybox: the same, with a `nobody` group.
        prom = f"{addr}/conformance/prometheus-busybox:latest"
        prom_tar = os.path.join(scratch, "prometheus-busybox.tar")
        with_group(busybox, prom_tar, "root:x:0:\nnobody:x:65534:\n")
        must([DOCKER, "import", "-c", 'CMD ["/bin/sh"]', "-c",
              "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", prom_tar, prom])
        must([DOCKER, "push", prom])
        run([DOCKER, "rmi", prom])
        placeholders["{PROMBASE}"] = prom
        if any(c.get("real") for c in selected):
            debian_refs, mirror = make_debian_bases(args, scratch, addr)
            placeholders.update(debian_refs)
        for case in selected:
            work = os.path.join(scratch, case["name"])
            ctx = os.path.join(work, "ctx")
            os.makedirs(ctx)
            files = dict(case.get("files", {}))
            dockerfile = case["dockerfile"].replace("{HTTP}", f"http://127.0.0.1:{http_port}")
            for placeholder, ref in placeholders.items():
                dockerfile = dockerfile.replace(placeholder, ref)
            files["Dockerfile"] = dockerfile
            write_context(ctx, files)
            convert = [args.strata, "--store", os.path.join(work, "strata-store"), "convert", "Dockerfile"] + (["--target", case["target"]] if case.get("target") else [])
            converted = run(convert, cwd=ctx)
            with open(os.path.join(ctx, "converted.rhai"), "w") as f:
                f.write(converted.stdout)
            d_tree, d_conf, d_err = build_docker(case, ctx, work, args)
            s_tree, s_conf, s_err = build_strata(case, ctx, work, args)
            if d_err and s_err:
                status, notes = "both fail", [f"BuildKit: {d_err}", f"strata: {s_err}"]
            elif d_err:
                status, notes = "BuildKit fails", [d_err]
            elif s_err:
                status, notes = "strata fails", [s_err]
            else:
                # Files that carry the time they were written (apt's and
                # dpkg's logs): the documented allow-list, per case.
                for tree in (d_tree, s_tree):
                    for path in [p for p in tree if any(fnmatch.fnmatch("/" + p, g) for g in case.get("ignore", []))]:
                        del tree[path]
                notes = differences(d_tree, s_tree)
                for k in CONFIG_KEYS:
                    if d_conf[k] != s_conf[k]:
                        notes.append(f"config {k}: {d_conf[k]!r} vs {s_conf[k]!r}")
                status = "same" if not notes else "differs"
            if status != "same" and case["name"] in ALLOWED:
                status += " (allowed)"
            results.append((case["name"], status, notes))
            print(f"{case['name']:<40} {status}", flush=True)
            for n in notes:
                print(f"    {n}", flush=True)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        if not args.only or ATTESTED in args.only:
            results.append(attested_pull(args, scratch, busybox, addr))
        if not args.only or HELLO in args.only:
            results.append(hello_in_docker(args, scratch, busybox))
    finally:
        registry.kill()
        registry.wait()
        http.kill()
        http.wait()
        agent.kill()
        agent.wait()
        if mirror:
            mirror.kill()
            mirror.wait()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    same = sum(1 for _, s, _ in results if s == "same")
    print(f"\n{same} of {len(results)} cases give the same image")
    bad = [n for n, s, _ in results if s in ("differs", "strata fails")]
    if bad:
        print("not conforming: " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
