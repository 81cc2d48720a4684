"""The conformance cases: a Dockerfile ({BASE} is the busybox base,
{ONBUILD} that base with ONBUILD triggers, see run.py) and its
context. A context entry is a string (a 0644 file) or a dict: {content,
mode}, {symlink}, {dir, mode}, {hardlink}. `fast` marks the subset CI runs.

The docker daemon here (20.10) has BuildKit's dockerfile frontend 1.2: no
heredocs, COPY --link/--parents/--exclude, ADD --checksum; strata's tests
cover those on their own."""

TREE = {
    "a.txt": "a\n",
    "b.txt": "b\n",
    "dir/one.txt": "one\n",
    "dir/sub/two.txt": "two\n",
    "dir/exec.sh": {"content": "#!/bin/sh\necho hi\n", "mode": 0o755},
    "data/x.log": "log\n",
    "data/y.txt": "y\n",
}

ARCHIVE = {
    "pkg/": {"type": "dir", "mode": 0o750, "uid": 1000, "gid": 1000},
    "pkg/bin/tool": {"content": "#!/bin/sh\necho tool\n", "mode": 0o755},
    "pkg/bin/tool2": {"type": "link", "target": "pkg/bin/tool"},
    "pkg/latest": {"type": "symlink", "target": "bin/tool"},
    "pkg/data/www.txt": {"content": "www\n", "uid": 33, "gid": 33, "mode": 0o640},
    "./top.txt": {"content": "top\n", "mode": 0o4755},
}

