#!/usr/bin/env python3
"""Two strata binaries side by side, interleaved (old new old new ...), on
the per-step workload (W2: 30 RUN steps, cold and cached) and the monorepo
example (6 services x 1,500 files: empty store, no-op, one file changed),
each binary with a store of its own, on the filesystem TMPDIR is on.
Prints medians with min-max and the new/old ratio: the check that a change
kept per-step overhead and the monorepo where they were.

Usage: bench/compare.py OLD_STRATA NEW_STRATA [--runs N]"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')[-3000:]}")
    return elapsed


def interleave(runs, pairs):
    out = {label: [] for label, _ in pairs}
    for _ in range(runs):
        for label, fn in pairs:
            out[label].append(fn())
    return out


def show(name, samples):
    old, new = samples["old"], samples["new"]
    mo, mn = statistics.median(old), statistics.median(new)
    fmt = lambda s: f"{statistics.median(s) * 1000:.0f} ms ({min(s) * 1000:.0f}-{max(s) * 1000:.0f})"
    print(f"| {name} | {fmt(old)} | {fmt(new)} | {mn / mo:.2f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    bins = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}
    scratch = tempfile.mkdtemp(prefix="strata-compare-")
    try:
        busybox = os.path.join(scratch, "busybox.tar")
        subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs.sh"), busybox], check=True, stdout=subprocess.DEVNULL)
        stores = {k: os.path.join(scratch, f"store-{k}") for k in bins}
        w2 = os.path.join(scratch, "w2")
        shutil.copytree(os.path.join(REPO, "bench", "workloads", "w2-many-steps"), w2)
        shutil.copy(busybox, os.path.join(w2, "busybox.tar"))
        build = lambda k, cwd, *extra: timed([bins[k], "--store", stores[k], "build", *extra], cwd)
        df = subprocess.run(["df", "-T", scratch], capture_output=True, text=True).stdout.splitlines()[-1].split()
        print(f"filesystem of {scratch}: {df[1]} ({df[0]}); {args_line(a)}")
        print("| workload | old | new | new/old |\n|---|---|---|---|")
        for k in bins:
            build(k, w2)
        show("W2 cold (30 RUN steps, --no-cache)", interleave(a.runs, [(k, lambda k=k: build(k, w2, "--no-cache")) for k in bins]))
        show("W2 cached", interleave(a.runs, [(k, lambda k=k: build(k, w2)) for k in bins]))
        mono = os.path.join(scratch, "monorepo")
        subprocess.run([sys.executable, os.path.join(REPO, "examples", "monorepo", "generate.py"), mono, "--services", "6"], check=True, stdout=subprocess.DEVNULL)
        shutil.copy(busybox, os.path.join(mono, "busybox.tar"))
        mbuild = lambda k, *extra: build(k, mono, "all", "--arg", "services=6", *extra)

        def empty(k):
            shutil.rmtree(stores[k], ignore_errors=True)
            return mbuild(k)

        show("monorepo 6x1,500 empty store", interleave(a.runs, [(k, lambda k=k: empty(k)) for k in bins]))
        show("monorepo no-op", interleave(a.runs, [(k, lambda k=k: mbuild(k)) for k in bins]))
        target = os.path.join(mono, "services", "svc0", "pkg00", "f00000.txt")
        counter = [0]

        def one(k):
            counter[0] += 1
            with open(target, "a") as f:
                f.write(f"{counter[0]}\n")
            return mbuild(k)

        show("monorepo one file changed", interleave(a.runs, [(k, lambda k=k: one(k)) for k in bins]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def args_line(a):
    return f"{a.runs} runs each, interleaved; {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
