//! Test fixtures: a temporary project (recipe + context) and store, a
//! command builder for the real binary, and helpers for the real tools.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// A project directory and a store, both removed on drop.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub store: tempfile::TempDir,
    /// Set by [`Project::rootless`]: who runs strata, and a link to the
    /// binary where that user can reach it.
    rootless: Option<(User, tempfile::TempDir)>,
}

/// An ordinary user.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The ordinary user rootless tests run strata as: `$STRATA_TEST_ROOTLESS_USER`,
/// else `strata-test`, which scripts/test.sh creates with ranges in
/// /etc/subuid and /etc/subgid.
pub fn rootless_user() -> User {
    let name = std::env::var("STRATA_TEST_ROOTLESS_USER").unwrap_or_else(|_| "strata-test".into());
    let user = nix::unistd::User::from_name(&name).ok().flatten().unwrap_or_else(|| {
        panic!("no user `{name}`: run the tests through scripts/test.sh, which creates it with subordinate ids")
    });
    User {
        name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }
}

/// `chown -R uid:gid path`, symlinks themselves.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
            store: tempfile::tempdir().unwrap(),
            rootless: None,
        }
    }

    /// The project (its files so far, its store) handed to `user`, who
    /// runs strata from now on: rootless, with the default store
    /// (`$XDG_DATA_HOME/strata`, here inside `store`).
    pub fn rootless(mut self, user: &User) -> Project {
        let bin = tempfile::tempdir().unwrap();
        let exe = Path::new(env!("CARGO_BIN_EXE_strata"));
        // A link where the user can reach it (the build tree may be root's
        // alone); a copy across filesystems.
        if fs::hard_link(exe, bin.path().join("strata")).is_err() {
            fs::copy(exe, bin.path().join("strata")).unwrap();
        }
        fs::set_permissions(bin.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(self.store.path().join("home")).unwrap();
        chown_tree(self.dir.path(), user.uid, user.gid);
        chown_tree(self.store.path(), user.uid, user.gid);
        self.rootless = Some((user.clone(), bin));
        self
    }

    /// The store strata uses: `$STRATA_HOME` as root, the user's default
    /// `$XDG_DATA_HOME/strata` rootless.
    pub fn store_root(&self) -> PathBuf {
        match &self.rootless {
            Some(_) => self.store.path().join("strata"),
            None => self.store.path().to_path_buf(),
        }
    }

    /// A project whose files are a copy of `examples/NAME`.
    pub fn example(name: &str) -> Project {
        let p = Project::new();
        copy_tree(&repo().join("examples").join(name), p.dir.path());
        // A lock left by a local run of the example is not part of it.
        let _ = fs::remove_file(p.path("strata.lock"));
        // The examples on a busybox base read it from their directory.
        if name == "hello" || name == "busybox" {
            fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
        }
        p
    }

    /// This project's docker config directory (`DOCKER_CONFIG`): registry
    /// credentials never come from the machine's own.
    pub fn docker_config(&self) -> PathBuf {
        self.store.path().join("docker-config")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) -> &Project {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        if let Some((user, _)) = &self.rootless {
            chown_tree(self.dir.path(), user.uid, user.gid);
        }
        self
    }

    pub fn recipe(&self, content: &str) -> &Project {
        self.write("strata.rhai", content)
    }

    /// `strata ARGS` in the project directory with this project's store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match &self.rootless {
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
                c.env("STRATA_HOME", self.store.path());
                c
            }
            Some((user, bin)) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", &user.uid.to_string(), "--regid", &user.gid.to_string()])
                    .arg("--init-groups")
                    .arg(bin.path().join("strata"))
                    .env_remove("STRATA_HOME")
                    .env("XDG_DATA_HOME", self.store.path())
                    .env("HOME", self.store.path().join("home"));
                c
            }
        };
        c.args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.docker_config())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("STRATA_DEBIAN_MIRROR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }

    /// Runs and insists on success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "strata {args:?} failed:\n{}", r.stderr);
        r
    }

    /// Runs `strata ARGS` in `n` processes at once; all must succeed.
    pub fn ok_concurrently(&self, n: usize, args: &[&str]) -> Vec<Run> {
        let children: Vec<_> = (0..n)
            .map(|_| {
                self.cmd(args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let runs: Vec<Run> = children
            .into_iter()
            .map(|c| Run::from(c.wait_with_output().unwrap()))
            .collect();
        for r in &runs {
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
        runs
    }

    /// The digest `strata build` printed for image target `name`.
    pub fn build_digest(&self, args: &[&str], name: &str) -> String {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        digest_of(&self.ok(&all).stdout, name)
    }
}

/// Builds `from(base)` plus one copied file in a fresh project and checks
/// that the image holds the hello example's files and the new one; returns
/// the project for further checks.
pub fn build_on_hello_base(base: &str) -> Project {
    let p = Project::new();
    p.write("extra.txt", "extra");
    p.recipe(&format!(
        r#"image("s", from("{base}").copy(ctx("extra.txt"), "/srv/extra.txt"));"#
    ));
    let oci = p.path("oci");
    p.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "s");
    let r = bundle.path().join("b/rootfs");
    assert_eq!(
        fs::read_to_string(r.join("srv/hello.txt")).unwrap(),
        "Hello from strata.\n",
        "{base}"
    );
    assert_eq!(fs::read_to_string(r.join("srv/extra.txt")).unwrap(), "extra", "{base}");
    p
}

/// A project with the busybox base next to its recipe.
pub fn busybox_project(recipe: &str) -> Project {
    let p = Project::new();
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p.recipe(recipe);
    p
}

/// A TCP port on 127.0.0.1 that nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr`; after `within`,
/// fails the test with `why()`.
pub fn wait_for_port(addr: &str, within: Duration, why: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The monorepo example (examples/monorepo) generated with `services`
/// services of `files` files each and `lib_files` shared ones, with the
/// busybox rootfs it builds on.
pub fn monorepo_project(services: usize, files: usize, lib_files: usize) -> Project {
    let p = Project::new();
    let status = Command::new("python3")
        .arg(repo().join("examples/monorepo/generate.py"))
        .arg(p.dir.path())
        .args(["--services", &services.to_string()])
        .args(["--files", &files.to_string()])
        .args(["--lib-files", &lib_files.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "examples/monorepo/generate.py failed");
    fs::copy(busybox_tar(), p.path("busybox.tar")).unwrap();
    p
}

pub fn digest_of(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3 && f[0] == name).then(|| f[2].to_string())
        })
        .unwrap_or_else(|| panic!("no digest for `{name}` in:\n{stdout}"))
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// `tests/fixtures/probe.c` compiled statically, once per test run.
pub fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("isolation-probe");
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let built = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&tmp)
            .arg(repo().join("tests/fixtures/probe.c"))
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "cc -static probe.c failed (are gcc and libc6-dev installed?): {}",
            String::from_utf8_lossy(&built.stderr)
        );
        fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// A busybox root filesystem tarball, made once per test run.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs.tar");
        if !out.exists() {
            let tmp = out.with_extension(format!("tmp{}", std::process::id()));
            let status = Command::new("bash")
                .arg(repo().join("scripts/make-busybox-rootfs.sh"))
                .arg(&tmp)
                .status()
                .unwrap();
            assert!(
                status.success(),
                "make-busybox-rootfs.sh failed (is busybox-static installed?)"
            );
            fs::rename(&tmp, &out).unwrap();
        }
        out
    })
}

