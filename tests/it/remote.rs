//! Remote execution: RUN steps as actions of a real BuildGrid service,
//! executed by `strata worker` processes serving it.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A private PostgreSQL cluster on 127.0.0.1, the database BuildGrid's
/// scheduler needs (it refuses SQLite). It runs as the `postgres` user,
/// which refuses root.
struct Postgres {
    child: Child,
    url: String,
}

impl Postgres {
    fn start(dir: &std::path::Path) -> Postgres {
        use std::os::unix::process::CommandExt;
        let bin =
            PathBuf::from(std::env::var("STRATA_TEST_PG_BIN").expect(
                "STRATA_TEST_PG_BIN is unset: run the tests through scripts/test.sh, which installs PostgreSQL",
            ));
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("the postgres user exists");
        std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw())).unwrap();
        let data = dir.join("pg");
        let log = dir.join("postgres.log");
        let status = Command::new(bin.join("initdb"))
            .args(["-A", "trust", "-U", "bgd", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "initdb: {}", fs::read_to_string(&log).unwrap());
        let port = free_port();
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let pg = Postgres {
            child,
            url: format!("postgresql+psycopg2://bgd@127.0.0.1:{port}/postgres"),
        };
        wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(60), || {
            format!(
                "PostgreSQL did not start:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        });
        pg
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: an immediate shutdown that takes the backends with it.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}

/// A certificate authority of the test's own, a certificate it signed for
/// the service (for 127.0.0.1) and one for its clients, made by openssl.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"set -e
            ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=strata-test-ca
            for who in server client; do
              openssl req $ec -keyout $who.key -out $who.csr -subj /CN=strata-test-$who
            done
            echo subjectAltName=IP:127.0.0.1 > server.ext
            echo extendedKeyUsage=clientAuth > client.ext
            for who in server client; do
              openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 2 -extfile $who.ext -out $who.pem
            done"#;
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir.path())
            .output()
            .expect("openssl runs (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A BuildGrid server on 127.0.0.1 (scripts/test.sh installs it and sets
/// STRATA_TEST_BGD): a disk CAS, an ActionCache, an SQL scheduler on a
/// private PostgreSQL.
struct BuildGrid {
    child: Child,
    _postgres: Postgres,
    dir: tempfile::TempDir,
    addr: String,
    /// Served over TLS (`grpcs://`).
    tls: bool,
}

impl BuildGrid {
    fn start() -> BuildGrid {
        BuildGrid::start_with(None, &[])
    }

    /// With `pki`, the service speaks TLS with its server certificate and
    /// wants a client certificate from the same authority; `instances`
    /// are served besides the unnamed one, as it is (the same ACL).
    fn start_with(pki: Option<&Pki>, instances: &[&str]) -> BuildGrid {
        let bgd = std::env::var("STRATA_TEST_BGD")
            .expect("STRATA_TEST_BGD is unset: run the tests through scripts/test.sh, which installs BuildGrid");
        let dir = tempfile::tempdir().unwrap();
        let postgres = Postgres::start(dir.path());
        let migrate = Command::new(&bgd)
            .args(["migrate", "apply", &postgres.url])
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "bgd migrate: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("bgd.yml");
        let mut template = fs::read_to_string(repo().join("scripts/buildgrid.yml")).unwrap();
        if let Some(pki) = pki {
            let insecure = "    insecure-mode: true\n";
            assert!(template.contains(insecure), "{template}");
            template = template.replace(
                insecure,
                &format!(
                    "    insecure-mode: false\n    credentials:\n      tls-server-key: {}\n      \
                     tls-server-cert: {}\n      tls-client-certs: {}\n",
                    pki.file("server.key"),
                    pki.file("server.pem"),
                    pki.file("ca.pem")
                ),
            );
        }
        let mut acl = repo().join("scripts/buildgrid-acl.yml");
        if !instances.is_empty() {
            let (head, unnamed) = template.split_at(template.find("  - name: ''\n").expect("the unnamed instance"));
            let mut more = unnamed.to_string();
            let shipped = fs::read_to_string(&acl).unwrap();
            let mut acls = shipped.clone();
            for name in instances {
                more.push_str(&unnamed.replace("  - name: ''", &format!("  - name: '{name}'")));
                acls.push_str(&shipped.replace("\n\"\":", &format!("\n\"{name}\":")));
            }
            template = format!("{head}{more}");
            acl = dir.path().join("acl.yml");
            fs::write(&acl, acls).unwrap();
        }
        fs::write(
            &config,
            template
                .replace("@ADDRESS@", &addr)
                .replace("@DATABASE@", &postgres.url)
                .replace("@DIR@", &dir.path().display().to_string())
                .replace("@ACL@", &acl.display().to_string()),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("bgd.log")).unwrap();
        let child = Command::new(bgd)
            .args(["server", "start"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bgd starts");
        let grid = BuildGrid {
            child,
            _postgres: postgres,
            dir,
            addr,
            tls: pki.is_some(),
        };
        let log = grid.dir.path().join("bgd.log");
        wait_for_port(&grid.addr, Duration::from_secs(60), || {
            format!(
                "BuildGrid did not start:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        });
        grid
    }

    /// A client's UpdateActionResult (the call strata never makes), made
    /// with BuildGrid's own gRPC stubs: the status it ends with.
    fn client_writes_an_action_result(&self) -> String {
        let bgd = std::env::var("STRATA_TEST_BGD").unwrap();
        let python = std::path::Path::new(&bgd).with_file_name("python3");
        let script = r#"
import sys, grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re, remote_execution_pb2_grpc as rpc
stub = rpc.ActionCacheStub(grpc.insecure_channel(sys.argv[1]))
digest = re.Digest(hash="ab" * 32, size_bytes=1)
try:
    stub.UpdateActionResult(re.UpdateActionResultRequest(action_digest=digest, action_result=re.ActionResult(exit_code=0)))
    print("written")
except grpc.RpcError as e:
    print(f"{e.code().name}: {e.details()}")
"#;
        let out = Command::new(python)
            .args(["-c", script, &self.addr])
            .output()
            .expect("BuildGrid's python runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "grpcs" } else { "grpc" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `strata worker` with a store of its own, its log in a file.
struct Worker {
    child: Child,
    _store: tempfile::TempDir,
    /// A rootless worker's project: its user's store and strata.
    _rootless: Option<Project>,
    log: PathBuf,
}

impl Worker {
    fn start(grid: &BuildGrid, name: &str) -> Worker {
        Worker::start_with(grid, name, &[])
    }

    /// With `extra` arguments (the TLS options).
    fn start_with(grid: &BuildGrid, name: &str, extra: &[&str]) -> Worker {
        let store = tempfile::tempdir().unwrap();
        let path = store.path().join("store");
        Worker::start_on(grid, name, &path, extra, store)
    }

    /// On the store at `path` (which several workers may share), its log in `dir`.
    fn start_on(
        grid: &BuildGrid,
        name: &str,
        path: &std::path::Path,
        extra: &[&str],
        dir: tempfile::TempDir,
    ) -> Worker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.args(["--store"]).arg(path);
        Worker::spawn(grid, name, extra, cmd, dir, None)
    }

    /// Run by the tests' ordinary user: rootless, as that user's builds are.
    fn start_rootless(grid: &BuildGrid, name: &str) -> Worker {
        let home = Project::new().rootless(&rootless_user());
        let cmd = home.cmd(&[]);
        Worker::spawn(grid, name, &[], cmd, tempfile::tempdir().unwrap(), Some(home))
    }

    fn spawn(
        grid: &BuildGrid,
        name: &str,
        extra: &[&str],
        mut cmd: Command,
        store: tempfile::TempDir,
        rootless: Option<Project>,
    ) -> Worker {
        let log = store.path().join("worker.log");
        let out = fs::File::create(&log).unwrap();
        let child = cmd
            .args(["worker", "--remote", &grid.url(), "--bot-id", name, "--jobs", "2"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        let worker = Worker {
            child,
            _store: store,
            _rootless: rootless,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !worker.log().contains("serving") {
            assert!(
                Instant::now() < deadline,
                "worker {name} did not start:\n{}",
                worker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        worker
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn executed(&self) -> usize {
        self.log().matches("executing action").count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The monorepo example's three services: one RUN each, on two copies.
const SERVICES: [&str; 3] = ["svc0", "svc1", "svc2"];

fn monorepo() -> Project {
    monorepo_project(SERVICES.len(), 20, 5)
}

fn build_all(p: &Project, extra: &[&str]) -> Run {
    let mut args = vec!["build", "all", "--arg", "services=3"];
    args.extend_from_slice(extra);
    p.ok(&args)
}

#[test]
fn the_monorepo_builds_on_workers_and_comes_back_from_the_action_cache() {
    let grid = BuildGrid::start();
    let workers = [Worker::start(&grid, "w1"), Worker::start(&grid, "w2")];
    let executed = || workers.iter().map(Worker::executed).sum::<usize>();
    let logs = || format!("{}\n{}", workers[0].log(), workers[1].log());

    let local = build_all(&monorepo(), &[]);

    let p = monorepo();
    let remote = build_all(&p, &["--remote-executor", &grid.url(), "--progress", "plain"]);
    for name in SERVICES {
        assert_eq!(
            digest_of(&remote.stdout, name),
            digest_of(&local.stdout, name),
            "{name}: {}",
            remote.stderr
        );
    }
    // Every RUN went to a worker (their logs say so), and its output came back.
    assert_eq!(executed(), SERVICES.len(), "{}", logs());
    assert!(
        remote.stderr.contains("3 steps executed, 0 from the ActionCache"),
        "{}",
        remote.stderr
    );
    let bundle = umoci_unpack(p.store_root().as_path(), "monorepo/svc1:latest");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/app/.count")).unwrap(),
        "25\n"
    );

    // Another machine, an empty store: every RUN comes from the service's
    // ActionCache, none executes.
    let again = build_all(&monorepo(), &["--remote-executor", &grid.url()]);
    for name in SERVICES {
        assert_eq!(digest_of(&again.stdout, name), digest_of(&local.stdout, name));
    }
    assert_eq!(executed(), SERVICES.len(), "{}", logs());
    // Looked up before anything is uploaded: a hit sends nothing.
    assert!(
        again
            .stderr
            .contains("0 steps executed, 3 from the ActionCache; 0 bytes sent to the CAS"),
        "{}",
        again.stderr
    );

    // Those hits were written by the scheduler, from what the workers
    // reported; a client may not write one (it could answer any action
    // with its own layer): the shipped configuration refuses it.
    assert_eq!(
        grid.client_writes_an_action_result(),
        "UNAUTHENTICATED: No valid authorization or authentication provided"
    );
}

/// `debian()` bases: both dpkg installs (the base set, then nginx on it) and
/// the RUN on top go to the workers, the .debs through the CAS.
#[test]
fn a_debian_base_is_installed_by_the_workers() {
    let mirror = DebianMirror::start();
    let arg = mirror_arg(&mirror);
    let grid = BuildGrid::start();
    let workers = [Worker::start(&grid, "w1"), Worker::start(&grid, "w2")];
    let executed = || workers.iter().map(Worker::executed).sum::<usize>();
    let logs = || format!("{}\n{}", workers[0].log(), workers[1].log());
    let build = |p: &Project, extra: &[&str]| {
        let mut args = vec!["build", "nginx", "nginx-check", "--arg", &arg];
        args.extend_from_slice(extra);
        p.ok(&args)
    };

    let local = build(&Project::example("nginx"), &[]);
    let p = Project::example("nginx");
    let remote = build(&p, &["--remote-executor", &grid.url()]);
    for image in ["nginx", "nginx-check"] {
        assert_eq!(
            digest_of(&remote.stdout, image),
            digest_of(&local.stdout, image),
            "{image}: {}",
            remote.stderr
        );
    }
    assert_eq!(executed(), 3, "{}", logs());
    assert!(
        remote.stderr.contains("3 steps executed, 0 from the ActionCache"),
        "{}",
        remote.stderr
    );
    assert!(
        logs().contains("fetching") && logs().contains(" packages"),
        "{}",
        logs()
    );
    // The check ran on a worker, on the layers the workers made.
    let served = p.ok(&["run", "example/nginx:latest", "--", "nginx", "-v"]);
    assert!(served.stderr.contains("nginx version: nginx/1."), "{}", served.stderr);

    // Another machine: everything from the ActionCache, no package sent.
    let again = build(&Project::example("nginx"), &["--remote-executor", &grid.url()]);
    assert_eq!(digest_of(&again.stdout, "nginx"), digest_of(&local.stdout, "nginx"));
    assert_eq!(executed(), 3, "{}", logs());
    assert!(
        again
            .stderr
            .contains("0 steps executed, 3 from the ActionCache; 0 bytes sent to the CAS"),
        "{}",
        again.stderr
    );
}

/// A worker started by an ordinary user runs steps in a user namespace,
/// as that user's own builds do, and makes the same layers.
#[test]
fn a_rootless_worker_makes_the_layers_a_root_build_makes() {
    let grid = BuildGrid::start();
    let worker = Worker::start_rootless(&grid, "rootless");
    let recipe = r#"image("who", from("rootfs:busybox.tar").run("id -u > /uid; echo rootless > /out"), #{ tags: ["remote/who:1"] });"#;
    let local = busybox_project(recipe).ok(&["build"]);
    let p = busybox_project(recipe);
    let remote = p.run(&["build", "--remote-executor", &grid.url()]);
    assert_eq!(remote.code, 0, "{}\n{}", remote.stderr, worker.log());
    assert_eq!(worker.executed(), 1, "{}", worker.log());
    assert_eq!(digest_of(&remote.stdout, "who"), digest_of(&local.stdout, "who"));
    let bundle = umoci_unpack(p.store_root().as_path(), "remote/who:1");
    assert_eq!(fs::read_to_string(bundle.path().join("b/rootfs/uid")).unwrap(), "0\n");
}

#[test]
fn a_worker_killed_during_an_action_is_replaced_and_the_build_succeeds() {
    let grid = BuildGrid::start();
    let mut workers = [Worker::start(&grid, "w1"), Worker::start(&grid, "w2")];
    let p = busybox_project(
        r#"image("slow", from("rootfs:busybox.tar").run("sleep 3; echo survived > /out"), #{ tags: ["remote/slow:1"] });"#,
    );
    let build = p
        .cmd(&["build", "--remote-executor", &grid.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(i) = workers.iter().position(|w| w.executed() > 0) {
            break i;
        }
        assert!(Instant::now() < deadline, "no worker took the action");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = workers[first].child.kill();
    let _ = workers[first].child.wait();
    let r = Run::from(build.wait_with_output().unwrap());
    let other = &workers[1 - first];
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, other.log());
    // The service gave the lease of the dead bot to the other one.
    assert_eq!(other.executed(), 1, "{}", other.log());
    assert!(other.log().contains(": done, exit code 0"), "{}", other.log());
    let bundle = umoci_unpack(p.store_root().as_path(), "remote/slow:1");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/out")).unwrap(),
        "survived\n"
    );
}

#[test]
fn a_failing_remote_step_fails_the_build_as_a_local_one_does() {
    let grid = BuildGrid::start();
    let _worker = Worker::start(&grid, "w1");
    let recipe = r#"image("bad", from("rootfs:busybox.tar").run("echo about to fail; exit 3"));"#;
    let local = busybox_project(recipe).run(&["build"]);
    let remote = busybox_project(recipe).run(&["build", "--remote-executor", &grid.url()]);
    assert_eq!(remote.code, 1, "{}", remote.stderr);
    let message = "`run` failed with exit code 3: echo about to fail; exit 3";
    assert!(local.stderr.contains(message), "{}", local.stderr);
    assert!(remote.stderr.contains(message), "{}", remote.stderr);
    assert!(remote.stderr.contains("about to fail"), "{}", remote.stderr);
}

#[test]
fn a_service_that_cannot_be_reached_is_a_clear_error_before_anything_is_built() {
    let p = monorepo();
    let r = p.run(&["build", "all", "--remote-executor", "grpc://127.0.0.1:1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("remote executor grpc://127.0.0.1:1: cannot connect"),
        "{}",
        r.stderr
    );
    assert!(
        !p.store_root().join("layers").exists() || layer_count(&p) == 0,
        "{}",
        r.stderr
    );

    // With --remote-fallback the build goes on here, and says so.
    let local = build_all(&monorepo(), &[]);
    let r = build_all(&p, &["--remote-executor", "grpc://127.0.0.1:1", "--remote-fallback"]);
    assert!(
        r.stderr
            .contains("warning: remote executor grpc://127.0.0.1:1: cannot connect")
            && r.stderr.contains("building locally (--remote-fallback)"),
        "{}",
        r.stderr
    );
    assert_eq!(digest_of(&r.stdout, "svc0"), digest_of(&local.stdout, "svc0"));
}

#[test]
fn a_tls_service_is_reached_with_its_authority_a_client_certificate_and_headers() {
    let pki = Pki::new();
    let grid = BuildGrid::start_with(Some(&pki), &[]);
    let url = grid.url();
    let (ca, cert, key) = (pki.file("ca.pem"), pki.file("client.pem"), pki.file("client.key"));
    let tls = [
        "--remote-tls-certificate",
        ca.as_str(),
        "--remote-tls-client-certificate",
        cert.as_str(),
        "--remote-tls-client-key",
        key.as_str(),
    ];
    let worker = Worker::start_with(&grid, "w1", &tls);
    let p = busybox_project(
        r#"image("tls", from("rootfs:busybox.tar").run("echo over tls > /out"), #{ tags: ["remote/tls:1"] });"#,
    );
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--remote-executor", url.as_str()];
        args.extend_from_slice(extra);
        p.run(&args)
    };

    // The system's authorities do not vouch for the test's own.
    let r = build(&[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("remote executor {url}: cannot connect")) && r.stderr.contains("UnknownIssuer"),
        "{}",
        r.stderr
    );
    assert_eq!(layer_count(&p), 0, "nothing is built before the service answers");
    // Trusted, but without a client certificate the service hangs up.
    let r = build(&tls[..2]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("remote executor {url}:")), "{}", r.stderr);
    // Certificates for a plaintext endpoint are a mistake, not ignored.
    let plain = url.replacen("grpcs://", "grpc://", 1);
    let r = p.run(&["build", "--remote-executor", &plain, "--remote-tls-certificate", &ca]);
    assert!(
        r.stderr
            .contains("TLS certificates are given but the endpoint is not grpcs://"),
        "{}",
        r.stderr
    );
    // A client certificate needs its key.
    let r = build(&tls[2..4]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--remote-tls-client-key"), "{}", r.stderr);
    // A header that gRPC cannot carry is named.
    let mut bad = tls.to_vec();
    bad.extend(["--remote-header", "x api key=1"]);
    let r = build(&bad);
    assert!(
        r.stderr.contains("`x api key` is not a valid header name"),
        "{}",
        r.stderr
    );

    let mut all = tls.to_vec();
    all.extend(["--remote-header", "x-api-key=secret"]);
    let r = build(&all);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, worker.log());
    assert!(r.stderr.contains("1 steps executed"), "{}", r.stderr);
    assert_eq!(worker.executed(), 1, "{}", worker.log());
    let bundle = umoci_unpack(p.store_root().as_path(), "remote/tls:1");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/out")).unwrap(),
        "over tls\n"
    );
}

fn layer_count(p: &Project) -> usize {
    fs::read_dir(p.store_root().join("layers"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The attack of issue #34: an action made by hand, whose `step.json`
/// names the parent layer (which the worker holds from an earlier build)
/// but whose input root does not carry it. The worker refuses it, and says
/// which layer.
#[test]
fn a_hand_made_action_naming_a_layer_its_input_root_lacks_is_refused() {
    let grid = BuildGrid::start();
    let worker = Worker::start(&grid, "w1");
    let p = busybox_project(r#"image("probe", from("rootfs:busybox.tar").run("echo hi > /x"));"#);
    p.ok(&["build", "--remote-executor", &grid.url()]);
    assert_eq!(worker.executed(), 1, "{}", worker.log());

    // The build's action, found in the service's CAS, sent again with its
    // input root stripped of `layers/`.
    let script = r#"
import hashlib, os, sys, grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re, remote_execution_pb2_grpc as rpc
objects, address = sys.argv[1], sys.argv[2]
blobs = {}
for sub in os.listdir(objects):
    for name in os.listdir(os.path.join(objects, sub)):
        path = os.path.join(objects, sub, name)
        if os.path.getsize(path) < 65536:
            blobs[sub + name] = open(path, "rb").read()
def parse(kind, data):
    try:
        message = kind()
        message.ParseFromString(data)
        return message
    except Exception:
        return None
roots = {h: d for h, d in ((h, parse(re.Directory, b)) for h, b in blobs.items())
         if d is not None and any(f.name == "step.json" for f in d.files) and any(s.name == "layers" for s in d.directories)}
actions = [a for a in (parse(re.Action, b) for b in blobs.values()) if a is not None and a.input_root_digest.hash in roots]
assert len(actions) == 1, f"{len(actions)} actions, {len(roots)} roots"
action = actions[0]
root = roots[action.input_root_digest.hash]
kept = [s for s in root.directories if s.name != "layers"]
del root.directories[:]
root.directories.extend(kept)
def digest(data):
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
root_bytes = root.SerializeToString()
action.input_root_digest.CopyFrom(digest(root_bytes))
action_bytes = action.SerializeToString()
channel = grpc.insecure_channel(address)
cas = rpc.ContentAddressableStorageStub(channel)
cas.BatchUpdateBlobs(re.BatchUpdateBlobsRequest(requests=[
    re.BatchUpdateBlobsRequest.Request(digest=digest(root_bytes), data=root_bytes),
    re.BatchUpdateBlobsRequest.Request(digest=digest(action_bytes), data=action_bytes)]))
for operation in rpc.ExecutionStub(channel).Execute(re.ExecuteRequest(action_digest=digest(action_bytes), skip_cache_lookup=True)):
    if operation.done:
        response = re.ExecuteResponse()
        operation.response.Unpack(response)
        print(f"{response.status.code}: {response.status.message}")
"#;
    let bgd = std::env::var("STRATA_TEST_BGD").unwrap();
    let out = Command::new(std::path::Path::new(&bgd).with_file_name("python3"))
        .args(["-c", script])
        .arg(grid.dir.path().join("cas/cas/objects"))
        .arg(&grid.addr)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "probe"]).stdout).unwrap();
    let parent = config["config"]["rootfs"]["diff_ids"][0].as_str().unwrap().to_string();
    let refusal = format!("step.json names the layer {parent}, which the action's input root does not hold");
    assert!(stdout.contains(&refusal), "{stdout}\n{}", worker.log());
    assert!(worker.log().contains(&refusal), "{}", worker.log());
}

/// Two tenants of one worker store, under two instance names: a cache
/// mount one fills is not the other's, while steps of one instance share it.
#[test]
fn cache_mounts_of_two_instance_names_share_nothing() {
    let grid = BuildGrid::start_with(None, &["other"]);
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let _workers = [
        Worker::start_on(&grid, "w-unnamed", &store, &[], tempfile::tempdir().unwrap()),
        Worker::start_on(
            &grid,
            "w-other",
            &store,
            &["--remote-instance", "other"],
            tempfile::tempdir().unwrap(),
        ),
    ];
    let p = busybox_project(
        r#"image("probe", from("rootfs:busybox.tar").run("cat /c/seen > /seen 2>/dev/null || echo none > /seen; echo $TENANT >> /c/seen", #{ cache: [#{ target: "/c", id: "shared" }], env: #{ TENANT: arg("tenant", "x") } }));"#,
    );
    let seen = |tenant: &str, instance: &str| {
        p.ok(&[
            "build",
            "--arg",
            &format!("tenant={tenant}"),
            "--remote-executor",
            &grid.url(),
            "--remote-instance",
            instance,
        ]);
        let bundle = umoci_unpack(p.store_root().as_path(), "probe");
        fs::read_to_string(bundle.path().join("b/rootfs/seen")).unwrap()
    };
    assert_eq!(seen("first", ""), "none\n");
    // The same instance: the cache the first step filled.
    assert_eq!(seen("second", ""), "first\n");
    // Another instance on the same worker store: its own, empty cache.
    assert_eq!(seen("third", "other"), "none\n");
    assert_eq!(seen("fourth", ""), "first\nsecond\n");
}
