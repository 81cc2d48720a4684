//! RUN steps: the sandbox, layers from upperdirs, mounts, network, failure
//! and cancellation.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn unpack_image(p: &Project, name: &str) -> tempfile::TempDir {
    let oci = p.path(&format!("oci-{name}"));
    let _ = fs::remove_dir_all(&oci);
    p.ok(&["build", name, "-o", &format!("oci:{}", oci.display())]);
    umoci_unpack(&oci, name)
}

#[test]
fn run_sees_a_private_root_proc_dev_env_workdir_and_user() {
    let p = busybox_project(
        r#"
        let s = from("rootfs:busybox.tar")
            .copy(ctx("passwd"), "/etc/passwd")
            .env("GREETING", "hi")
            .workdir("/work/dir")
            .user("app")
            .run("{ id -u; id -g; pwd; echo $GREETING $HOME; hostname; ls /dev | tr '\\n' ' '; echo; \
                   cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/mountinfo | wc -l; } > /tmp/report");
        let argv = s.user("root")
            .run(["/bin/sh", "-c", "echo argv-form $EXTRA > /argv.txt"], #{ env: #{ EXTRA: "1" } })
            .run("id -u > /tmp/run-user.txt", #{ user: "app" });
        image("s", argv);
        "#,
    );
    p.write(
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
    );
    let bundle = unpack_image(&p, "s");
    let r = bundle.path().join("b/rootfs");
    let report = fs::read_to_string(r.join("tmp/report")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "1234", "{report}");
    assert_eq!(lines[1], "2345");
    assert_eq!(lines[2], "/work/dir", "the workdir is created");
    assert_eq!(lines[3], "hi /home/app");
    assert_eq!(lines[4], "strata");
    for dev in ["null", "zero", "urandom", "pts", "shm", "tty"] {
        assert!(lines[5].split(' ').any(|d| d == dev), "/dev lacks {dev}: {}", lines[5]);
    }
    assert!(lines[6].starts_with("/bin/sh -c"), "the command is pid 1: {}", lines[6]);
    assert!(
        lines[7].trim().parse::<u32>().expect(&report) < 15,
        "only the sandbox's own mounts: {report}"
    );
    assert_eq!(fs::read_to_string(r.join("argv.txt")).unwrap(), "argv-form 1\n");
    assert_eq!(
        fs::read_to_string(r.join("tmp/run-user.txt")).unwrap(),
        "1234\n",
        "the run option `user`"
    );
    assert_eq!(owner_mode(&r.join("tmp/report")).1, 1234);
    // Mount points were not left in any layer.
    assert!(!r.join("dev/null").exists());
}

#[test]
fn deleted_files_are_absent_from_the_image_and_still_counted_in_the_earlier_layer() {
    let p = busybox_project(
        r#"
        let s = from("rootfs:busybox.tar")
            .run("head -c 300000 /dev/urandom > /big && mkdir -p /etc/conf.d && echo old > /etc/conf.d/old && echo keep > /keep")
            .run("rm /big && rm -rf /etc/conf.d && mkdir /etc/conf.d && echo new > /etc/conf.d/new && echo changed > /keep");
        image("s", s);
        "#,
    );
    let bundle = unpack_image(&p, "s");
    let r = bundle.path().join("b/rootfs");
    assert!(!r.join("big").exists(), "the whiteout hides /big");
    assert!(
        !r.join("etc/conf.d/old").exists(),
        "the opaque directory hides its old contents"
    );
    assert_eq!(fs::read_to_string(r.join("etc/conf.d/new")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(r.join("keep")).unwrap(), "changed\n");
    assert!(r.join("etc/passwd").exists(), "the rest of /etc is still there");

    let history = p.ok(&["history", "s"]).stdout;
    let first_run = history.lines().find(|l| l.contains("head -c 300000")).unwrap();
    assert!(
        first_run.contains("kB") && first_run.contains("30"),
        "the earlier layer still holds /big: {history}"
    );

    // The whiteout and the opaque marker are in the layer tar itself.
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "s"]).stdout).unwrap();
    let last = inspect["manifest"]["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = p
        .store
        .path()
        .join("blobs/sha256")
        .join(last.trim_start_matches("sha256:"));
    let listing = tool("tar", &["tf", blob.to_str().unwrap()]);
    assert!(listing.lines().any(|l| l == ".wh.big"), "{listing}");
    assert!(listing.lines().any(|l| l == "etc/conf.d/.wh..wh..opq"), "{listing}");
}

#[test]
fn a_failing_command_names_the_recipe_line_and_shows_its_output_and_records_nothing() {
    let p = busybox_project(
        "let s = from(\"rootfs:busybox.tar\")\n    .run(\"echo first line; echo about to fail >&2; exit 3\");\nimage(\"s\", s);\n",
    );
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("strata.rhai:2:6"), "{}", r.stderr);
    assert!(r.stderr.contains("exit code 3"), "{}", r.stderr);
    assert!(
        r.stderr.contains("echo first line; echo about to fail >&2; exit 3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("about to fail"), "{}", r.stderr);
    // Nothing recorded: the next build runs it again.
    let again = p.run(&["build"]);
    assert!(again.stderr.contains("RUN     run("), "{}", again.stderr);

    let missing = busybox_project("image(\"s\", from(\"rootfs:busybox.tar\").run([\"no-such-tool\"]));");
    let r = missing.run(&["build"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("`no-such-tool`: command not found"), "{}", r.stderr);
}

#[test]
fn network_is_loopback_only_by_default_and_the_host_network_on_request() {
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        image("none", base.run("ip -o link | cut -d: -f2 | tr -d ' ' > /links"));
        image("host", base.run("ip -o link | cut -d: -f2 | tr -d ' ' > /links; cat /etc/resolv.conf /etc/hosts > /netfiles", #{ network: "host" }));
        "#,
    );
    let none = unpack_image(&p, "none");
    assert_eq!(fs::read_to_string(none.path().join("b/rootfs/links")).unwrap(), "lo\n");
    let host = unpack_image(&p, "host");
    let links = fs::read_to_string(host.path().join("b/rootfs/links")).unwrap();
    let host_links = fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(links.lines().count(), host_links, "{links}");
    let host_hosts = fs::read_to_string("/etc/hosts").unwrap();
    let netfiles = fs::read_to_string(host.path().join("b/rootfs/netfiles")).unwrap();
    assert!(netfiles.contains(host_hosts.lines().next().unwrap_or("")), "{netfiles}");
    // The bind-mounted files are not part of the layer (the base has neither).
    assert!(!host.path().join("b/rootfs/etc/hosts").exists());
    assert!(!host.path().join("b/rootfs/etc/resolv.conf").exists());
}

#[test]
fn cache_mounts_persist_across_builds_and_recipes_and_stay_out_of_layers_and_keys() {
    let p = busybox_project(
        r#"
        let s = from("rootfs:busybox.tar")
            .run("echo run-$(date +%s%N) >> /cache/log; wc -l < /cache/log > /count", #{ cache: [#{ target: "/cache", id: "shared-log" }], env: #{ N: arg("n", "1") } });
        image("s", s);
        "#,
    );
    let first = unpack_image(&p, "s");
    assert_eq!(
        fs::read_to_string(first.path().join("b/rootfs/count")).unwrap().trim(),
        "1"
    );
    assert!(
        !first.path().join("b/rootfs/cache").exists(),
        "the mount point is not in the layer"
    );
    // A new key (another env value), the same cache: it sees the first run's line.
    let oci = p.path("oci2");
    p.ok(&["build", "--arg", "n=2", "-o", &format!("oci:{}", oci.display())]);
    let second = umoci_unpack(&oci, "s");
    assert_eq!(
        fs::read_to_string(second.path().join("b/rootfs/count")).unwrap().trim(),
        "2"
    );

    // Another recipe naming the same id shares it; a different target path does not matter.
    let q = Project::new();
    fs::copy(busybox_tar(), q.path("busybox.tar")).unwrap();
    let _ = fs::remove_dir_all(q.store.path());
    copy_tree(p.store.path(), q.store.path());
    q.recipe(r#"image("t", from("rootfs:busybox.tar").run("wc -l < /elsewhere/log > /count", #{ cache: [#{ target: "/elsewhere", id: "shared-log" }] }));"#);
    let oci = q.path("oci");
    q.ok(&["build", "-o", &format!("oci:{}", oci.display())]);
    let third = umoci_unpack(&oci, "t");
    assert_eq!(
        fs::read_to_string(third.path().join("b/rootfs/count")).unwrap().trim(),
        "2"
    );
}

#[test]
fn two_steps_using_one_cache_at_once_do_not_interleave() {
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        for i in 0..2 {
            image(`w${i}`, base.run(`for n in $(seq 1 200); do echo ${i} >> /c/log; done; grep -c . /c/log > /seen`, #{ cache: [#{ target: "/c", id: "contended" }] }));
        }
        "#,
    );
    p.ok(&["build", "w0"]); // the base is imported once
    let children: Vec<_> = ["w0", "w1"]
        .iter()
        .map(|t| {
            p.cmd(&["build", t, "--no-cache"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let r = Run::from(c.wait_with_output().unwrap());
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let cache_root = p.store.path().join("cache");
    let dir = fs::read_dir(&cache_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let log = fs::read_to_string(dir.join("log")).unwrap();
    // Each step's 200 lines are contiguous: the steps ran one after the other.
    let runs = log
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    assert!(runs <= 2, "interleaved writes: {runs} switches");
    assert_eq!(log.lines().count(), 600);
}

#[test]
fn secrets_reach_the_step_but_never_the_store_the_key_or_the_logs() {
    let secret = "s3cr3t-value-7f1d2c";
    let env_secret = "env-s3cr3t-99";
    let sha = |v: &str| {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), v).unwrap();
        tool("sha256sum", &[f.path().to_str().unwrap()])
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    // The recipe holds only hashes of the values; the command prints the secret.
    let p = busybox_project(&format!(
        r#"
        let s = from("rootfs:busybox.tar")
            .run("sha256sum /run/secrets/token | grep -q {} && sha256sum /opt/env-secret | grep -q {} && echo ok > /checked && cat /run/secrets/token",
                 #{{ secrets: [#{{ id: "token", file: "token.txt" }}, #{{ id: "other", env: "MY_SECRET", target: "/opt/env-secret" }}] }});
        image("s", s);
        "#,
        sha(secret),
        sha(env_secret)
    ));
    p.write("token.txt", secret);
    let out = p
        .cmd(&["build", "--progress", "json"])
        .env("MY_SECRET", "env-s3cr3t-99")
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains(secret), "secret in the logs: {}", r.stderr);
    let grep = std::process::Command::new("grep")
        .args(["-r", "-a", "-l", "-e", secret, "-e", "env-s3cr3t-99"])
        .arg(p.store.path())
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "secret found in the store: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    // Compressed blobs too: unpack the image and look.
    let bundle = unpack_image(&p, "s");
    let r2 = bundle.path().join("b/rootfs");
    assert_eq!(fs::read_to_string(r2.join("checked")).unwrap(), "ok\n");
    let grep = std::process::Command::new("grep")
        .args(["-r", "-a", "-l", secret])
        .arg(&r2)
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty());
    assert!(
        !r2.join("run/secrets").exists() && !r2.join("opt").exists(),
        "secret mount points left in the layer"
    );
    // A new secret value does not change the key.
    p.write("token.txt", "another-value");
    let graph: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    assert!(graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["cache"] != "missing"));
}

#[test]
fn mounts_show_another_states_files_read_only() {
    let p = busybox_project(
        r#"
        let base = from("rootfs:busybox.tar");
        let tools = base.run("mkdir -p /out && echo from-tools > /out/file");
        let user = base.run("cat /mnt/tools/file > /copied; touch /mnt/tools/x 2> /err || echo read-only > /ro",
                            #{ mounts: [#{ source: tools.path("/out"), target: "/mnt/tools" }] });
        image("u", user);
        "#,
    );
    let bundle = unpack_image(&p, "u");
    let r = bundle.path().join("b/rootfs");
    assert_eq!(fs::read_to_string(r.join("copied")).unwrap(), "from-tools\n");
    assert_eq!(fs::read_to_string(r.join("ro")).unwrap(), "read-only\n");
    assert!(!r.join("mnt").exists());
}

#[test]
fn a_timeout_kills_the_step() {
    let p = busybox_project(r#"image("s", from("rootfs:busybox.tar").run("sleep 30 & sleep 30", #{ timeout: 1 }));"#);
    let started = Instant::now();
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 1s"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_no_sandbox_left(&p);
}

/// No sandbox of this project's store is running, and none of its mounts is visible.
fn assert_no_sandbox_left(p: &Project) {
    let store = p.store.path().to_str().unwrap().to_string();
    let ps = tool("ps", &["-eo", "args"]);
    assert!(
        !ps.lines().any(|l| l.contains("__sandbox") && l.contains(&store)),
        "{ps}"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&store), "{mounts}");
}

#[test]
fn ctrl_c_during_a_run_kills_the_tree_unmounts_and_leaves_nothing_behind() {
    let p = busybox_project(
        // The first attempt hangs (sleep 1000); the cache mount remembers it, so the next one finishes.
        r#"let b = from("rootfs:busybox.tar"); image("base", b);
           image("s", b.run("if [ ! -e /c/tried ]; then touch /c/tried; sleep 1000 & sleep 1000; fi; echo done > /done", #{ cache: ["/c"] }));"#,
    );
    p.ok(&["build", "base"]); // the base is imported
    let mut child = p
        .cmd(&["build", "s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the step is running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tool("ps", &["-eo", "args"]).contains("sleep 1000") {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !tool("ps", &["-eo", "args"]).contains("sleep 1000"),
        "the step's processes survived"
    );
    assert_no_sandbox_left(&p);
    let findmnt = tool("findmnt", &["-rn", "-o", "TARGET"]);
    assert!(!findmnt.contains(p.store.path().to_str().unwrap()), "{findmnt}");
    // No partial result: the step is not cached, and the store's scratch is gone on the next start.
    let graph: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
    assert!(graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["op"] == "run" && n["cache"] == "missing"));
    let _ = child.kill();
}

#[test]
fn a_state_with_three_hundred_layers_still_runs() {
    let p = busybox_project(
        r#"
        let s = from("rootfs:busybox.tar");
        for i in 0..300 { s = s.copy(ctx("f.txt"), `/layers/${i}`); }
        image("s", s.run("ls /layers | wc -l > /count"));
        "#,
    );
    p.write("f.txt", "x");
    let bundle = unpack_image(&p, "s");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/count")).unwrap().trim(),
        "300"
    );
}

#[test]
fn the_run_key_covers_command_env_user_workdir_mounts_and_network_but_not_secret_values() {
    let base = r#"let b = from("rootfs:busybox.tar"); image("s", b.workdir("WD").user("U").run("CMD", #{ env: #{ E: "V" }, network: "NET", cache: ["/CACHE"] }));"#;
    let key_in = |p: &Project| -> String {
        let g: serde_json::Value = serde_json::from_str(&p.ok(&["graph", "--format", "json"]).stdout).unwrap();
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["op"] == "run")
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let key_of = |recipe: &str| -> String {
        let p = busybox_project(recipe);
        p.write("t.txt", "first value");
        key_in(&p)
    };
    let fill = |wd: &str, u: &str, cmd: &str, v: &str, net: &str, cache: &str| {
        base.replace("WD", wd)
            .replace("\"U\"", &format!("\"{u}\""))
            .replace("CMD", cmd)
            .replace("\"V\"", &format!("\"{v}\""))
            .replace("NET", net)
            .replace("/CACHE", cache)
    };
    let k0 = key_of(&fill("/w", "0", "true", "1", "none", "/c"));
    assert_eq!(k0, key_of(&fill("/w", "0", "true", "1", "none", "/c")));
    for changed in [
        fill("/x", "0", "true", "1", "none", "/c"),
        fill("/w", "1", "true", "1", "none", "/c"),
        fill("/w", "0", "false", "1", "none", "/c"),
        fill("/w", "0", "true", "2", "none", "/c"),
        fill("/w", "0", "true", "1", "host", "/c"),
        fill("/w", "0", "true", "1", "none", "/d"),
    ] {
        assert_ne!(key_of(&changed), k0, "{changed}");
    }

    // A secret's id and target are part of the key; its value is not.
    let secret = r#"image("s", from("rootfs:busybox.tar").run("true", #{ secrets: [#{ id: "t", file: "t.txt" }] }));"#;
    let p = busybox_project(secret);
    p.write("t.txt", "first value");
    let first = key_in(&p);
    p.write("t.txt", "another value, longer");
    assert_eq!(key_in(&p), first, "a changed secret value keeps the key");
    assert_ne!(key_of(&secret.replace(r#"id: "t""#, r#"id: "u""#)), first);
}

#[test]
fn the_command_starts_with_default_signal_handling() {
    // `yes | head` ends only if `yes` dies of SIGPIPE, as in any shell.
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar").run("yes | head -c 100000 > /out; grep -i sigpipe /proc/self/status > /dev/null; grep SigIgn /proc/self/status > /sigign", #{ timeout: 60 }));"#,
    );
    let bundle = unpack_image(&p, "s");
    let ign = fs::read_to_string(bundle.path().join("b/rootfs/sigign")).unwrap();
    let mask = u64::from_str_radix(ign.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored: {ign}");
}

#[test]
fn a_shell_command_not_found_is_the_commands_failure() {
    let p = busybox_project(r#"image("s", from("rootfs:busybox.tar").run("no-such-command --flag"));"#);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("`run` failed with exit code 127: no-such-command --flag"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("no-such-command: not found"), "{}", r.stderr);
}

#[test]
fn a_secret_that_invalidates_reruns_its_step_when_it_changes_and_stays_in_the_store() {
    use std::os::unix::fs::PermissionsExt;
    let registry = Registry::start();
    let cache = format!("{}/team/cache", registry.addr);
    let p = busybox_project(
        r#"image("s", from("rootfs:busybox.tar")
            .run("wc -c < /run/secrets/tok > /len", #{ secrets: [#{ id: "tok", file: "tok.txt", invalidate: true }] })
            .run("cat /run/secrets/other > /dev/null; date +%s%N > /stamp", #{ secrets: [#{ id: "other", file: "other.txt" }] }));"#,
    );
    p.write("tok.txt", "first-secret-value");
    p.write("other.txt", "other-secret-value");
    let first = p.ok(&["build", "--cache-to", &cache, "--progress", "plain"]);
    assert_eq!(first.stderr.matches("DONE    run(").count(), 2, "{}", first.stderr);

    // Unchanged: both cached.
    let again = p.ok(&["build", "--progress", "plain"]);
    assert!(!again.stderr.contains("DONE    run("), "{}", again.stderr);

    // The other secret changes: nothing re-runs (it does not invalidate).
    p.write("other.txt", "changed-other-value");
    let other = p.ok(&["build", "--progress", "plain"]);
    assert!(!other.stderr.contains("DONE    run("), "{}", other.stderr);

    // The invalidating secret changes: its step re-runs (and the one after it).
    p.write("tok.txt", "second-secret-value!");
    let changed = p.ok(&["build", "--progress", "plain"]);
    assert!(
        changed
            .stderr
            .contains("DONE    run(\"wc -c < /run/secrets/tok > /len\""),
        "{}",
        changed.stderr
    );
    let explain = p.ok(&["explain", "s"]).stdout;
    assert!(explain.contains("the value of secret `tok` changed"), "{explain}");
    let bundle = unpack_image(&p, "s");
    assert_eq!(
        fs::read_to_string(bundle.path().join("b/rootfs/len")).unwrap().trim(),
        "20"
    );

    // The HMAC key: 32 bytes, 0600, in the store and nowhere else.
    let key_file = p.store.path().join("secret.key");
    let key = fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    p.ok(&["build", "--cache-to", &cache]);
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    for needle in [
        &key[..],
        key_hex.as_bytes(),
        b"second-secret-value",
        b"first-secret-value",
    ] {
        assert_eq!(
            files_containing(&registry.storage(), needle),
            Vec::<std::path::PathBuf>::new()
        );
    }
    // The values reach no file of the store but the key itself.
    for needle in [
        &b"second-secret-value"[..],
        b"first-secret-value",
        b"changed-other-value",
    ] {
        assert_eq!(
            files_containing(p.store.path(), needle),
            Vec::<std::path::PathBuf>::new()
        );
    }
    assert_eq!(files_containing(p.store.path(), &key), vec![key_file]);

    // Without the file, planning still works (`graph`); the step says what is missing.
    fs::remove_file(p.path("tok.txt")).unwrap();
    p.ok(&["graph"]);
    let r = p.run(&["build"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("secret `tok`: cannot read"), "{}", r.stderr);
}

/// Runs `strata ARGS` on a pseudo-terminal (`script`), typing each line
/// of `input` once the terminal shows one more shell prompt (`$ `, `# `) than
/// before it; returns the exit code and what the terminal showed.
pub fn on_terminal(p: &Project, args: &str, input: &[&[u8]]) -> (i32, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_strata"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.dir.path())
        .env("STRATA_HOME", p.store.path())
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) is installed");
    let shown = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let shown = Arc::clone(&shown);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = |shown: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&shown.lock().unwrap()).replace('\r', "");
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished = None;
    for (i, line) in input.iter().enumerate() {
        while text(&shown).matches("$ ").count() + text(&shown).matches("# ").count() <= i {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            assert!(Instant::now() < deadline, "no prompt {} in:\n{}", i + 1, text(&shown));
            std::thread::sleep(Duration::from_millis(50));
        }
        if finished.is_some() {
            break;
        }
        stdin.write_all(line).unwrap();
        stdin.flush().unwrap();
    }
    let status = loop {
        if let Some(status) = finished.or_else(|| child.try_wait().unwrap()) {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("strata {args} did not finish on its terminal:\n{}", text(&shown));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    reader.join().unwrap();
    (status.code().unwrap_or(-1), text(&shown))
}

const DEBUGGED: &str = r#"let s = from("rootfs:busybox.tar")
    .env("FOO", "bar")
    .workdir("/work")
    .run("echo prepared > /prepared")
    .user("nobody")
    .run(`echo ran-$FOO; exit ${arg("code", "3")}`, #{ cache: ["/cache"] });
image("s", s);"#;

#[test]
fn debug_opens_a_shell_in_the_failed_steps_sandbox_with_its_command_in_the_history() {
    // A base whose shell is bash, which reads the command from $HISTFILE.
    let p = busybox_project(&DEBUGGED.replace(".env(\"FOO\"", ".copy(ctx(\"bash/\"), \"/\").env(\"FOO\""));
    host_bash_into(&p.path("bash"));
    let (code, shown) = on_terminal(
        &p,
        "build --debug",
        &[
            b"echo \"user=$(id -u) pwd=$(pwd) foo=$FOO\"; ls -d /cache; cat /prepared; echo changed > /tmp/junk\n",
            b"export FOO=fromshell\n",
            // Up three times: past the two lines typed, to the step's
            // command (first in the history); it exits the shell.
            b"\x1b[A\x1b[A\x1b[A\n",
        ],
    );
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("DEBUG   strata.rhai:6:6: `run` failed with exit code 3"),
        "{shown}"
    );
    assert!(
        shown.contains("DEBUG   a shell (/bin/bash) in the step's sandbox"),
        "{shown}"
    );
    assert!(shown.contains("DEBUG       echo ran-$FOO; exit 3\n"), "{shown}");
    // Its user, workdir, env, mounts and parent state.
    assert!(
        shown.contains("\nuser=65534 pwd=/work foo=bar\n/cache\nprepared\n"),
        "{shown}"
    );
    // The recalled command ran in the shell (the step itself said ran-bar).
    assert!(shown.contains("\nran-fromshell\n"), "{shown}");
    assert!(
        shown.contains("DEBUG   strata.rhai:6:6: the shell exited; its changes are gone"),
        "{shown}"
    );
    assert!(
        shown.contains("`run` failed with exit code 3: echo ran-$FOO; exit 3"),
        "{shown}"
    );
}

#[test]
fn debug_before_stops_ahead_of_a_step_and_throws_the_shells_changes_away() {
    let p = busybox_project(DEBUGGED);
    let (code, shown) = on_terminal(
        &p,
        "build --arg code=0 --debug=before:strata.rhai:4",
        &[b"test -e /prepared && echo has-prepared || echo no-prepared; echo junk > /junk; exit\n"],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("DEBUG   strata.rhai:4:6: stopped before it runs"),
        "{shown}"
    );
    assert!(shown.contains("\nno-prepared\n"), "{shown}");
    // Only that step stopped; both ran; the shell's file is in no layer.
    assert_eq!(shown.matches("DEBUG   strata.rhai:").count(), 2, "{shown}");
    assert!(shown.contains("DEBUG       echo prepared > /prepared\n"), "{shown}");
    let oci = p.path("oci");
    p.ok(&["build", "--arg", "code=0", "-o", &format!("oci:{}", oci.display())]);
    let bundle = umoci_unpack(&oci, "s");
    let root = bundle.path().join("b/rootfs");
    assert_eq!(fs::read_to_string(root.join("prepared")).unwrap(), "prepared\n");
    assert!(!root.join("junk").exists());

    // Without a terminal, --debug refuses and says how to get one.
    let refused = p.run(&["build", "--debug"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("--debug opens a shell on this terminal, and standard input or error is not one"),
        "{}",
        refused.stderr
    );
    let bad = p.run(&["build", "--debug=after"]);
    assert!(bad.stderr.contains("`after`: --debug takes nothing"), "{}", bad.stderr);
}