CASES = [
    # COPY: files, directories, destinations
    {"name": "copy-file", "fast": True, "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.txt /a.txt\n"},
    {"name": "copy-file-into-dir", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.txt /new/\n"},
    {"name": "copy-file-into-existing-dir", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.txt /etc\n"},
    {"name": "copy-file-renamed-deep", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.txt /x/y/z.txt\n"},
    {"name": "copy-dir-contents", "fast": True, "files": TREE, "dockerfile": "FROM {BASE}\nCOPY dir /dst\n"},
    {"name": "copy-dir-trailing-slashes", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY dir/ /dst/\n"},
    {"name": "copy-dir-to-root", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY dir /\n"},
    {"name": "copy-dot", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY . /ctx/\n"},
    {"name": "copy-several-sources", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.txt b.txt dir /multi/\n"},
    {"name": "copy-wildcard-files", "fast": True, "files": TREE, "dockerfile": "FROM {BASE}\nCOPY *.txt /w/\n"},
    {"name": "copy-wildcard-dirs", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY d* /wd/\n"},
    {"name": "copy-wildcard-one-file", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY a.t?t /single\n"},
    {"name": "copy-wildcard-class", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY [ab].txt /cls/\n"},
    {"name": "copy-relative-dest-workdir", "files": TREE, "dockerfile": "FROM {BASE}\nWORKDIR /app\nCOPY a.txt .\nCOPY dir ./d\n"},
    {"name": "copy-workdir-created", "files": TREE, "dockerfile": "FROM {BASE}\nWORKDIR /srv/app\nCOPY a.txt rel/\n"},
    # ownership and modes
    {"name": "copy-chown-ids", "fast": True, "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chown=1000:1001 dir /owned\n"},
    {"name": "copy-chown-uid-only", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chown=1234 a.txt /u.txt\n"},
    {"name": "copy-chown-names", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chown=nobody:nogroup dir /owned\n"},
    {"name": "copy-chown-new-parents", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chown=7:7 a.txt /p/q/a.txt\n"},
    {"name": "copy-chmod-file", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chmod=0600 a.txt /\n"},
    {"name": "copy-chmod-dir", "files": TREE, "dockerfile": "FROM {BASE}\nCOPY --chmod=0750 dir /cm\n"},
    {"name": "copy-context-modes", "files": {
        "m/suid": {"content": "s\n", "mode": 0o4755},
        "m/sgid": {"content": "g\n", "mode": 0o2755},
        "m/private": {"content": "p\n", "mode": 0o600},
        "m/sticky": {"dir": True, "mode": 0o1777},
        "m/ro": {"dir": True, "mode": 0o555},
    }, "dockerfile": "FROM {BASE}\nCOPY m /m\n"},
    # symlinks
    {"name": "copy-top-level-symlink", "files": {**TREE, "link.txt": {"symlink": "a.txt"}},
     "dockerfile": "FROM {BASE}\nCOPY link.txt /l.txt\n"},
    {"name": "copy-symlinks-inside-dir", "fast": True, "files": {
        "wl/file": "f\n", "wl/rel": {"symlink": "file"}, "wl/abs": {"symlink": "/etc/passwd"},
        "wl/dangling": {"symlink": "nowhere"}, "wl/up": {"symlink": "../x"},
    }, "dockerfile": "FROM {BASE}\nCOPY wl /wl\n"},
    {"name": "copy-dest-through-image-symlink", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN mkdir -p /real && ln -s /real /lnk\nCOPY a.txt /lnk/a.txt\nCOPY dir /lnk/d\n"},
    {"name": "copy-dest-is-symlink-to-dir", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN mkdir -p /opt/real && ln -s real /opt/cur\nCOPY a.txt /opt/cur/\n"},
    # directories and files replacing each other
    {"name": "copy-file-over-dir-content", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN mkdir -p /t && echo old > /t/one.txt\nCOPY dir /t\n"},
    {"name": "copy-empty-dir", "files": {**TREE, "empty": {"dir": True, "mode": 0o700}},
     "dockerfile": "FROM {BASE}\nCOPY empty /e\nCOPY empty /e2/\n"},
    {"name": "copy-hard-links", "files": {"h/a": "same\n", "h/b": {"hardlink": "h/a"}, "h/c": "other\n"},
     "dockerfile": "FROM {BASE}\nCOPY h /h\n"},
    # .dockerignore
    {"name": "dockerignore-exceptions", "fast": True, "files": {**TREE, ".dockerignore": "*.txt\n!b.txt\ndata/*.log\n"},
     "dockerfile": "FROM {BASE}\nCOPY . /ctx/\n"},
    # A recipe reads the context's .strataignore or .dockerignore: `strata
    # convert` warns that Dockerfile.dockerignore would need to become one.
    {"name": "dockerignore-of-the-dockerfile", "convert_differs": True, "files": {**TREE, ".dockerignore": "a.txt\n",
                                                     "Dockerfile.dockerignore": "b.txt\ndata\n"},
     "dockerfile": "FROM {BASE}\nCOPY . /ctx/\n"},
    {"name": "dockerignore-directory", "files": {**TREE, ".dockerignore": "dir/sub\n"},
     "dockerfile": "FROM {BASE}\nCOPY dir /d\n"},
    # ADD of local files and archives
    {"name": "add-archives", "fast": True, "files": {
        "pkg.tar.gz": {"tar": ARCHIVE, "compress": "gz"},
        "plain.tar": {"tar": ARCHIVE},
        "fake.tar": "not an archive\n",
        "a.txt": "a\n",
    }, "dockerfile": "FROM {BASE}\nADD pkg.tar.gz /opt/\nADD plain.tar /plain\nADD fake.tar a.txt /files/\n"},
    {"name": "add-archive-chown", "files": {"pkg.tar.xz": {"tar": ARCHIVE, "compress": "xz"}},
     "dockerfile": "FROM {BASE}\nADD --chown=7:8 pkg.tar.xz /x\n"},
    {"name": "add-url", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nADD {HTTP}/remote.txt /remote/\nADD {HTTP}/remote.txt /renamed.txt\n"},
    # multi-stage
    {"name": "from-stage-file", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE} AS build\nRUN mkdir /out && echo built > /out/app\nFROM {BASE}\nCOPY --from=build /out/app /usr/local/bin/app\n"},
    {"name": "from-stage-setuid", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE} AS build\nRUN echo x > /s && chmod 4755 /s && echo y > /g && chmod 2711 /g\nFROM {BASE}\nCOPY --from=build /s /g /bin/\n"},
    {"name": "from-stage-dir-owners", "files": TREE,
     "dockerfile": "FROM {BASE} AS build\nRUN mkdir -p /o/sub && touch /o/sub/f && chown -R 33:44 /o && chmod 700 /o/sub\nFROM {BASE}\nCOPY --from=build /o /copied\n"},
    {"name": "from-stage-by-index", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN echo zero > /z\nFROM {BASE}\nCOPY --from=0 /z /z\n"},
    {"name": "from-stage-chown", "files": TREE,
     "dockerfile": "FROM {BASE} AS build\nRUN mkdir /o && echo a > /o/a\nFROM {BASE}\nCOPY --from=build --chown=5:6 /o /o\n"},
    {"name": "from-stage-symlink", "files": TREE,
     "dockerfile": "FROM {BASE} AS build\nRUN mkdir /o && echo a > /o/a && ln -s a /o/l\nFROM {BASE}\nCOPY --from=build /o/l /top-link\nCOPY --from=build /o /o\n"},
    {"name": "from-stage-chain", "files": TREE,
     "dockerfile": "FROM {BASE} AS a\nRUN echo a > /a\nFROM a AS b\nRUN echo b > /b\nFROM b\nRUN cat /a /b > /ab\n"},
    {"name": "target-stage", "files": TREE, "target": "mid",
     "dockerfile": "FROM {BASE} AS mid\nRUN echo mid > /m\nFROM mid\nRUN echo last > /l\n"},
    # RUN
    {"name": "run-delete-base-files", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN rm -rf /etc/group /usr/share 2>/dev/null; rm -f /bin/vi\n"},
    {"name": "run-opaque-dir", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN mkdir -p /o && touch /o/a /o/b\nRUN rm -rf /o && mkdir /o && touch /o/c\n"},
    {"name": "run-dir-replaced-by-file", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN mkdir -p /x/y && touch /x/y/z\nRUN rm -rf /x && echo file > /x\n"},
    {"name": "run-file-replaced-by-dir", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN echo file > /x\nRUN rm /x && mkdir -p /x/y\n"},
    {"name": "run-metadata-only", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN echo f > /f && mkdir /d\nRUN chmod 600 /f && chown 9:9 /d && chmod 1777 /d\n"},
    {"name": "run-hard-links-across-layers", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN echo data > /h1\nRUN ln /h1 /h2 && ln /h1 /h3\n"},
    {"name": "run-fifo", "files": TREE, "dockerfile": "FROM {BASE}\nRUN mkfifo /pipe && chmod 640 /pipe\n"},
    {"name": "run-symlink-changes", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN ln -s /etc /e && ln -s missing /m\nRUN rm /e && ln -s /tmp /e\n"},
    {"name": "run-exec-form", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\n"},
    {"name": "run-cache-mount", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=cache,target=/cache echo kept > /cache/f && cp /cache/f /out\n"},
    {"name": "run-bind-from-stage", "files": TREE,
     "dockerfile": "FROM {BASE} AS tools\nRUN mkdir /t && echo tool > /t/x\nFROM {BASE}\nRUN --mount=type=bind,from=tools,source=/t,target=/mnt/t cp /mnt/t/x /x\n"},
    {"name": "run-tmpfs-mount", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=tmpfs,target=/scratch echo gone > /scratch/f && ls /scratch > /listed\n"},
    {"name": "run-bind-context", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nWORKDIR /src\nRUN --mount=type=bind,source=dir,target=/ctx-dir --mount=type=bind,source=a.txt,target=a.txt cat /ctx-dir/one.txt a.txt > /seen\n"},
    {"name": "run-secret-mount-absent", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=secret,id=nope if [ -e /run/secrets/nope ]; then echo yes; else echo no; fi > /secret-seen\n"},
    {"name": "run-workdir-user", "files": TREE,
     "dockerfile": "FROM {BASE}\nWORKDIR /home/app\nRUN chown 65534 . && touch made-by-root\nUSER nobody\nRUN id -u > /tmp/uid && touch /home/app/by-nobody\n"},
    # ARG, ENV and substitution
    {"name": "arg-default-and-override", "fast": True, "files": TREE, "args": {"GIVEN": "from-cli"},
     "dockerfile": "FROM {BASE}\nARG GIVEN=default\nARG DEFAULTED=dflt\nRUN echo $GIVEN $DEFAULTED > /args\n"},
    {"name": "arg-global-scope", "files": TREE,
     "dockerfile": "ARG V=1.2\nARG P=/opt\nFROM {BASE}\nARG V\nRUN echo v=$V p=$P > /scope\n"},
    {"name": "arg-in-from", "files": TREE, "args": {"STAGE": "second"},
     "dockerfile": "ARG STAGE=first\nFROM {BASE} AS first\nRUN echo 1 > /which\nFROM {BASE} AS second\nRUN echo 2 > /which\nFROM ${STAGE}\nRUN cat /which > /chosen\n"},
    {"name": "env-substitution", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nENV APP=/srv/app NAME=svc\nENV FULL=$APP/$NAME LOG=${APP}/log\nWORKDIR $FULL\nCOPY a.txt ${LOG}/\nRUN echo $FULL > /full\n"},
    {"name": "env-modifiers", "files": TREE,
     "dockerfile": "FROM {BASE}\nARG SET=yes\nARG EMPTY=\nENV A=${SET:-no} B=${EMPTY:-fallback} C=${SET:+on} D=${EMPTY:+on}\n"},
    {"name": "env-base-path", "files": TREE,
     "dockerfile": "FROM {BASE}\nENV PATH=/opt/bin:$PATH\nRUN echo $PATH > /path\n"},
    {"name": "env-old-form-and-quotes", "files": TREE,
     "dockerfile": "FROM {BASE}\nENV GREETING hello world\nENV Q=\"a b\" S='c $d' E=e\\ f\n"},
    {"name": "arg-env-precedence", "files": TREE, "args": {"X": "arg"},
     "dockerfile": "FROM {BASE}\nARG X\nENV X=env\nRUN echo $X > /x\n"},
    # configuration
    {"name": "config-everything", "fast": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nLABEL a=1 b=\"two words\"\nEXPOSE 80 53/udp 8080/tcp\nVOLUME /data\nVOLUME [\"/logs\"]\nSTOPSIGNAL SIGINT\nUSER 1000:1000\nWORKDIR /w\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo hi\"]\n"},
    {"name": "config-shell-forms", "files": TREE,
     "dockerfile": "FROM {BASE}\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo shell > /s\nENTRYPOINT exec /bin/sh\nCMD echo hi\n"},
    {"name": "config-healthcheck", "files": TREE,
     "dockerfile": "FROM {BASE}\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=4 CMD wget -q localhost || exit 1\n"},
    {"name": "config-healthcheck-exec-none", "files": TREE,
     "dockerfile": "FROM {BASE} AS a\nHEALTHCHECK CMD [\"/bin/true\"]\nFROM a\nHEALTHCHECK NONE\n"},
    {"name": "config-onbuild", "files": TREE,
     "dockerfile": "FROM {BASE}\nONBUILD RUN echo triggered > /t\nONBUILD COPY . /app\n"},
    {"name": "onbuild-parent-stage", "files": TREE,
     "dockerfile": "FROM {BASE} AS parent\nONBUILD RUN echo triggered > /t\nONBUILD COPY a.txt /app/\nRUN echo parent > /p\n"
                   "FROM parent\nRUN cat /t /app/a.txt > /seen\n"},
    {"name": "onbuild-base-image", "fast": True, "files": TREE,
     "dockerfile": "FROM {ONBUILD}\nRUN cat /onbuild.txt /onbuild/a.txt > /seen && echo $TRIGGERED >> /seen\n"},
    {"name": "onbuild-not-inherited", "files": TREE,
     "dockerfile": "FROM {ONBUILD} AS child\nRUN echo child > /c\nFROM child\nRUN echo grandchild > /g\n"},
    {"name": "run-ssh-mount", "ssh": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=ssh test -S $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK > /sock\n"
                   "RUN --mount=type=ssh,target=/root/agent.sock,mode=0644,uid=7 stat -c '%a %u' /root/agent.sock > /st\n"},
    {"name": "run-bind-file-new-parents", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=bind,source=a.txt,target=/new/dir/a.txt cat /new/dir/a.txt > /copy\n"},
    {"name": "run-secret-mount-given", "secret": True, "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n"
                   "RUN --mount=type=secret,id=tok,target=/etc/app/token,mode=0440,uid=5 stat -c '%a %u' /etc/app/token > /st\n"},
    {"name": "config-entrypoint-resets-cmd", "files": TREE,
     "dockerfile": "FROM {BASE}\nCMD [\"base-cmd\"]\nENTRYPOINT [\"/bin/echo\"]\n"},
    {"name": "config-maintainer", "files": TREE,
     "dockerfile": "FROM {BASE}\nMAINTAINER someone@example.org\n"},
    # syntax
    {"name": "syntax-continuations-comments", "files": TREE,
     "dockerfile": "FROM {BASE}\nRUN echo one \\\n# a comment\n    && echo two \\\n    > /joined\n"},
    {"name": "syntax-escape-directive", "files": TREE,
     "dockerfile": "# escape=`\nFROM {BASE}\nRUN echo one `\n    > /bt\n"},
    {"name": "syntax-lowercase-instructions", "files": TREE,
     "dockerfile": "from {BASE}\ncopy a.txt /lower\nrun echo ok > /ok\n"},
]

# Real-world Dockerfiles from well-known projects, as their repositories
# have them (`real` names the file and commit), adapted only where the
# suite must stay offline: FROM names a base available here ({BASE} is
# busybox, {PROMBASE} busybox with a `nobody` group as Prometheus' base has
# it; {DEBIAN}, {PYTHON} and {NGINX} are Debian bookworm bases strata
# builds from the loopback mirror, with apt reading the same mirror), the
# binaries they copy are stand-ins, and `adapted` says what else changed.
# `ignore` lists the files that carry the time they were written.

def stub(name):
    return {"content": f"#!/bin/sh\necho {name} \"$@\"\n", "mode": 0o755}


APT_LOGS = ["/var/log/*", "/var/log/apt/*", "/var/cache/ldconfig/aux-cache", "/var/cache/debconf/*-old",
            "/var/lib/dpkg/*-old", "/var/cache/apt/*.bin"]

REAL = [
    {"name": "real-prometheus", "real": "prometheus/prometheus Dockerfile (v3, main)",
     "files": {".build/linux-amd64/prometheus": stub("prometheus"), ".build/linux-amd64/promtool": stub("promtool"),
               "documentation/examples/prometheus.yml": "global:\n  scrape_interval: 15s\n",
               "LICENSE": "Apache License 2.0\n", "NOTICE": "The Prometheus systems and service monitoring server\n",
               "npm_licenses.tar.bz2": {"tar": {"LICENSE": {"content": "MIT\n"}}, "compress": "bz2"}},
     "dockerfile": """ARG ARCH="amd64"
ARG OS="linux"
FROM {PROMBASE}
LABEL maintainer="The Prometheus Authors <prometheus-developers@googlegroups.com>"
LABEL org.opencontainers.image.authors="The Prometheus Authors" \\
      org.opencontainers.image.vendor="Prometheus" \\
      org.opencontainers.image.title="Prometheus" \\
      org.opencontainers.image.description="The Prometheus monitoring system and time series database" \\
      org.opencontainers.image.source="https://github.com/prometheus/prometheus" \\
      org.opencontainers.image.url="https://github.com/prometheus/prometheus" \\
      org.opencontainers.image.documentation="https://prometheus.io/docs" \\
      org.opencontainers.image.licenses="Apache License 2.0"

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/prometheus        /bin/prometheus
COPY .build/${OS}-${ARCH}/promtool          /bin/promtool
COPY documentation/examples/prometheus.yml  /etc/prometheus/prometheus.yml
COPY LICENSE                                /LICENSE
COPY NOTICE                                 /NOTICE
COPY npm_licenses.tar.bz2                   /npm_licenses.tar.bz2

WORKDIR /prometheus
RUN chown -R nobody:nobody /etc/prometheus /prometheus && chmod g+w /prometheus

USER       nobody
EXPOSE     9090
VOLUME     [ "/prometheus" ]
ENTRYPOINT [ "/bin/prometheus" ]
CMD        [ "--config.file=/etc/prometheus/prometheus.yml", \\
             "--storage.tsdb.path=/prometheus" ]
"""},
    {"name": "real-node-exporter", "real": "prometheus/node_exporter Dockerfile @0c561fa1",
     "files": {".build/linux-amd64/node_exporter": stub("node_exporter"), "LICENSE": "Apache License 2.0\n",
               "README.md": "# Node exporter\n"},
     "dockerfile": """ARG ARCH="amd64"
ARG OS="linux"
FROM {BASE}
LABEL maintainer="The Prometheus Authors <prometheus-developers@googlegroups.com>"

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/node_exporter /bin/node_exporter

# Add license files to the image
COPY LICENSE README.md /license/

EXPOSE      9100
USER        nobody
ENTRYPOINT  [ "/bin/node_exporter" ]
"""},
    {"name": "real-mysqld-exporter", "real": "prometheus/mysqld_exporter Dockerfile @205b0def",
     "files": {".build/linux-amd64/mysqld_exporter": stub("mysqld_exporter")},
     "dockerfile": """ARG ARCH="amd64"
ARG OS="linux"
FROM        {BASE}
MAINTAINER  The Prometheus Authors <prometheus-developers@googlegroups.com>

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/mysqld_exporter /bin/mysqld_exporter

USER        nobody
EXPOSE      9104
ENTRYPOINT  [ "/bin/mysqld_exporter" ]
"""},
    {"name": "real-thanos", "real": "thanos-io/thanos Dockerfile @001465ca",
     "files": {"thanos_tmp_for_docker": stub("thanos")},
     "dockerfile": """# By default we pin to amd64 sha. Use make docker to automatically adjust for arm64 versions.
ARG SHA="fca3819d670cdaee0d785499fda202ea01c0640ca0803d26ae6dbf2a1c8c041c"
FROM {BASE}
LABEL maintainer="The Thanos Authors"

COPY /thanos_tmp_for_docker /bin/thanos

ENTRYPOINT [ "/bin/thanos" ]
"""},
    {"name": "real-coredns", "real": "coredns/coredns Dockerfile @0ee1feea",
     "files": {"coredns": stub("coredns")},
     "dockerfile": """FROM {DEBIAN}

RUN apt-get update && apt-get -uy upgrade
RUN apt-get -y install ca-certificates && update-ca-certificates

FROM scratch
# Allow Glog to log to disk
COPY --from=0 /tmp /tmp
COPY --from=0 /etc/ssl/certs /etc/ssl/certs

ADD coredns /coredns

EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
"""},
    {"name": "real-etcd", "real": "etcd-io/etcd Dockerfile-release.amd64 @1293f5d4",
     "files": {"etcd": stub("etcd"), "etcdctl": stub("etcdctl"), "etcdutl": stub("etcdutl"),
               "nsswitch.conf": "hosts: files dns\n"},
     "dockerfile": """FROM --platform=linux/amd64 {BASE}

ADD etcd /usr/local/bin/
ADD etcdctl /usr/local/bin/
ADD etcdutl /usr/local/bin/

WORKDIR /var/etcd/
WORKDIR /var/lib/etcd/

# Alpine Linux doesn't use pam, which means that there is no /etc/nsswitch.conf,
# but Golang relies on /etc/nsswitch.conf to check the order of DNS resolving
# (see https://github.com/golang/go/commit/9dee7771f561cf6aee081c0af6658cc81fac3918)
ADD nsswitch.conf /etc/nsswitch.conf

EXPOSE 2379 2380

# Define default command.
CMD ["/usr/local/bin/etcd"]
"""},
    {"name": "real-jaeger-all-in-one", "real": "jaegertracing/jaeger cmd/all-in-one/Dockerfile @08dd3b17",
     "files": {"all-in-one-linux": stub("all-in-one"),
               "sampling_strategies.json": "{\"default_strategy\": {\"type\": \"probabilistic\", \"param\": 1}}\n"},
     "dockerfile": """FROM {BASE}

# Agent zipkin.thrift compact
EXPOSE 5775/udp

# Agent jaeger.thrift compact
EXPOSE 6831/udp

# Agent jaeger.thrift binary
EXPOSE 6832/udp

# Agent config HTTP
EXPOSE 5778

# Collector HTTP
EXPOSE 14268

# Collector gRPC
EXPOSE 14250

# Web HTTP
EXPOSE 16686

COPY all-in-one-linux /go/bin/
COPY sampling_strategies.json /etc/jaeger/

VOLUME ["/tmp"]
ENTRYPOINT ["/go/bin/all-in-one-linux"]
CMD ["--sampling.strategies-file=/etc/jaeger/sampling_strategies.json"]
"""},
    {"name": "real-distroless-python3", "real": "GoogleContainerTools/distroless examples/python3/Dockerfile @16e75585",
     "adapted": "gcr.io/distroless/python3 is the same Python base",
     "files": {"hello.py": "import os\nimport sys\nprint(os.listdir(sys.argv[1]))\n"},
     "dockerfile": """FROM {PYTHON} AS build-env
ADD . /app
WORKDIR /app

FROM {PYTHON}
COPY --from=build-env /app /app
WORKDIR /app
CMD ["hello.py", "/etc"]
"""},
    {"name": "real-docker-init-python", "real": "the Python Dockerfile of `docker init` (docs.docker.com, Python guide)",
     "adapted": "no `# syntax=docker/dockerfile:1` line (docker would fetch that frontend image from a registry)",
     "ignore": ["/etc/*-"],
     "files": {"requirements.txt": "# the app needs nothing beyond the standard library\n",
               "app.py": "print('hello from the app')\n"},
     "dockerfile": """# Comments are provided throughout this file to help you get started.
# If you need more help, visit the Dockerfile reference guide at
# https://docs.docker.com/go/dockerfile-reference/

ARG PYTHON_VERSION=3.11.2
FROM {PYTHON} as base

# Prevents Python from writing pyc files.
ENV PYTHONDONTWRITEBYTECODE=1

# Keeps Python from buffering stdout and stderr to avoid situations where
# the application crashes without emitting any logs due to buffering.
ENV PYTHONUNBUFFERED=1

WORKDIR /app

# Create a non-privileged user that the app will run under.
# See https://docs.docker.com/go/dockerfile-user-best-practices/
ARG UID=10001
RUN adduser \\
    --disabled-password \\
    --gecos "" \\
    --home "/nonexistent" \\
    --shell "/sbin/nologin" \\
    --no-create-home \\
    --uid "${UID}" \\
    appuser

# Download dependencies as a separate step to take advantage of Docker's caching.
# Leverage a cache mount to /root/.cache/pip to speed up subsequent builds.
# Leverage a bind mount to requirements.txt to avoid having to copy them into
# into this layer.
RUN --mount=type=cache,target=/root/.cache/pip \\
    --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    python -m pip install -r requirements.txt

# Switch to the non-privileged user to run the application.
USER appuser

# Copy the source code into the container.
COPY . .

# Expose the port that the application listens on.
EXPOSE 8000

# Run the application.
CMD python3 -m uvicorn app:app --host=0.0.0.0 --port=8000
"""},
    {"name": "real-swagger-ui", "real": "swagger-api/swagger-ui Dockerfile @01e380e3",
     "adapted": "`apk add nodejs …` became `apt-get install nodejs` (a Debian nginx base, not Alpine's)",
     "ignore": APT_LOGS,
     "files": {"docker/default.conf.template": "server { listen $PORT; }\n", "docker/cors.conf": "# cors\n",
               "docker/embedding.conf": "# embedding\n", "dist/index.html": "<html>swagger</html>\n",
               "dist/swagger-ui.js": "// ui\n", "dist/swagger-ui.css": "/* css */\n",
               "docker/docker-entrypoint.d/40-swagger-ui.sh": stub("entrypoint"),
               "docker/configurator/index.js": "module.exports = {}\n"},
     "dockerfile": """# Looking for information on environment variables?
# We don't declare them here — take a look at our docs.
# https://github.com/swagger-api/swagger-ui/blob/master/docs/usage/configuration.md

FROM {NGINX}

LABEL maintainer="vladimir.gorej@gmail.com" \\
      org.opencontainers.image.authors="vladimir.gorej@gmail.com" \\
      org.opencontainers.image.url="docker.swagger.io/swaggerapi/swagger-ui" \\
      org.opencontainers.image.source="https://github.com/swagger-api/swagger-ui" \\
      org.opencontainers.image.description="SwaggerUI Docker image" \\
      org.opencontainers.image.licenses="Apache-2.0"

RUN apt-get update && apt-get install -y nodejs

LABEL maintainer="char0n"

ENV API_KEY="**None**" \\
    SWAGGER_JSON="/app/swagger.json" \\
    PORT="8080" \\
    PORT_IPV6="" \\
    BASE_URL="/" \\
    SWAGGER_JSON_URL="" \\
    CORS="true" \\
    EMBEDDING="false"

COPY --chown=nginx:nginx --chmod=0666 ./docker/default.conf.template ./docker/cors.conf ./docker/embedding.conf /etc/nginx/templates/

COPY --chmod=0666 ./dist/* /usr/share/nginx/html/
COPY --chmod=0555 ./docker/docker-entrypoint.d/ /docker-entrypoint.d/
COPY --chmod=0666 ./docker/configurator /usr/share/nginx/configurator

# Simulates running NGINX as a non root; in future we want to use nginxinc/nginx-unprivileged.
# In future we will have separate unpriviledged images tagged as v5.1.2-unprivileged.
RUN chmod 777 /usr/share/nginx/html/ /etc/nginx/conf.d/ /etc/nginx/conf.d/default.conf /var/cache/nginx/ /var/run/

EXPOSE 8080
"""},
]

CASES += REAL
