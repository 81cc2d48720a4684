//! Isolation: what a RUN step cannot do. Each attempt runs in a step that
//! records the error it got; the same attempts then run with
//! `security: "insecure"` and `--allow insecure`, where they succeed, so the
//! test can tell a refusal from a broken attempt. A marker on the host and
//! the store's own directories stay out of reach either way.

use std::fs;

use crate::common::*;

/// Attempts, each writing its stderr to /r/NAME, then `ok` when it succeeded
/// (busybox's `date -s` reports a refusal and still exits 0).
const ATTEMPTS: &[(&str, &str)] = &[
    ("mknod-block", "mknod /tmp/blk b 7 0"),
    ("mount-tmpfs", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t"),
    // Writes back the value it reads: refused when sandboxed, a no-op when not.
    (
        "proc-sys-write",
        "v=$(cat /proc/sys/vm/overcommit_memory) && echo $v > /proc/sys/vm/overcommit_memory",
    ),
    ("remount-sys-rw", "mount -o remount,rw /sys"),
    (
        "cgroup-mount",
        "mkdir -p /mnt/cg && mount -t cgroup -o memory cgroup /mnt/cg",
    ),
    ("unshare-user", "unshare -U true"),
    ("unshare-mount", "unshare -m true"),
    ("syslog", "dmesg"),
    ("set-clock", "date -s 2001-01-01"),
    ("proc-keys", "test -f /proc/keys"),
    // The probe (tests/fixtures/probe.c) prints `NAME: ok` or `NAME: error`.
    ("ptrace", "probe ptrace >&2"),
    ("keyctl", "probe keyctl >&2"),
    ("module", "probe module >&2"),
];

/// Attempts that would change the host itself when they succeed (an
/// insecure step really can set the host's clock): tried only sandboxed.
const HOST_CHANGING: &[&str] = &["set-clock", "remount-sys-rw"];

fn recipe(security: &str) -> String {
    let script: Vec<String> = ATTEMPTS
        .iter()
        .filter(|(name, _)| security != "insecure" || !HOST_CHANGING.contains(name))
        .map(|(name, cmd)| format!("if ({cmd}) 2> /r/{name}; then echo ok >> /r/{name}; fi"))
        .collect();
    format!(
        r#"image("probe", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("mkdir -p /r; {}; grep CapEff /proc/self/status > /r/caps; cat /proc/self/mountinfo > /r/mountinfo", #{{ security: "{security}" }}));"#,
        script.join("; ").replace('"', "\\\"")
    )
}

/// A busybox project with the probe in its context.
fn probe_project(recipe: &str) -> Project {
    let p = busybox_project(recipe);
    fs::copy(probe_binary(), p.path("probe")).unwrap();
    p
}

fn results(p: &Project) -> tempfile::TempDir {
    umoci_unpack(p.store.path(), "probe")
}

fn read(bundle: &tempfile::TempDir, name: &str) -> String {
    fs::read_to_string(bundle.path().join("b/rootfs/r").join(name)).unwrap_or_else(|e| panic!("/r/{name}: {e}"))
}

#[test]
fn a_step_cannot_reach_the_kernel_or_the_host() {
    let p = probe_project(&recipe("sandbox"));
    p.ok(&["build"]);
    let r = results(&p);
    let refused = [
        ("mknod-block", "mknod: /tmp/blk: Operation not permitted"),
        // busybox's mount says EPERM this way.
        ("mount-tmpfs", "mount: permission denied"),
        (
            "proc-sys-write",
            "can't create /proc/sys/vm/overcommit_memory: Read-only file system",
        ),
        ("remount-sys-rw", "mount: permission denied"),
        ("cgroup-mount", "mount: permission denied"),
        ("unshare-user", "unshare(0x10000000): Operation not permitted"),
        ("unshare-mount", "unshare(0x20000): Operation not permitted"),
        ("syslog", "klogctl: Operation not permitted"),
        ("set-clock", "can't set date: Operation not permitted"),
        ("ptrace", "ptrace: Operation not permitted"),
        ("keyctl", "keyctl: Operation not permitted"),
        ("module", "module: Operation not permitted"),
    ];
    for (name, error) in refused {
        let got = read(&r, name);
        assert!(got.contains(error), "{name}: expected `{error}`, got `{got}`");
    }
    // /proc/keys is masked: not a regular file (it is /dev/null).
    assert_eq!(read(&r, "proc-keys"), "");
    // Docker's default capabilities less CAP_MKNOD: chown, dac_override,
    // fowner, fsetid, kill, setgid, setuid, setpcap, net_bind_service,
    // net_raw, sys_chroot, audit_write, setfcap.
    assert_eq!(read(&r, "caps").trim(), "CapEff:\t00000000a00425fb");
    // The store's host paths appear in mountinfo, but nothing under them
    // is reachable from inside: the host's root is gone after the pivot.
    let mountinfo = read(&r, "mountinfo");
    assert!(mountinfo.contains("lowerdir="), "{mountinfo}");
    assert!(!r.path().join("b/rootfs/r/store-visible").exists());
}

#[test]
fn an_insecure_step_needs_the_flag_and_then_can_do_everything() {
    let p = probe_project(&recipe("insecure"));
    let refused = p.run(&["build"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("asks for security: \"insecure\"")
            && refused.stderr.contains("allow it with `--allow insecure`"),
        "{}",
        refused.stderr
    );
    p.ok(&["build", "--allow", "insecure"]);
    let r = results(&p);
    for name in [
        "mknod-block",
        "proc-sys-write",
        "mount-tmpfs",
        "cgroup-mount",
        "unshare-mount",
        "unshare-user",
        "syslog",
    ] {
        let got = read(&r, name);
        assert!(
            got.ends_with("ok\n") && !got.contains("not permitted"),
            "{name} should succeed when insecure: {got}"
        );
    }
    assert_eq!(
        read(&r, "proc-keys").trim(),
        "ok",
        "/proc/keys is not masked when insecure"
    );
    assert!(read(&r, "ptrace").starts_with("ptrace: ok\n"), "{}", read(&r, "ptrace"));
    assert!(read(&r, "keyctl").starts_with("keyctl: ok\n"), "{}", read(&r, "keyctl"));
    // Garbage is no module: the kernel says so (or has no modules at all),
    // past the permission check the sandbox fails.
    let module = read(&r, "module");
    assert!(
        module.starts_with("module: ") && !module.contains("not permitted"),
        "{module}"
    );
    assert_ne!(read(&r, "caps").trim(), "CapEff:\t00000000a00425fb");
}

#[test]
fn the_host_stays_out_of_reach() {
    // A step that tries to write where the host's files are: nothing lands.
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("pwned");
    let p = busybox_project(&format!(
        r#"image("probe", from("rootfs:busybox.tar").run("mkdir -p /r; (echo x > {m}) 2> /r/host; (ls {store}/layers) 2> /r/store; true"));"#,
        m = marker.display(),
        store = "STORE"
    ));
    let recipe = fs::read_to_string(p.path("strata.rhai")).unwrap();
    p.recipe(&recipe.replace("STORE", &p.store.path().display().to_string()));
    p.ok(&["build"]);
    assert!(!marker.exists(), "the step wrote onto the host");
    let r = results(&p);
    assert!(
        read(&r, "host").contains("nonexistent directory") || read(&r, "host").contains("No such file"),
        "{}",
        read(&r, "host")
    );
    assert!(read(&r, "store").contains("No such file"), "{}", read(&r, "store"));
}

/// Runs `strata ARGS` and returns its outcome with its process id (setpriv
/// execs strata, so the id is strata's own).
fn run_with_pid(p: &Project, args: &[&str]) -> (Run, u32) {
    let child = p
        .cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (Run::from(child.wait_with_output().unwrap()), pid)
}

/// The cgroups the strata processes `pids` made (`strata-PID-build`,
/// `strata-PID-N`) that are still there. Only those: a test running beside
/// this one may kill its own strata, whose cgroups wait for the next strata
/// process to sweep them.
fn leftover_cgroups(pids: &[u32]) -> Vec<String> {
    let mut left = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = ["pids", "memory", "cpu", "unified"]
        .iter()
        .map(|h| std::path::Path::new("/sys/fs/cgroup").join(h))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.strip_prefix("strata-").and_then(|r| r.split('-').next());
            if owner.is_some_and(|pid| pids.iter().any(|p| p.to_string() == pid)) {
                left.push(path.display().to_string());
            }
            stack.push(path);
        }
    }
    left
}