/// Runs an external tool and returns its stdout, failing the test with its stderr.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `umoci unpack` of `oci:DIR:TAG` into a fresh bundle; returns the bundle (rootfs inside).
pub fn umoci_unpack(layout: &Path, tag: &str) -> tempfile::TempDir {
    let bundle = tempfile::tempdir().unwrap();
    let target = bundle.path().join("b");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            target.to_str().unwrap(),
        ],
    );
    bundle
}

/// `(mode, uid, gid)` of a path.
pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

/// A real `docker-registry` on a free loopback port, stopped (and its
/// storage removed) on drop.
pub struct Registry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub addr: String,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that wants basic auth (htpasswd, bcrypt) for `user`/`password`.
    pub fn with_auth(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth_config = match auth {
            Some((user, password)) => {
                let entry = tool("htpasswd", &["-Bbn", user, password]);
                let file = dir.path().join("htpasswd");
                fs::write(&file, entry).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth_config}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        // Its access log (one line per request) goes to stdout.
        let access = fs::File::create(dir.path().join("access.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(access)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) is installed");
        wait_for_port(&addr, Duration::from_secs(20), || {
            "docker-registry did not start".into()
        });
        Registry { child, dir, addr }
    }

    /// Where the registry keeps what was pushed to it.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The digests of the blobs downloaded so far (`GET …/blobs/<digest>`),
    /// in the order the registry served them.
    pub fn blob_downloads(&self) -> Vec<String> {
        let log = fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split_once("\"GET /v2/")?.1.split_once("/blobs/"))
            .filter_map(|(_, rest)| rest.split(' ').next())
            .map(str::to_string)
            .collect()
    }
}

