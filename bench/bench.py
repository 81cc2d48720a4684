#!/usr/bin/env python3
"""strata against BuildKit, side by side, interleaved (A B A B ...), on the
workloads in bench/workloads/ and the monorepo example. Reports medians with
min-max, the strata/BuildKit ratio and strata's peak RSS, checks that both
tools built the same final file list, and writes BENCHMARKS.md and
bench/results/<date>-<commit>.json. Run through bench/run.sh."""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATA = os.path.join(REPO, "target", "release", "strata")
DOCKER = "/usr/bin/docker"  # Debian's client: classic builder API with DOCKER_BUILDKIT=1
CACHE = os.path.join(REPO, "bench", ".cache")
ENV = dict(os.environ, DOCKER_BUILDKIT="1")
IGNORED = {"dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv", "etc/mtab"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, env=ENV, **kw)


def timed(cmd, cwd):
    """Runs cmd; returns (seconds, peak RSS in KiB of the process tree's largest member)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    return elapsed, usage.ru_maxrss


class Tool:
    def __init__(self, name):
        self.name = name


def strata_build(workdir, store, target, extra=()):
    return [STRATA, "--store", store, "build", target, "--progress", "plain", *extra]


def docker_build(workdir, tag, extra=()):
    return [DOCKER, "build", "-q", "--network", "host", "-t", tag, *extra, "."]


def summary(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def file_list_docker(tag):
    cid = subprocess.run([DOCKER, "create", tag, "/bin/true"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "fs.tar")
            sh([DOCKER, "export", "-o", out, cid])
            with tarfile.open(out) as t:
                return normalize(m.name for m in t.getmembers())
    finally:
        subprocess.run([DOCKER, "rm", cid], capture_output=True)


def file_list_strata(store, tag):
    with tempfile.TemporaryDirectory() as d:
        sh(["umoci", "unpack", "--image", f"{store}:{tag}", os.path.join(d, "b")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = os.path.join(d, "b", "rootfs")
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                names.append(os.path.relpath(os.path.join(dirpath, n), root))
        return normalize(names)


def normalize(names):
    out = set()
    for n in names:
        while n.startswith("./"):
            n = n[2:]
        n = n.strip("/")
        if not n or n in IGNORED or n.split("/")[0] in {"dev", "proc", "sys"}:
            continue
        out.add(n)
    # `docker create` makes /etc for its name files even in a scratch
    # image: an /etc with nothing else left is that mount point's parent.
    if "etc" in out and not any(n.startswith("etc/") for n in out):
        out.discard("etc")
    return out


def ensure_bases(quick, need_debian):
    os.makedirs(CACHE, exist_ok=True)
    busybox = os.path.join(CACHE, "busybox.tar")
    if not os.path.exists(busybox):
        sh(["bash", os.path.join(REPO, "scripts", "make-busybox-rootfs.sh"), busybox])
    sh([DOCKER, "import", "-c", 'CMD ["/bin/sh"]', busybox, "busybox:latest"], stdout=subprocess.DEVNULL)
    debian = os.path.join(CACHE, "debian.tar")
    if need_debian:
        if not os.path.exists(debian):
            print("making the Debian minbase root filesystem with mmdebstrap (once)...", flush=True)
            sh(["mmdebstrap", "--variant=minbase", "--format=tar", "--quiet", "bookworm", debian + ".tmp"])
            os.rename(debian + ".tmp", debian)
        sh([DOCKER, "import", debian, "debian:bookworm"], stdout=subprocess.DEVNULL)
    return busybox, debian


def prepare_workload(name, busybox, debian, scratch):
    src = os.path.join(REPO, "bench", "workloads", name)
    dst = os.path.join(scratch, name)
    shutil.copytree(src, dst)
    shutil.copy(busybox, os.path.join(dst, "busybox.tar"))
    if name.startswith("w1"):
        os.link(debian, os.path.join(dst, "debian.tar")) if os.stat(debian).st_dev == os.stat(dst).st_dev else shutil.copy(debian, os.path.join(dst, "debian.tar"))
    with open(os.path.join(dst, ".dockerignore"), "w") as f:
        f.write("busybox.tar\ndebian.tar\nstrata.rhai\n")
    return dst


def interleave(n, runs):
    """runs: list of (label, fn) -> {label: [seconds]}; alternates A B A B."""
    out = {label: [] for label, _ in runs}
    rss = {label: 0 for label, _ in runs}
    for _ in range(n):
        for label, fn in runs:
            secs, peak = fn()
            out[label].append(secs)
            rss[label] = max(rss[label], peak)
    return out, rss


def bench_workload(name, tag, workdir, store, cold_n, cached_n, check=True, platform=None):
    print(f"== {name}", flush=True)
    target = tag.split("/")[-1].split(":")[0]
    plat = ["--platform", platform] if platform else []
    # First builds (warm bases, caches), not measured.
    timed(strata_build(workdir, store, target, plat), workdir)
    timed(docker_build(workdir, tag, plat), workdir)
    cold, rss_cold = interleave(cold_n, [
        ("strata", lambda: timed(strata_build(workdir, store, target, ["--no-cache", *plat]), workdir)),
        ("buildkit", lambda: timed(docker_build(workdir, tag, ["--no-cache", *plat]), workdir)),
    ])
    cached, rss_cached = interleave(cached_n, [
        ("strata", lambda: timed(strata_build(workdir, store, target, plat), workdir)),
        ("buildkit", lambda: timed(docker_build(workdir, tag, plat), workdir)),
    ])
    row = {
        "workload": name,
        "cold": {k: summary(v) for k, v in cold.items()},
        "cached": {k: summary(v) for k, v in cached.items()},
        "strata_peak_rss_kib": max(rss_cold["strata"], rss_cached["strata"]),
    }
    if check:
        a, b = file_list_strata(store, tag), file_list_docker(tag)
        row["same_files"] = a == b
        if a != b:
            row["only_strata"] = sorted(a - b)[:20]
            row["only_buildkit"] = sorted(b - a)[:20]
    print(json.dumps(row), flush=True)
    return row


def platform_bases(scratch):
    """For W6 and W7: QEMU's emulators registered, and two bases in a
    loopback registry both tools pull from: an arm64 busybox (Debian's
    busybox-static for arm64) and a Debian toolchain with gcc and the
    aarch64 cross gcc (both made by strata from the host's apt sources)."""
    arm64 = os.path.join(CACHE, "busybox-arm64.tar")
    sh(["bash", os.path.join(REPO, "scripts", "foreign-busybox.sh"), arm64, "arm64"])
    sh([STRATA, "binfmt", "--install"], stdout=subprocess.DEVNULL)
    addr, registry = start_registry(os.path.join(scratch, "platform-registry"))
    work = os.path.join(scratch, "platform-bases")
    os.makedirs(work)
    shutil.copy(arm64, os.path.join(work, "busybox-arm64.tar"))
    with open(os.path.join(work, "strata.rhai"), "w") as f:
        f.write('image("busybox-arm64", from("rootfs:busybox-arm64.tar", #{ platform: "linux/arm64" }));\n'
                'image("toolchain", debian("bookworm", ["gcc", "libc6-dev", "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"]));\n')
    print("building the arm64 busybox and the toolchain bases (once per run)...", flush=True)
    sh([STRATA, "--store", os.path.join(work, "store"), "build", "--push", f"busybox-arm64={addr}/bench/busybox-arm64:latest",
        "--push", f"toolchain={addr}/bench/toolchain:latest"], cwd=work, stdout=subprocess.DEVNULL)
    return addr, registry


def prepare_platform_workload(name, scratch, addr):
    src = os.path.join(REPO, "bench", "workloads", name)
    dst = os.path.join(scratch, name)
    shutil.copytree(src, dst)
    if name == "w7-cross":
        # The program of examples/multiarch.
        shutil.copy(os.path.join(REPO, "examples", "multiarch", "hello.c"), dst)
    for f in ("Dockerfile", "strata.rhai"):
        p = os.path.join(dst, f)
        with open(p) as fh:
            text = fh.read().replace("{REG}", addr)
        with open(p, "w") as fh:
            fh.write(text)
    with open(os.path.join(dst, ".dockerignore"), "w") as f:
        f.write("strata.rhai\n")
    return dst


def bench_two_platforms(workdir, store, runs):
    """strata alone (docker 20.10's BuildKit has no multi-platform output
    without buildx): W7 for linux/amd64 and linux/arm64 in one build."""
    both = ["--platform", "linux/amd64,linux/arm64"]
    timed(strata_build(workdir, store, "w7", both), workdir)
    cold, rss = interleave(runs, [("strata", lambda: timed(strata_build(workdir, store, "w7", ["--no-cache", *both]), workdir))])
    cached, _ = interleave(runs, [("strata", lambda: timed(strata_build(workdir, store, "w7", both), workdir))])
    row = {
        "workload": "w7-cross, linux/amd64 + linux/arm64 in one build (strata only)",
        "cold": {"strata": summary(cold["strata"]), "buildkit": None},
        "cached": {"strata": summary(cached["strata"]), "buildkit": None},
        "strata_peak_rss_kib": rss["strata"],
    }
    print(json.dumps(row), flush=True)
    return row


def touching(path):
    """Wraps a build so that each call first appends a line to `path`."""
    counter = [0]

    def wrap(fn):
        def go():
            counter[0] += 1
            with open(path, "a") as f:
                f.write(f"edit {counter[0]}\n")
            return fn()
        return go
    return wrap


def bench_monorepo(busybox, scratch, store, services, runs):
    print("== monorepo", flush=True)
    work = os.path.join(scratch, "monorepo")
    sh([sys.executable, os.path.join(REPO, "examples", "monorepo", "generate.py"), work, "--services", str(services)], stdout=subprocess.DEVNULL)
    shutil.copy(busybox, os.path.join(work, "busybox.tar"))
    sbuild = lambda extra=(): timed([STRATA, "--store", store, "build", "all", "--arg", f"services={services}", *extra], work)
    dbuild = lambda extra=(): timed([DOCKER, "build", "-q", "--network", "host", "-t", "monorepo:all", *extra, "."], work)
    sbuild()
    dbuild()
    cold, rss = interleave(runs, [("strata", lambda: sbuild(["--no-cache"])), ("buildkit", lambda: dbuild(["--no-cache"]))])
    noop, _ = interleave(runs, [("strata", sbuild), ("buildkit", dbuild)])
    touch_then = touching(os.path.join(work, "services", "svc0", "pkg00", "f00000.txt"))
    one, _ = interleave(runs, [("strata", touch_then(sbuild)), ("buildkit", touch_then(dbuild))])
    # Same files: strata's svc0 image against BuildKit's svc0 stage.
    timed([DOCKER, "build", "-q", "--network", "host", "--target", "svc0", "-t", "monorepo:svc0", "."], work)
    same = file_list_strata(store, "monorepo/svc0:latest") == file_list_docker("monorepo:svc0")
    row = {
        "workload": f"monorepo ({services} services x 1,500 files)",
        "same_files": same,
        "cold": {k: summary(v) for k, v in cold.items()},
        "no-op": {k: summary(v) for k, v in noop.items()},
        "one file changed": {k: summary(v) for k, v in one.items()},
        "strata_peak_rss_kib": rss["strata"],
    }
    print(json.dumps(row), flush=True)
    return row


# ext4 without a journal does not reuse an inode freed in the last 60 s (300 s
# while its inode table block is dirty, hence the sync), and scans past every
# such inode on each creation: a build right after wiping a store of 100k
# files pays for the wipe. Users' empty stores are not freshly wiped, so on
# such a filesystem both tools get this long after their cleanup. With
# `run.sh --journaled-fs` (a fresh ext4 with a journal, which reuses inodes
# at once) the wait is 0.
SETTLE_S = int(os.environ.get("BENCH_SETTLE_S", "65"))


def settle():
    sh(["sync"])
    time.sleep(SETTLE_S)


def phases_of(cmd, cwd):
    """Runs a strata build with --progress json; sums the `done` events'
    phases (ms) per node kind (copy, run)."""
    proc = subprocess.run(cmd + ["--progress", "json"], cwd=cwd, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    labels, totals = {}, {}
    for line in proc.stderr.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "started":
            labels[ev["node"]] = ev.get("description", "")
        if ev.get("event") == "done" and "phases_ms" in ev:
            label = labels.get(ev["node"], "")
            kind = "copy" if label.startswith("copy") else "run" if label.startswith("run") else "other"
            t = totals.setdefault(kind, {"nodes": 0})
            t["nodes"] += 1
            for k, v in ev["phases_ms"].items():
                t[k] = round(t.get(k, 0) + v, 1)
    return totals


def bench_monorepo_sizes(busybox, scratch, sizes, services, runs):
    """The monorepo shape at several sizes: cold builds on an empty store
    (strata's store removed, BuildKit after `docker builder prune -af`), then
    no-op and one-file-changed builds; plus strata's phase breakdown."""
    rows = []
    for files in sizes:
        print(f"== monorepo {services} x {files}", flush=True)
        work = os.path.join(scratch, f"monorepo-{files}")
        sh([sys.executable, os.path.join(REPO, "examples", "monorepo", "generate.py"), work, "--services", str(services),
            "--files", str(files)], stdout=subprocess.DEVNULL)
        shutil.copy(busybox, os.path.join(work, "busybox.tar"))
        store = os.path.join(scratch, f"store-{files}")
        sargs = ["build", "all", "--arg", f"services={services}"]
        sbuild = lambda extra=(): timed([STRATA, "--store", store, *sargs, *extra], work)
        dbuild = lambda extra=(): timed([DOCKER, "build", "-q", "--network", "host", "-t", "monorepo:all", *extra, "."], work)

        def strata_empty():
            shutil.rmtree(store, ignore_errors=True)
            settle()
            return sbuild()

        def buildkit_empty():
            sh([DOCKER, "builder", "prune", "-af"], stdout=subprocess.DEVNULL)
            settle()
            return dbuild()
        empty, rss = interleave(runs, [("strata", strata_empty), ("buildkit", buildkit_empty)])
        noop, _ = interleave(max(runs, 3), [("strata", sbuild), ("buildkit", dbuild)])
        touch_then = touching(os.path.join(work, "services", "svc0", "pkg00", "f00000.txt"))
        one, _ = interleave(max(runs, 3), [("strata", touch_then(sbuild)), ("buildkit", touch_then(dbuild))])
        shutil.rmtree(store, ignore_errors=True)
        settle()
        phases = phases_of([STRATA, "--store", store, *sargs], work)
        row = {
            "workload": f"monorepo, {services} services x {files:,} files",
            "cold, empty store": {k: summary(v) for k, v in empty.items()},
            "no-op": {k: summary(v) for k, v in noop.items()},
            "one file changed": {k: summary(v) for k, v in one.items()},
            "strata_peak_rss_kib": rss["strata"],
            "strata_phases_ms": phases,
        }
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_registry(scratch):
    """A docker-registry on a free loopback port; returns (address, process)."""
    import socket
    port = free_port()
    root = os.path.join(scratch, "registry")
    os.makedirs(root, exist_ok=True)
    config = os.path.join(root, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"127.0.0.1:{port}", proc


def blob_bytes(store):
    d = os.path.join(store, "blobs", "sha256")
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))


def bench_registry_cache(busybox, scratch, services, runs):
    """The monorepo's final image restored on an empty store from a registry
    cache: strata's --cache-from against BuildKit's inline cache."""
    print("== registry cache", flush=True)
    work = os.path.join(scratch, "monorepo-cache")
    sh([sys.executable, os.path.join(REPO, "examples", "monorepo", "generate.py"), work, "--services", str(services)], stdout=subprocess.DEVNULL)
    shutil.copy(busybox, os.path.join(work, "busybox.tar"))
    addr, registry = start_registry(scratch)
    try:
        cache, image = f"{addr}/strata/cache", f"{addr}/buildkit/monorepo:cache"
        seed = os.path.join(scratch, "cache-seed-store")
        args = ["build", "counts", "--arg", f"services={services}"]
        timed([STRATA, "--store", seed, *args, "--cache-to", cache], work)
        timed([DOCKER, "build", "-q", "--network", "host", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", image, "."], work)
        sh([DOCKER, "push", "-q", image], stdout=subprocess.DEVNULL)
        stores = []

        def strata_restore():
            store = os.path.join(scratch, f"cache-store-{len(stores)}")
            stores.append(store)
            return timed([STRATA, "--store", store, *args, "--cache-from", cache], work)

        def buildkit_restore():
            # An empty builder: no build cache, no local copy of the cache image.
            subprocess.run([DOCKER, "rmi", "-f", image, "monorepo:restored"], env=ENV, capture_output=True)
            sh([DOCKER, "builder", "prune", "-af"], stdout=subprocess.DEVNULL)
            return timed([DOCKER, "build", "-q", "--network", "host", "--cache-from", image, "-t", "monorepo:restored", "."], work)

        def buildkit_keep_context():
            # Only the layer cache pruned: BuildKit keeps the context it was sent.
            subprocess.run([DOCKER, "rmi", "-f", image, "monorepo:restored"], env=ENV, capture_output=True)
            sh([DOCKER, "builder", "prune", "-af", "--filter", "type=regular"], stdout=subprocess.DEVNULL)
            return timed([DOCKER, "build", "-q", "--network", "host", "--cache-from", image, "-t", "monorepo:restored", "."], work)

        def strata_usable():
            # Restored, then loaded into docker, where BuildKit's image already is.
            store = os.path.join(scratch, f"cache-store-{len(stores)}")
            stores.append(store)
            return timed([STRATA, "--store", store, *args, "--cache-from", cache, "--load"], work)

        restore, _ = interleave(runs, [("strata", strata_restore), ("buildkit", buildkit_restore)])
        downloaded = blob_bytes(stores[-1])
        kept, _ = interleave(runs, [("strata", strata_restore), ("buildkit", buildkit_keep_context)])
        usable, _ = interleave(runs, [("strata", strata_usable), ("buildkit", buildkit_restore)])
        same = file_list_strata(stores[-1], "monorepo/counts:latest") == file_list_docker("monorepo:restored")
        for store in stores:
            shutil.rmtree(store, ignore_errors=True)
    finally:
        registry.kill()
        registry.wait()
    row = {
        "workload": f"registry cache (monorepo final image, {services} services)",
        "same_files": same,
        "restore on an empty store": {k: summary(v) for k, v in restore.items()},
        "restore, BuildKit's context kept": {k: summary(v) for k, v in kept.items()},
        "restore until usable in docker (strata --load)": {k: summary(v) for k, v in usable.items()},
        "strata_peak_rss_kib": 0,
        "strata_bytes_downloaded": downloaded,
    }
    print(json.dumps(row), flush=True)
    return row


def fmt(s):
    if s is None:
        return "-"
    m = s["median"]
    unit = lambda x: f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"
    return f"{unit(m)} ({unit(s['min'])}–{unit(s['max'])})"


def ratio(a, b):
    if not a or not b or b["median"] == 0:
        return "-"
    return f"{a['median'] / b['median']:.3f}"


def write_report(rows, meta, quick, partial=False):
    """Writes the results JSON and BENCHMARKS.md: the whole file for a full
    run, a section appended to it for `--only` (the other rows stay)."""
    stamp = meta["date"].replace(":", "").replace("-", "")[:15]
    path = os.path.join(REPO, "bench", "results", f"{stamp}-{meta['commit'][:10]}{'-quick' if quick else ''}.json")
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    lines = [
        "# Benchmarks",
        "",
        "strata against BuildKit (docker 20.10's, `DOCKER_BUILDKIT=1`, `--network host`) in the same run,",
        "interleaved A B A B. Medians with min–max; ratio = strata / BuildKit (below 1 means strata is faster).",
        "Cold = `--no-cache` for both (strata also re-imports its base; BuildKit keeps its imported base).",
        "Produced by `bench/run.sh`" + (" --quick" if quick else "") + f"; raw numbers in `{os.path.relpath(path, REPO)}`.",
        "",
        f"Machine: {meta['machine']}. Date: {meta['date']}. Commit: {meta['commit']}.",
        f"Stores, contexts and dockerd's data root on {meta['filesystem']}; wait after each empty-store cleanup: {meta['settle_s']} s.",
        "",
        "| workload | scenario | strata | BuildKit | ratio | strata peak RSS | same files |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        scenarios = [k for k in r if isinstance(r[k], dict) and "strata" in r[k]]
        for i, sc in enumerate(scenarios):
            s, b = r[sc]["strata"], r[sc]["buildkit"]
            rss = f"{r['strata_peak_rss_kib'] / 1024:.0f} MiB" if i == 0 and r["strata_peak_rss_kib"] else ""
            if "strata_bytes_downloaded" in r and i == 0:
                sc = f"{sc} (strata downloaded {r['strata_bytes_downloaded'] / 1e6:.1f} MB)"
            same = ("yes" if r.get("same_files") else f"NO ({r.get('only_strata')} / {r.get('only_buildkit')})") if i == 0 and "same_files" in r else ""
            lines.append(f"| {r['workload'] if i == 0 else ''} | {sc} | {fmt(s)} | {fmt(b)} | {ratio(s, b)} | {rss} | {same} |")
    phased = [r for r in rows if r.get("strata_phases_ms")]
    if phased:
        lines += ["", "strata's phase breakdown (sum over nodes, ms, from `--progress json` `done` events, empty store):", "",
                  "| workload | nodes | hash | write | run | tar | compress | digest |", "|---|---|---|---|---|---|---|---|"]
        for r in phased:
            for kind, t in sorted(r["strata_phases_ms"].items()):
                cells = " | ".join(f"{t.get(k, 0):.0f}" for k in ["hash", "write", "run", "tar", "compress", "digest"])
                lines.append(f"| {r['workload']} | {t['nodes']} {kind} | {cells} |")
    lines.append("")
    target = os.path.join(REPO, "BENCHMARKS.md")
    if partial and os.path.exists(target):
        names = ", ".join(dict.fromkeys(r["workload"].split(" ")[0].rstrip(",") for r in rows))
        section = [f"## {meta['date'][:10]}: {names} (`bench/run.sh --only`)", ""] + lines[2:]
        with open(target, "a") as f:
            f.write("\n" + "\n".join(section))
    else:
        with open(target, "w") as f:
            f.write("\n".join(lines))
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one cold and three cached runs, small monorepo, no W1")
    ap.add_argument("--only", nargs="*", help="workload names to run (w1 w1n w2 w4 w5 monorepo sizes cache w6 w7)")
    a = ap.parse_args()
    cold_n, cached_n = (1, 3) if a.quick else (3, 5)
    wanted = set(a.only or ["w1", "w1n", "w2", "w4", "w5", "monorepo", "sizes", "cache", "w6", "w7"])
    if a.quick and not a.only:
        wanted -= {"w1", "w1n"}
    busybox, debian = ensure_bases(a.quick, bool(wanted & {"w1", "w1n"}))
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB, kernel {platform.release()}",
        "quick": a.quick,
        "filesystem": os.environ.get("BENCH_FILESYSTEM", "the root filesystem"),
        "settle_s": SETTLE_S,
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as scratch:
        store = os.path.join(scratch, "store")
        for name, tag in [("w1-seed-nginx", "bench/w1:latest"), ("w1n-native-nginx", "bench/w1n:latest"),
                          ("w2-many-steps", "bench/w2:latest"),
                          ("w4-parallel-stages", "bench/w4:latest"), ("w5-big-layer", "bench/w5:latest")]:
            if name.split("-")[0] in wanted:
                work = prepare_workload(name, busybox, debian, scratch)
                # W1 native holds a different package set than apt-get's (no apt lists, no recommends).
                rows.append(bench_workload(name, tag, work, store, cold_n, cached_n, check=not name.startswith("w1n")))
        if "monorepo" in wanted:
            rows.append(bench_monorepo(busybox, scratch, store, 4 if a.quick else 8, 1 if a.quick else 3))
        if "sizes" in wanted:
            rows += bench_monorepo_sizes(busybox, scratch, [1500, 6000] if a.quick else [1500, 6000, 24000], 6, 1 if a.quick else 3)
        if "cache" in wanted:
            rows.append(bench_registry_cache(busybox, scratch, 4 if a.quick else 8, 1 if a.quick else 5))
        if wanted & {"w6", "w7"}:
            addr, registry = platform_bases(scratch)
            try:
                if "w6" in wanted:
                    work = prepare_platform_workload("w6-emulated", scratch, addr)
                    rows.append(bench_workload("w6-emulated (linux/arm64 under QEMU)", "bench/w6:latest", work, store,
                                               cold_n, cached_n, platform="linux/arm64"))
                if "w7" in wanted:
                    work = prepare_platform_workload("w7-cross", scratch, addr)
                    rows.append(bench_workload("w7-cross (linux/arm64, compiled natively)", "bench/w7:latest", work,
                                               store, cold_n, cached_n, platform="linux/arm64"))
                    rows.append(bench_two_platforms(work, store, cold_n))
            finally:
                registry.kill()
                registry.wait()
    write_report(rows, meta, a.quick, bool(a.only))


if __name__ == "__main__":
    main()
