//! The attacks of issue #33, each done as written against the real binary,
//! each asserting what the victim still is afterwards: a host directory's
//! mode and entries, a file's content, the user's agent, the terminal's
//! input, the bytes a hostile server got to send.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;

// ---- helpers ----

/// One HTTP request a hostile server received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Request, &mut TcpStream) + Send + Sync;

/// An HTTP server on 127.0.0.1 that answers every request with `handler`
/// (each connection in a thread of its own) and logs what it was asked;
/// stopped when dropped.
struct Hostile {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Hostile {
    fn start(handler: impl Fn(&Request, &mut TcpStream) + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stopped, logged) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (handler, logged) = (handler.clone(), logged.clone());
                std::thread::spawn(move || {
                    while let Some(req) = read_request(&mut conn) {
                        logged.lock().unwrap().push(req.clone());
                        handler(&req, &mut conn);
                        if req
                            .header("Connection")
                            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                        {
                            break;
                        }
                    }
                });
            }
        });
        Hostile { port, stop, log }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr());
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request { method, path, headers };
    if let Some(n) = req.header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
        std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink()).ok()?;
    }
    Some(req)
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

/// A body without a length that never ends (until the client hangs up).
fn endless(conn: &mut TcpStream, headers: &[(&str, &str)]) {
    let mut head = String::from("HTTP/1.1 200 OK\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'x'; 1 << 16];
    while conn.write_all(&chunk).is_ok() {}
}

/// Headers, then nothing at all for a minute.
fn stall(conn: &mut TcpStream) {
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// One raw tar entry: `(name, kind, mode, uid and gid, link target, data)`.
type RawEntry<'a> = (&'a str, tar::EntryType, u32, u64, Option<&'a str>, &'a [u8]);

/// The bytes of a tar of raw entries, written with raw header names the way
/// a hostile producer would.
fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, mode, uid, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let (major, minor) = if *kind == tar::EntryType::Block { (8, 0) } else { (1, 5) };
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An `ar` archive: a `.deb` of these members.
fn deb(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend_from_slice(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A host directory to attack: mode 0755, holding a root 0600 file.
fn victim() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("hostfile");
    fs::write(&file, "precious").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    (dir, file)
}

fn assert_untouched(dir: &Path, file: &Path) {
    assert_eq!(mode_of(dir), 0o755, "the victim directory's mode");
    assert_eq!(names_in(dir), BTreeSet::from(["hostfile".to_string()]), "its entries");
    assert_eq!(fs::read_to_string(file).unwrap(), "precious", "its file");
    assert_eq!(mode_of(file), 0o600);
    assert_eq!(fs::metadata(file).unwrap().nlink(), 1, "no new name for the host file");
}

/// Total bytes of the regular files under `dir`.
fn disk_use(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            total += disk_use(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Runs `command` and returns its result and its peak memory (KiB).
fn run_measured(mut command: Command) -> (Run, i64) {
    use std::os::unix::process::ExitStatusExt;
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = command
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 reaps our own child and
    // fills it (std's wait gives no peak memory).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    let status = std::process::ExitStatus::from_raw(status);
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(out.path()).unwrap(),
        stderr: fs::read_to_string(err.path()).unwrap(),
    };
    (run, usage.ru_maxrss)
}

// ---- 1. a hostile .deb named by a hostile lock ----

#[test]
fn a_hostile_deb_named_by_a_lock_writes_nothing_outside_its_layer() {
    let mirror = DebianMirror::start();
    let p = Project::new();
    let recipe = |url: &str| {
        format!(
            r#"image("x", debian("bookworm", [], #{{ mirror: "{url}", variant: "essential", updates: false, security: false }}));"#
        )
    };
    p.recipe(&recipe(&mirror.url));
    p.ok(&["lock"]);
    let (victim_dir, hostfile) = victim();
    let v = victim_dir.path().to_str().unwrap();
    let control = raw_tar(&[(
        "./control",
        tar::EntryType::Regular,
        0o644,
        0,
        None,
        b"Package: evil\nVersion: 1\nArchitecture: amd64\nEssential: yes\n",
    )]);
    let data = raw_tar(&[
        ("./x", tar::EntryType::Symlink, 0o777, 0, Some(v), b""),
        ("./x/", tar::EntryType::Directory, 0o777, 0, None, b""),
        ("./x/pwned", tar::EntryType::Regular, 0o4755, 0, None, b"#!/bin/sh\n"),
        ("./stolen", tar::EntryType::Link, 0o644, 0, Some("./x/hostfile"), b""),
        (
            "./bin/sh",
            tar::EntryType::Regular,
            0o755,
            0,
            None,
            b"echo owned >> /stolen\n",
        ),
    ]);
    let evil = deb(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", control),
        ("data.tar", data),
    ]);
    // The lock names only the evil package, served by a mirror of the attacker's.
    let pool = tempfile::tempdir().unwrap();
    fs::create_dir_all(pool.path().join("pool/e")).unwrap();
    fs::write(pool.path().join("pool/e/evil.deb"), &evil).unwrap();
    let hostile = DebianMirror::serve(pool.path());
    let mut lock = lock_of(&p);
    let (key, set) = {
        let sets = lock["debian"].as_object_mut().unwrap();
        let key = sets.keys().next().unwrap().clone();
        (key.clone(), sets.get_mut(&key).unwrap())
    };
    set["mirror"] = hostile.url.clone().into();
    set["packages"] = serde_json::json!([{
        "name": "evil", "version": "1", "arch": "amd64",
        "sha256": digest_hex(&evil), "filename": "pool/e/evil.deb", "size": evil.len(),
    }]);
    set["base"] = serde_json::json!(["evil"]);
    fs::write(p.path("strata.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
    p.recipe(&recipe(&hostile.url));
    let r = p.run(&["build", "--locked"]);
    assert_eq!(r.code, 1, "{key}: {}", r.stderr);
    assert!(
        r.stderr.contains("refused data member `./stolen`"),
        "the hard link to a host file is refused: {}",
        r.stderr
    );
    assert_untouched(victim_dir.path(), &hostfile);
    assert!(!victim_dir.path().join("pwned").exists());
}

fn digest_hex(bytes: &[u8]) -> String {
    strata_engine::digest::Digest::of(bytes).hex().to_string()
}

// ---- 2. artifacts on the host ----

#[test]
fn artifacts_land_without_setuid_bits_or_devices_and_only_below_the_output_directory() {
    let p = Project::new();
    let evil = raw_tar(&[
        ("x/", tar::EntryType::Directory, 0o755, 0, None, b""),
        ("x/su", tar::EntryType::Regular, 0o4755, 0, None, b"#!/bin/sh\nid\n"),
        ("x/sg", tar::EntryType::Regular, 0o2755, 0, None, b"#!/bin/sh\nid\n"),
        ("x/sda", tar::EntryType::Block, 0o660, 0, None, b""),
        ("x/zero", tar::EntryType::Char, 0o666, 0, None, b""),
        ("x/ok.txt", tar::EntryType::Regular, 0o640, 1000, None, b"fine"),
    ]);
    fs::write(p.path("evil.tar"), evil).unwrap();
    p.recipe(r#"artifact("x", from("rootfs:evil.tar").path("/x"));"#);
    let r = p.ok(&["build", "x"]);
    let out = p.path("out/x");
    assert_eq!(
        names_in(&out),
        BTreeSet::from(["ok.txt".to_string(), "sg".into(), "su".into()]),
        "no device node reaches the host"
    );
    assert_eq!(mode_of(&out.join("su")), 0o755, "setuid bit cleared");
    assert_eq!(mode_of(&out.join("sg")), 0o755, "setgid bit cleared");
    let me = (unsafe { libc::getuid() }, unsafe { libc::getgid() });
    let ok = fs::metadata(out.join("ok.txt")).unwrap();
    assert_eq!(
        (ok.mode() & 0o7777, ok.uid(), ok.gid()),
        (0o640, me.0, me.1),
        "the user's own files"
    );
    assert!(
        r.stderr
            .contains("artifact `x`: 2 device node(s) or FIFO(s) left out (files on the host get none): /sda, /zero"),
        "{}",
        r.stderr
    );

    // A target named `..` (or `.`, or a path) is refused at its recipe line.
    fs::write(p.path("README.md"), "the project's own").unwrap();
    for name in ["..", ".", "a/b"] {
        p.recipe(&format!(r#"artifact("{name}", from("rootfs:evil.tar").path("/x"));"#));
        let r = p.run(&["build"]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains("strata.rhai:1:1"), "{name}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("target name `{name}`")), "{}", r.stderr);
    }
    assert_eq!(fs::read_to_string(p.path("README.md")).unwrap(), "the project's own");

    // A context that ships `out/www` as a symlink out of the tree.
    let (outside, hostfile) = victim();
    fs::create_dir_all(p.path("out")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path("out/www")).unwrap();
    p.write("page.html", "<p>hi</p>");
    p.recipe(r#"artifact("www", scratch().copy(ctx("page.html"), "/www/page.html").path("/www"));"#);
    let r = p.run(&["build", "www"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("a symlink or a file is in the way below the output directory"),
        "{}",
        r.stderr
    );
    assert_untouched(outside.path(), &hostfile);
}

// ---- 3. an archive's hard link and the store's shared files ----

#[test]
fn an_archive_hard_link_never_changes_a_file_another_recipe_copies() {
    let recipe = r#"image("add", scratch().copy(ctx(["a.txt", "evil.tar"]), "/d/", #{ extract: true }));
image("plain", scratch().copy(ctx("a.txt"), "/a.txt"));"#;
    let evil = raw_tar(&[("b", tar::EntryType::Link, 0o4777, 4242, Some("a.txt"), b"")]);
    let setup = |p: &Project| {
        p.write("a.txt", "shared content\n");
        fs::write(p.path("evil.tar"), &evil).unwrap();
        p.recipe(recipe);
    };
    let p = Project::new();
    setup(&p);
    p.ok(&["build", "add"]);
    let oci = p.path("oci");
    let attacked = p.build_digest(&["plain", "-o", &format!("oci:{}", oci.display())], "plain");
    let bundle = umoci_unpack(&oci, "plain");
    assert_eq!(
        owner_mode(&bundle.path().join("b/rootfs/a.txt")),
        (0o644, 0, 0),
        "the pool's file kept its mode and owner"
    );
    let clean = Project::new();
    setup(&clean);
    assert_eq!(
        clean.build_digest(&["plain"], "plain"),
        attacked,
        "as a clean store builds it"
    );
    // The archive's own link got the attributes its header says, as Docker's.
    let add = p.path("add-oci");
    p.ok(&["build", "add", "-o", &format!("oci:{}", add.display())]);
    let bundle = umoci_unpack(&add, "add");
    assert_eq!(owner_mode(&bundle.path().join("b/rootfs/d/b")), (0o4777, 4242, 4242));
    assert_eq!(owner_mode(&bundle.path().join("b/rootfs/d/a.txt")), (0o644, 0, 0));

    // An exported blob is a copy: editing it leaves the store's intact.
    let blobs = oci.join("blobs/sha256");
    for entry in fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(fs::metadata(&path).unwrap().nlink(), 1, "{}", path.display());
        fs::write(&path, "vandalised").unwrap();
    }
    p.ok(&["check"]);
}

// ---- 4. a step typing into the user's terminal ----

/// A busybox project with the probe at /bin/probe.
fn probe_project(recipe: &str) -> Project {
    let p = busybox_project(recipe);
    fs::copy(probe_binary(), p.path("probe")).unwrap();
    p
}

/// Whether anything waits in the terminal's input once strata is done:
/// the shell that ran strata reads for two seconds.
const READ_BACK: &str = "; read -t 2 line && echo \"INJECTED:$line\" || echo CLEAN";

#[test]
fn a_step_cannot_type_into_the_users_terminal() {
    let p = probe_project(
        r#"image("t", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("probe tiocsti 'touch MARKER'"));"#,
    );
    let (_, shown) = crate::run::on_terminal(
        &p,
        &format!("build --progress plain --verbose --no-cache{READ_BACK}"),
        &[],
    );
    assert!(shown.contains("tiocsti-open-tty: No such device or address"), "{shown}");
    assert!(shown.contains("tiocsti-own-pty: Operation not permitted"), "{shown}");
    assert!(shown.contains("\nCLEAN"), "{shown}");
    assert!(!shown.contains("INJECTED"), "{shown}");

    // `strata run` on a terminal: the command gets a pty of strata's own,
    // and typing into it is refused too.
    let (_, shown) = crate::run::on_terminal(&p, &format!("run t -- probe tiocsti 'touch MARKER'{READ_BACK}"), &[]);
    assert!(shown.contains("tiocsti-stdin: Operation not permitted"), "{shown}");
    assert!(shown.contains("tiocsti-tty: Operation not permitted"), "{shown}");
    assert!(shown.contains("\nCLEAN"), "{shown}");

    // `--debug`'s shell, the same.
    p.recipe(r#"image("t", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("exit 3"));"#);
    let (_, shown) = crate::run::on_terminal(
        &p,
        &format!("build --debug{READ_BACK}"),
        &[b"probe tiocsti 'touch MARKER'; exit\n"],
    );
    assert!(shown.contains("tiocsti-tty: Operation not permitted"), "{shown}");
    assert!(shown.contains("\nCLEAN"), "{shown}");
    assert!(!p.path("MARKER").exists());
}

// ---- 5. the ssh agent ----

#[test]
fn a_step_can_list_and_sign_with_the_agent_but_not_empty_or_lock_it() {
    let agent = SshAgent::start();
    let p = probe_project(
        r#"image("a", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("probe agent-wipe >&2; probe agent >&2", #{ ssh: ["default"] }));"#,
    );
    let out = p
        .cmd(&["build", "--ssh", "default", "--progress", "plain", "--verbose"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("remove-all: answer type 5"),
        "SSH_AGENT_FAILURE: {}",
        r.stderr
    );
    assert!(r.stderr.contains("lock: answer type 5"), "{}", r.stderr);
    assert!(r.stderr.contains("agent: 1 identities"), "{}", r.stderr);
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("(ED25519)"));
}

// ---- 6. a secret after a line longer than a piece ----

#[test]
fn a_secret_after_a_64_kib_line_is_masked_in_every_output_mode() {
    const SECRET: &str = "q7Zx9Kw3Vb2Nm8Lp4Rt6";
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar").run("head -c 65530 /dev/zero | tr '\\0' a; cat /run/secrets/tok; echo; exit 3", #{ secrets: [#{ id: "tok", file: "tok.txt" }] }));"#,
    );
    p.write("tok.txt", SECRET);
    for progress in ["plain", "json"] {
        let r = p.run(&["build", "--progress", progress]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let shown = format!("{}{}", r.stdout, r.stderr);
        assert!(shown.contains("****"), "{progress}: the secret's place is masked");
        for i in 0..SECRET.len() - 2 {
            let piece = &SECRET[i..i + 3];
            assert!(!shown.contains(piece), "{progress}: `{piece}` of the secret shown");
        }
    }
}

// ---- 7. credentials in the provenance ----

#[test]
fn the_provenance_names_the_origin_without_its_credentials() {
    let p = busybox_project(r#"image("s", from("rootfs:busybox.tar").run("true"));"#);
    let git = |args: &[&str]| tool("git", &[&["-C", p.dir.path().to_str().unwrap()][..], args].concat());
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://ci-token:SECRET@git.test/team/app.git",
    ]);
    git(&[
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    ]);
    p.ok(&["build", "--provenance"]);
    let statement = p.ok(&["provenance", "s"]).stdout;
    assert!(statement.contains("https://git.test/team/app.git"), "{statement}");
    assert!(
        !statement.contains("SECRET") && !statement.contains("ci-token"),
        "{statement}"
    );
}

// ---- 8. downloads that never end, or lie about their size ----

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry of one repository whose manifest, config and layer are
/// what `serve` says for each path.
fn hostile_registry(serve: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> Hostile {
    Hostile::start(move |req, conn| {
        if req.path == "/v2/" {
            return respond(conn, "200 OK", &[], b"{}");
        }
        serve(&req.path, conn)
    })
}

fn assert_small_store(p: &Project, bound: u64) {
    let used = disk_use(p.store.path());
    assert!(used < bound, "the store holds {used} bytes after the refusal");
}

/// The store grew by less than `bound` bytes since it held `before`.
fn assert_grew_less(p: &Project, before: u64, bound: u64) {
    let used = disk_use(p.store.path());
    assert!(
        used < before + bound,
        "the store grew by {} bytes",
        used.saturating_sub(before)
    );
}

#[test]
fn registry_documents_and_blobs_stop_at_their_bound() {
    // A manifest that never ends.
    let endless_manifest = hostile_registry(|_, conn| endless(conn, &[("Content-Type", MANIFEST_TYPE)]));
    let p = Project::new();
    p.recipe(&format!(
        r#"image("x", from("{}/evil/app:1"));"#,
        endless_manifest.addr()
    ));
    let (r, peak_kib) = run_measured(p.cmd(&["build"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("more than the 4194304 bytes it may be"),
        "{}",
        r.stderr
    );
    assert!(peak_kib < 300 << 10, "peak memory {peak_kib} KiB");

    // A config descriptor of 10 GB, then a layer of `size: 1000` that streams on.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},"config":{}}"#;
    let config_digest = format!("sha256:{}", digest_hex(config));
    for (config_size, expected) in [
        (10_000_000_000u64, "more than the 4194304 a JSON document may be"),
        (config.len() as u64, "more than the 1000 bytes it may be"),
    ] {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{config_size},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":1000,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}]}}"#
        );
        let cd = config_digest.clone();
        let reg = hostile_registry(move |path, conn| {
            if path.contains("/manifests/") {
                respond(conn, "200 OK", &[("Content-Type", MANIFEST_TYPE)], manifest.as_bytes());
            } else if path.ends_with(&cd) {
                respond(conn, "200 OK", &[], config);
            } else {
                endless(conn, &[]);
            }
        });
        let p = Project::new();
        p.recipe(&format!(r#"image("x", from("{}/evil/app:1"));"#, reg.addr()));
        let (r, peak_kib) = run_measured(p.cmd(&["build"]));
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains(expected), "{expected}: {}", r.stderr);
        assert!(peak_kib < 300 << 10, "peak memory {peak_kib} KiB");
        assert_small_store(&p, 1 << 20);
    }
}

#[test]
fn mirror_and_fetch_downloads_stop_at_their_bound_and_a_stall_times_out() {
    // An InRelease that never ends.
    let mirror = Hostile::start(|_, conn| endless(conn, &[]));
    let p = Project::new();
    p.recipe(&format!(
        r#"image("x", debian("bookworm", [], #{{ mirror: "http://{}/debian", variant: "essential", updates: false, security: false }}));"#,
        mirror.addr()
    ));
    let (r, peak_kib) = run_measured(p.cmd(&["graph"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("more than the 16777216 bytes it may be"),
        "{}",
        r.stderr
    );
    assert!(peak_kib < 300 << 10, "peak memory {peak_kib} KiB");

    // A lock's package of `size: 1000` whose download never ends.
    let real = DebianMirror::start();
    let q = Project::new();
    let recipe = |url: &str| {
        format!(
            r#"image("x", debian("bookworm", [], #{{ mirror: "{url}", variant: "essential", updates: false, security: false }}));"#
        )
    };
    q.recipe(&recipe(&real.url));
    q.ok(&["lock"]);
    let mut lock = lock_of(&q);
    let sets = lock["debian"].as_object_mut().unwrap();
    let key = sets.keys().next().unwrap().clone();
    let set = sets.get_mut(&key).unwrap();
    set["mirror"] = format!("http://{}/debian", mirror.addr()).into();
    set["packages"] = serde_json::json!([{
        "name": "big", "version": "1", "arch": "amd64", "sha256": "3".repeat(64),
        "filename": "pool/b/big.deb", "size": 1000,
    }]);
    set["base"] = serde_json::json!(["big"]);
    fs::write(q.path("strata.lock"), serde_json::to_vec(&lock).unwrap()).unwrap();
    q.recipe(&recipe(&format!("http://{}/debian", mirror.addr())));
    let before = disk_use(q.store.path());
    let r = q.run(&["build", "--locked"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("more than the 1000 bytes it may be"), "{}", r.stderr);
    assert_grew_less(&q, before, 64 << 10);

    // `fetch` of a 1-byte file whose body never ends: the configured bound.
    let f = Project::new();
    f.recipe(&format!(
        r#"image("f", scratch().copy(fetch("http://{}/one", #{{ sha256: "{}" }}), "/one"));"#,
        mirror.addr(),
        digest_hex(b"1")
    ));
    let (r, peak_kib) = run_measured({
        let mut c = f.cmd(&["build"]);
        c.env("STRATA_MAX_DOWNLOAD_SIZE", "1MiB");
        c
    });
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("more than the 1048576 bytes it may be"),
        "{}",
        r.stderr
    );
    assert!(peak_kib < 300 << 10, "peak memory {peak_kib} KiB");
    assert_small_store(&f, 2 << 20);

    // A server that sends headers and then nothing.
    let stalled = Hostile::start(|_, conn| stall(conn));
    f.recipe(&format!(
        r#"image("f", scratch().copy(fetch("http://{}/one", #{{ sha256: "{}" }}), "/one"));"#,
        stalled.addr(),
        digest_hex(b"1")
    ));
    let r = Run::from(f.cmd(&["build"]).env("STRATA_STALL_TIMEOUT", "1").output().unwrap());
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("nothing arrived for 1 s after 0 bytes (a stalled connection"),
        "{}",
        r.stderr
    );
}

// ---- 9. credentials and another host ----

#[test]
fn credentials_never_go_to_the_host_an_upload_location_names() {
    let other = Hostile::start(|_, conn| respond(conn, "201 Created", &[], b""));
    let other_addr = other.addr();
    let registry = Hostile::start(move |req, conn| {
        let authorized = req.header("Authorization").is_some();
        let challenge = [("WWW-Authenticate", "Basic realm=\"strata-test\"")];
        match (req.method.as_str(), authorized) {
            (_, false) => respond(conn, "401 Unauthorized", &challenge, b""),
            ("HEAD", true) => respond(conn, "404 Not Found", &[], b""),
            ("POST", true) => {
                let location = format!("http://{other_addr}/upload/x");
                respond(conn, "202 Accepted", &[("Location", &location)], b"")
            }
            _ => respond(conn, "201 Created", &[("Docker-Content-Digest", "sha256:0")], b""),
        }
    });
    let p = Project::new();
    p.write("f.txt", "payload");
    p.recipe(r#"image("s", scratch().copy(ctx("f.txt"), "/f.txt"));"#);
    fs::create_dir_all(p.docker_config()).unwrap();
    let auth = "dXNlcjpzZWNyZXQtcGFzc3dvcmQ="; // user:secret-password
    fs::write(
        p.docker_config().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.addr()),
    )
    .unwrap();
    let _ = p.run(&["build", "--push", &format!("s={}/team/app:1", registry.addr())]);
    assert!(
        registry.requests().iter().any(|r| r.header("Authorization").is_some()),
        "the registry itself got the credentials"
    );
    let uploads = other.requests();
    assert!(!uploads.is_empty(), "the upload went to the other host");
    for req in &uploads {
        assert_eq!(req.header("Authorization"), None, "{} {}", req.method, req.path);
    }
}

// ---- 10. a store made by someone else ----

#[test]
fn another_user_cannot_run_a_setuid_file_of_a_precreated_store() {
    let p = Project::new();
    fs::set_permissions(p.store.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let id = fs::read("/usr/bin/id").unwrap();
    let rootfs = raw_tar(&[
        ("usr/", tar::EntryType::Directory, 0o755, 0, None, b""),
        ("usr/bin/", tar::EntryType::Directory, 0o755, 0, None, b""),
        ("usr/bin/idsu", tar::EntryType::Regular, 0o4755, 0, None, &id),
    ]);
    fs::write(p.path("base.tar"), rootfs).unwrap();
    p.recipe(r#"image("s", from("rootfs:base.tar"));"#);
    p.ok(&["build"]);
    for dir in ["layers", "files", "cache", "tmp", "debian", "downloads"] {
        assert_eq!(mode_of(&p.store.path().join(dir)), 0o700, "{dir}/");
    }
    let layer = fs::read_dir(p.store.path().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|l| l.join("usr/bin/idsu").exists())
        .expect("the layer with the setuid file");
    // As `nobody` would, from a shell of theirs with no capability.
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all", "sh", "-c"])
        .arg(layer.join("usr/bin/idsu"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "nobody ran it: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("Permission denied"), "{err}");
}

// ---- 11. archive bombs ----

/// A gzipped tar of one file of `size` zero bytes, made by tar and gzip.
fn gzip_bomb(dir: &Path, size: &str) -> PathBuf {
    let zeros = dir.join("zeros");
    tool("truncate", &["-s", size, zeros.to_str().unwrap()]);
    let bomb = dir.join("bomb.tar.gz");
    let script = format!("tar -C {} -cf - zeros | gzip -1 > {}", dir.display(), bomb.display());
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(status.success());
    fs::remove_file(zeros).unwrap();
    bomb
}

#[test]
fn archive_bombs_stop_at_the_limit_and_leave_nothing_behind() {
    let scratch = tempfile::tempdir().unwrap();
    let bomb = gzip_bomb(scratch.path(), "1G");
    assert!(fs::metadata(&bomb).unwrap().len() < 8 << 20, "a small archive");
    let p = Project::new();
    fs::copy(&bomb, p.path("bomb.tar.gz")).unwrap();
    for recipe in [
        r#"image("b", from("rootfs:bomb.tar.gz"));"#,
        r#"image("b", scratch().copy(ctx("bomb.tar.gz"), "/d/", #{ extract: true }));"#,
    ] {
        p.recipe(recipe);
        let r = Run::from(
            p.cmd(&["build"])
                .env("STRATA_MAX_EXTRACT_SIZE", "64MiB")
                .output()
                .unwrap(),
        );
        assert_ne!(r.code, 0, "{recipe}");
        assert!(
            r.stderr.contains(
                "passes the limit of 67108864 bytes (set it with --max-extract-size or STRATA_MAX_EXTRACT_SIZE)"
            ),
            "{recipe}: {}",
            r.stderr
        );
        assert_small_store(&p, 16 << 20);
    }
    // `strata affected` unpacking an old commit that held a big file.
    let g = busybox_project(r#"image("s", from("rootfs:busybox.tar").copy(ctx("small.txt"), "/s"));"#);
    g.write("small.txt", "s");
    let git = |args: &[&str]| {
        tool(
            "git",
            &[
                &[
                    "-C",
                    g.dir.path().to_str().unwrap(),
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "user.name=t",
                ][..],
                args,
            ]
            .concat(),
        )
    };
    git(&["init", "-q", "-b", "main"]);
    tool("truncate", &["-s", "256M", g.path("big.bin").to_str().unwrap()]);
    git(&["add", "."]);
    git(&["commit", "-qm", "big"]);
    git(&["rm", "-q", "big.bin"]);
    git(&["commit", "-qm", "small"]);
    let r = Run::from(
        g.cmd(&["affected", "--since", "HEAD~1"])
            .env("STRATA_MAX_EXTRACT_SIZE", "16MiB")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`big.bin`: the content passes the limit of 16777216 bytes"),
        "{}",
        r.stderr
    );
    assert_small_store(&g, 16 << 20);
}

#[test]
fn the_x32_abi_is_no_way_around_the_seccomp_filter() {
    // seccompiler names exact x86_64 numbers; the same calls with bit 30
    // set are refused whole (EPERM before the kernel looks: ENOSYS here,
    // where the kernel has no x32, is what an unfiltered call gets).
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let p = probe_project(
        r#"image("t", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("probe x32 >&2"));"#,
    );
    let r = p.ok(&["build", "--progress", "plain", "--verbose"]);
    assert!(r.stderr.contains("x32: Operation not permitted"), "{}", r.stderr);
    let outside = Command::new(probe_binary()).arg("x32").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout),
        "x32: Function not implemented\n"
    );
}

// ---- found by the review ----

#[test]
fn a_descriptor_strata_inherits_never_reaches_a_step() {
    // A directory descriptor left open by whoever runs strata (`flock DIR
    // strata build` holds one) is a way out of a step's root.
    let (victim_dir, hostfile) = victim();
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar").run("ls -l /proc/self/fd/ >&2; echo owned > /proc/self/fd/7/pwned; echo rc=$? >&2; ls /proc/self/fd/7/ >&2; true"));"#,
    );
    let dir = std::ffi::CString::new(victim_dir.path().to_str().unwrap()).unwrap();
    let mut cmd = p.cmd(&["build", "--progress", "plain", "--verbose"]);
    // SAFETY: open and dup2 are async-signal-safe; the descriptor is the child's.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let fd = libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            if fd < 0 || libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = Run::from(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rc=1"), "the write through fd 7 failed: {}", r.stderr);
    assert!(
        !r.stderr.contains("hostfile"),
        "the step listed the host directory: {}",
        r.stderr
    );
    assert_untouched(victim_dir.path(), &hostfile);
}

#[test]
fn empty_entries_of_an_archive_count_against_the_limit() {
    // An inode bomb: thousands of empty directories and files, no bytes.
    let p = Project::new();
    let mut entries: Vec<(String, tar::EntryType)> = Vec::new();
    for i in 0..3000 {
        entries.push((format!("d{i}/"), tar::EntryType::Directory));
        entries.push((format!("d{i}/f"), tar::EntryType::Regular));
    }
    let raw: Vec<RawEntry<'_>> = entries
        .iter()
        .map(|(n, k)| (n.as_str(), *k, 0o755, 0, None, &b""[..]))
        .collect();
    fs::write(p.path("bomb.tar"), raw_tar(&raw)).unwrap();
    p.recipe(r#"image("b", scratch().copy(ctx("bomb.tar"), "/x/", #{ extract: true }));"#);
    let r = Run::from(
        p.cmd(&["build"])
            .env("STRATA_MAX_EXTRACT_ENTRIES", "1000")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("the content passes the limit of 1000 entries"),
        "{}",
        r.stderr
    );
    let r = Run::from(p.cmd(&["--max-extract-size", "64KiB", "build"]).output().unwrap());
    assert!(
        r.stderr.contains("the content passes the limit of 65536 bytes"),
        "{}",
        r.stderr
    );
    assert_small_store(&p, 4 << 20);
}

#[test]
fn a_trickling_download_is_a_stall_and_an_interrupt_stops_a_silent_one() {
    // A byte every half second: never silent long enough for a read
    // timeout, and far below what a download must move.
    let trickle = Hostile::start(|_, conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n");
        for _ in 0..1000 {
            if conn.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    let p = Project::new();
    let recipe = |addr: String| {
        format!(
            r#"image("f", scratch().copy(fetch("http://{addr}/f", #{{ sha256: "{}" }}), "/f"));"#,
            "1".repeat(64)
        )
    };
    p.recipe(&recipe(trickle.addr()));
    let r = Run::from(p.cmd(&["build"]).env("STRATA_STALL_TIMEOUT", "2").output().unwrap());
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("bytes in 2 s after"), "{}", r.stderr);
    assert!(r.stderr.contains("(a stalled connection"), "{}", r.stderr);

    // A server that sends nothing after its headers: one SIGTERM ends the build.
    let silent = Hostile::start(|_, conn| stall(conn));
    p.recipe(&recipe(silent.addr()));
    let child = p.cmd(&["build"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    while silent.requests().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The download itself stopped, not the last-resort watch.
    assert!(!stderr.contains("still running"), "{stderr}");
}

#[test]
fn a_steps_escape_sequences_never_reach_the_terminal() {
    let p = busybox_project(
        r#"image("e", from("rootfs:busybox.tar").run(`printf 'title \033]0;PWNED\007 clip \033]52;c;cGF5bG9hZA==\007 done\n' >&2; exit 3`));"#,
    );
    let r = p.run(&["build", "--progress", "plain", "--verbose"]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}'),
        "{:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains("title ^[]0;PWNED^G clip ^[]52;c;cGF5bG9hZA==^G done"),
        "{}",
        r.stderr
    );
}

#[test]
fn strata_run_without_a_terminal_on_stdin_keeps_the_users_terminal() {
    let p = busybox_project(r#"image("t", from("rootfs:busybox.tar"));"#);
    p.ok(&["build"]);
    let (_, shown) = crate::run::on_terminal(
        &p,
        "run t -- sh -c 'test -t 1 && echo OUT-IS-A-TTY || echo OUT-IS-A-PIPE; stty -echo 2>&1' </dev/null; stty -a | grep -o ' echo ' || echo NO-ECHO",
        &[],
    );
    assert!(shown.contains("OUT-IS-A-PIPE"), "{shown}");
    assert!(shown.contains(" echo "), "the terminal still echoes: {shown}");
}