/// Every regular file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                if let Ok(bytes) = fs::read(e.path()) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(e.path());
                    }
                }
            }
        }
    }
    found
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mirror=URL`: the `--arg` the examples read their Debian mirror from.
pub fn mirror_arg(mirror: &DebianMirror) -> String {
    format!("mirror={}", mirror.url)
}

/// The partial Debian mirror `scripts/debian-mirror.sh` made, served by
/// python's http.server on a free loopback port; every request is logged.
pub struct DebianMirror {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
    pub url: String,
}

impl DebianMirror {
    pub fn start() -> DebianMirror {
        let dir = std::env::var("STRATA_TEST_DEBIAN_MIRROR").expect(
            "STRATA_TEST_DEBIAN_MIRROR is unset: run the tests through scripts/test.sh, which makes the mirror",
        );
        DebianMirror::serve(Path::new(&dir))
    }

    /// Serves `dir` (a mirror layout) instead.
    pub fn serve(dir: &Path) -> DebianMirror {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("python3 is installed");
        let addr = format!("127.0.0.1:{port}");
        wait_for_port(&addr, Duration::from_secs(20), || "the mirror did not start".into());
        DebianMirror {
            child,
            log,
            url: format!("http://{addr}"),
        }
    }

    /// The paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split('"').nth(1))
            .filter_map(|r| r.split_whitespace().nth(1).map(str::to_string))
            .collect()
    }
}

impl Drop for DebianMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `ssh-agent` on a socket of its own, holding one new ed25519 key;
/// killed when dropped.
pub struct SshAgent {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl SshAgent {
    pub fn start() -> SshAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (Debian package openssh-client) is installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(std::time::Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = dir.path().join("key");
        tool(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
        );
        let added = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        SshAgent {
            child,
            _dir: dir,
            socket,
        }
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arm64 busybox root filesystem `scripts/foreign-busybox.sh` made
/// (scripts/test.sh sets STRATA_TEST_BUSYBOX_ARM64), with the QEMU
/// emulators registered (`strata binfmt --install`, once per run).
pub fn arm64_busybox_tar() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let tar = std::env::var("STRATA_TEST_BUSYBOX_ARM64").expect(
                "STRATA_TEST_BUSYBOX_ARM64 is unset: run the tests through scripts/test.sh, which makes the arm64 busybox",
            );
            let out = Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["binfmt", "--install"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "strata binfmt --install: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(tar)
        })
        .clone()
}

/// A podman with storage of its own (vfs, in a temporary directory), so a
/// test never touches the machine's images; everything it pulled or made is
/// removed on drop.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `podman` with this instance's storage and the options a container in
    /// a container needs (cgroupfs, events in a file, runc: crun refuses a
    /// host whose cgroup v1 and v2 hierarchies both hold controllers, as
    /// some CI machines' do).
    pub fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .args([
                "--runtime",
                "runc",
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        c
    }

    /// Runs podman with `args`; returns its stdout, failing the test with its stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("podman (Debian package podman) is installed");
        assert!(
            out.status.success(),
            "podman {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run --rm` of `image` with no network and limits this
    /// machine lets a container raise to (podman's defaults exceed them).
    pub fn run(&self, image: &str, argv: &[&str]) -> String {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
        ];
        args.extend_from_slice(argv);
        self.ok(&args)
    }
}

/// `podman system service` of a [`Podman`]: the Docker Engine API on a
/// unix socket (what `DOCKER_HOST=unix://…` names), stopped on drop.
pub struct PodmanService {
    child: std::process::Child,
    pub socket: PathBuf,
}

impl Podman {
    pub fn service(&self) -> PodmanService {
        let socket = self.dir.path().join("podman.sock");
        let child = self
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("podman (Debian package podman) is installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "podman system service did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PodmanService { child, socket }
    }

    /// A directory holding a `podman` that is this instance (its storage
    /// options first), for a PATH that finds it.
    pub fn wrapper_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("bin");
        fs::create_dir_all(&dir).unwrap();
        let cmd = self.command();
        let argv: Vec<String> = cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())).collect();
        let real = tool("sh", &["-c", "command -v podman"]);
        let script = dir.join("podman");
        fs::write(
            &script,
            format!("#!/bin/sh\nexec {} {} \"$@\"\n", real.trim(), argv.join(" ")),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command().args(["system", "reset", "--force"]).output();
    }
}

/// Puts this machine's bash and the libraries it loads (as `ldd` names
/// them) under `dir` at their paths, for a `copy(ctx("DIR/"), "/")` onto a
/// busybox base: an image whose shell reads $HISTFILE.
pub fn host_bash_into(dir: &Path) {
    let mut files = vec![PathBuf::from("/bin/bash")];
    for line in tool("ldd", &["/bin/bash"]).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(path));
        }
    }
    for file in files {
        let dest = dir.join(file.strip_prefix("/").unwrap());
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&file, &dest).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// The project's `strata.lock`, parsed.
pub fn lock_of(p: &Project) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap()
}
