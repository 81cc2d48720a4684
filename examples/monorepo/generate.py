#!/usr/bin/env python3
"""Generates a monorepo for examples/monorepo/strata.rhai: N services of
~1,500 files of 4 KiB each and a shared lib/, deterministic content.

Usage: generate.py OUT_DIR [--services N] [--files N] [--lib-files N]
Also writes OUT_DIR/Dockerfile, the same build for BuildKit (one stage per
service and a final stage that depends on all of them, so one invocation
builds every service)."""
import argparse
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def write_tree(root, count, seed):
    for i in range(count):
        sub = os.path.join(root, f"pkg{i // 100:02d}")
        os.makedirs(sub, exist_ok=True)
        line = f"{seed} file {i} " + "x" * 40 + "\n"
        body = (line * (4096 // len(line) + 1))[:4096]
        with open(os.path.join(sub, f"f{i:05d}.txt"), "w") as f:
            f.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--services", type=int, default=8)
    ap.add_argument("--files", type=int, default=1500)
    ap.add_argument("--lib-files", type=int, default=300)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    write_tree(os.path.join(a.out, "lib"), a.lib_files, "lib")
    for s in range(a.services):
        write_tree(os.path.join(a.out, "services", f"svc{s}"), a.files, f"svc{s}")
    for recipe in ("strata.rhai", "service.rhai"):
        shutil.copy(os.path.join(HERE, recipe), os.path.join(a.out, recipe))
    stages = []
    for s in range(a.services):
        stages.append(
            f"FROM busybox AS svc{s}\n"
            f"COPY lib /lib/shared\n"
            f"COPY services/svc{s} /app\n"
            f"RUN find /app /lib/shared -type f | wc -l > /tmp/count && mv /tmp/count /app/.count\n"
        )
    final = "FROM busybox\n" + "".join(f"COPY --from=svc{s} /app/.count /counts/svc{s}\n" for s in range(a.services))
    with open(os.path.join(a.out, "Dockerfile"), "w") as f:
        f.write("\n".join(stages) + "\n" + final)
    with open(os.path.join(a.out, ".dockerignore"), "w") as f:
        f.write("busybox.tar\nDockerfile\nstrata.rhai\nservice.rhai\n")
    print(f"{a.services} services x {a.files} files + {a.lib_files} lib files in {a.out}")


if __name__ == "__main__":
    main()