/// A step that forks past its pids limit is stopped with a message that
/// says so; without the limit the same step succeeds.
#[test]
fn a_fork_bomb_is_stopped_by_the_pids_limit() {
    let spawn = "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i";
    let p = busybox_project(&format!(
        r#"image("bomb", from("rootfs:busybox.tar").run("{spawn}", #{{ limits: #{{ pids: 64 }} }}));"#
    ));
    let (failed, first) = run_with_pid(&p, &["build"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("`run` failed: pids limit 64 reached (a process could not fork): i=0;"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("can't fork"), "{}", failed.stderr);
    p.recipe(&format!(
        r#"image("bomb", from("rootfs:busybox.tar").run("{spawn}", #{{ security: "insecure" }}));"#
    ));
    let (ok, second) = run_with_pid(&p, &["build", "--allow", "insecure", "--progress", "json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.contains("spawned 200") || ok.stdout.contains("spawned 200"),
        "{}",
        ok.stderr
    );
    assert_eq!(
        leftover_cgroups(&[first, second]),
        Vec::<String>::new(),
        "a sandbox's cgroup outlived its build"
    );
}

/// A step that allocates past its memory limit is killed with a message
/// that names the limit; without the limit the same step succeeds.
#[test]
fn a_memory_hog_is_killed_at_the_memory_limit() {
    let hog = "dd if=/dev/zero of=/dev/null bs=200M count=1";
    let p = busybox_project(&format!(
        r#"image("hog", from("rootfs:busybox.tar").run("{hog}", #{{ limits: #{{ memory: "64m" }} }}));"#
    ));
    let failed = p.run(&["build"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("`run` killed: memory limit 64 MiB reached: dd if=/dev/zero"),
        "{}",
        failed.stderr
    );
    p.recipe(&format!(
        r#"image("hog", from("rootfs:busybox.tar").run("{hog}", #{{ security: "insecure" }}));"#
    ));
    p.ok(&["build", "--allow", "insecure"]);
}

#[test]
fn limits_are_checked_in_the_recipe() {
    let p = busybox_project(r#"image("x", from("rootfs:busybox.tar").run("true", #{ limits: #{ memory: "lots" } }));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("limits: `memory` must be a size of at least 1 MiB like \"512m\" or \"2g\", not `lots`"),
        "{}",
        r.stderr
    );
    p.recipe(r#"image("x", from("rootfs:busybox.tar").run("true", #{ limits: #{ swap: 1 } }));"#);
    let r = p.run(&["build"]);
    assert!(r.stderr.contains("swap"), "{}", r.stderr);
}

/// The busybox rootfs plus device nodes a hostile base could carry: a
/// character device (1,5: what /dev/zero is) and a block device (7,0: the
/// host's first loop device).
fn base_with_devices(p: &Project) {
    let mut out = tar::Builder::new(fs::File::create(p.path("busybox.tar")).unwrap());
    let mut src = tar::Archive::new(fs::File::open(busybox_tar()).unwrap());
    for entry in src.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        out.append(&header, &mut entry).unwrap();
    }
    for (name, kind, major, minor) in [
        ("evil-zero", tar::EntryType::Char, 1, 5),
        ("evil-disk", tar::EntryType::Block, 7, 0),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_size(0);
        h.set_cksum();
        out.append(&h, std::io::empty()).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn device_nodes_from_a_base_or_a_cache_do_not_open_in_a_step() {
    let probe = |extra: &str| {
        format!(
            r#"image("probe", from("rootfs:busybox.tar").run("mkdir -p /r; (head -c 4 /evil-zero | od -An -tx1) > /r/zero 2>&1; (dd if=/evil-disk of=/dev/null bs=512 count=1) > /r/disk 2>&1; (head -c 4 /dev/zero | od -An -tx1) > /r/devzero 2>&1; (head -c 4 /c/evil | od -An -tx1) > /r/cache 2>&1; echo {extra}; true", #{{ cache: [#{{ target: "/c", id: "c" }}] }}));"#
        )
    };
    let p = Project::new();
    base_with_devices(&p);
    p.recipe(&probe("1"));
    p.ok(&["build"]);
    let r = results(&p);
    assert!(read(&r, "zero").contains("Permission denied"), "{}", read(&r, "zero"));
    assert!(read(&r, "disk").contains("Permission denied"), "{}", read(&r, "disk"));
    // The sandbox's own /dev still works.
    assert_eq!(read(&r, "devzero").trim(), "00 00 00 00");

    // A device node in a cache mount (as a hostile restored cache could
    // carry one): it does not open either.
    let caches: Vec<_> = fs::read_dir(p.store.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.is_dir())
        .collect();
    let [cache] = caches.as_slice() else {
        panic!("{caches:?}")
    };
    let node = std::ffi::CString::new(cache.join("evil").to_str().unwrap()).unwrap();
    // SAFETY: mknod with a valid path; the test runs as root.
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
    p.recipe(&probe("2"));
    p.ok(&["build"]);
    let r = results(&p);
    assert!(read(&r, "cache").contains("Permission denied"), "{}", read(&r, "cache"));
}
