//! The Dockerfile frontend: `strata build -f Dockerfile` and `strata
//! convert`, run as a user would.

use std::fs;

use crate::common::*;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG VERSION=1.0
FROM rootfs:busybox.tar AS base
ARG VERSION
ENV APP_HOME=/opt/app \
    GREETING="hello world"
WORKDIR $APP_HOME
COPY hello.txt ./
RUN <<EOF
echo "v$VERSION" > /opt/app/version
echo $GREETING >> /opt/app/version
EOF

FROM base AS build
RUN --mount=type=cache,target=/root/.cache,id=df-test mkdir -p /out && cp /opt/app/version /out/v && echo ${VERSION:-none} > /out/x

FROM scratch
ARG VERSION
COPY --from=build /out/ /
COPY --from=base --chmod=0755 /bin/busybox /bin/busybox
LABEL org.opencontainers.image.version=${VERSION} maintainer="strata tests"
EXPOSE 8080 53/udp
USER 65534:65534
WORKDIR /
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD ["/bin/busybox", "true"]
ONBUILD RUN echo built on
ENTRYPOINT ["/bin/busybox"]
SHELL ["/bin/busybox", "sh", "-c"]
CMD cat /v
"#;

fn project() -> Project {
    let p = busybox_project("");
    fs::remove_file(p.path("strata.rhai")).unwrap();
    p.write("Dockerfile", DOCKERFILE);
    p.write("hello.txt", "hello\n");
    p
}

#[test]
fn a_multi_stage_dockerfile_builds_and_its_conversion_gives_the_same_image() {
    let p = project();
    let built = p.ok(&["build", "-f", "Dockerfile", "--build-arg", "VERSION=2.5"]);
    let digest = digest_of(&built.stdout, "stage2");
    assert!(built.stderr.contains("(Dockerfile:9:1)"), "{}", built.stderr);
    let out = p.ok(&["run", "stage2"]).stdout;
    assert_eq!(out, "v2.5\nhello world\n");
    // The build arg is not in the `build` stage's scope: the shell's default.
    assert_eq!(p.ok(&["run", "stage2", "--", "cat", "/x"]).stdout, "none\n");
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "stage2"]).stdout).unwrap();
    let config = &inspect["config"]["config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(config["Cmd"], serde_json::json!(["/bin/busybox", "sh", "-c", "cat /v"]));
    assert_eq!(config["Shell"], serde_json::json!(["/bin/busybox", "sh", "-c"]));
    assert_eq!(config["OnBuild"], serde_json::json!(["RUN echo built on"]));
    assert_eq!(
        config["Healthcheck"],
        serde_json::json!({"Test": ["CMD", "/bin/busybox", "true"], "Interval": 30_000_000_000u64, "Timeout": 3_000_000_000u64, "Retries": 2})
    );
    assert_eq!(config["User"], "65534:65534");
    assert_eq!(config["WorkingDir"], "/");
    assert_eq!(
        config["Labels"],
        serde_json::json!({"org.opencontainers.image.version": "2.5", "maintainer": "strata tests"})
    );
    assert!(config["ExposedPorts"]["8080/tcp"].is_object() && config["ExposedPorts"]["53/udp"].is_object());
    // As BuildKit's empty image: the default PATH.
    assert_eq!(
        config["Env"],
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );

    // `strata convert` prints the recipe that builds the same image.
    let recipe = p.ok(&["convert"]).stdout;
    assert!(recipe.contains("let version = arg(\"VERSION\", \"1.0\");"), "{recipe}");
    assert!(recipe.contains(".copy(build.path(\"/out/\"), \"/\")"), "{recipe}");
    p.write("strata.rhai", &recipe);
    let again = p.ok(&["build", "--arg", "VERSION=2.5"]);
    assert_eq!(digest_of(&again.stdout, "stage2"), digest);
    assert!(again.stderr.contains("0 built"), "{}", again.stderr);

    // --target builds a stage other stages use.
    let target = p.ok(&["build", "-f", "Dockerfile", "--target", "build"]);
    digest_of(&target.stdout, "build");
    assert_eq!(
        p.ok(&["run", "build", "--", "cat", "/out/v"]).stdout,
        "v1.0\nhello world\n"
    );
}

#[test]
fn dockerfile_errors_name_their_line() {
    let p = project();
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\n\nADD git@github.com:x/y.git /y\n",
    );
    let r = p.run(&["build", "-f", "Dockerfile"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Dockerfile:3:1: ADD of a git repository (`git@github.com:x/y.git`) is not supported yet"),
        "{}",
        r.stderr
    );

    p.write("build.Dockerfile", "FROM rootfs:busybox.tar\nRUN true\nRUN exit 3\n");
    let r = p.run(&["build", "-f", "build.Dockerfile"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("build.Dockerfile:3:1: `run` failed with exit code 3: exit 3"),
        "{}",
        r.stderr
    );

    // Any name, with --frontend.
    p.write(
        "recipe.txt",
        "FROM rootfs:busybox.tar\nCOPY --chown=nosuch hello.txt /\n",
    );
    let r = p.run(&["build", "-f", "recipe.txt", "--frontend", "dockerfile"]);
    assert!(
        r.stderr
            .contains("recipe.txt:2:1: chown: user `nosuch` is not in the image's /etc/passwd"),
        "{}",
        r.stderr
    );
    let r = p.run(&["build", "--target", "x"]);
    assert!(
        r.stderr
            .contains("--target x: --target picks a Dockerfile's stage; a recipe's targets are named as arguments"),
        "{}",
        r.stderr
    );
}

#[test]
fn env_can_read_the_base_images_environment() {
    let p = busybox_project(
        r#"
let base = from("rootfs:busybox.tar").env("PATH", "/usr/bin:/bin");
image("x", base.env("PATH", "/opt/bin:${PATH}", #{ expand: true }).env("COST", "$$5", #{ expand: true }));
"#,
    );
    p.ok(&["build"]);
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "x"]).stdout).unwrap();
    assert_eq!(
        inspect["config"]["config"]["Env"],
        serde_json::json!(["PATH=/opt/bin:/usr/bin:/bin", "COST=$5"])
    );
}

#[test]
fn copy_takes_wildcards_parents_and_exclusions_from_the_context() {
    let p = project();
    p.write("services/api/package.json", "{\"name\": \"api\"}\n");
    p.write("services/web/package.json", "{\"name\": \"web\"}\n");
    p.write("services/web/README.md", "web\n");
    p.write("services/web/src/main.js", "main\n");
    p.write(
        "Dockerfile",
        "FROM scratch\nCOPY --parents services/*/package.json /deps/\nCOPY --exclude=**/*.md --exclude=web/src services /all/\nCOPY services/w*/package.json /one.json\n",
    );
    let layout = p.path("out");
    p.ok(&["build", "-f", "Dockerfile", "-o", &format!("oci:{}", layout.display())]);
    let bundle = umoci_unpack(&layout, "stage0");
    let root = bundle.path().join("b/rootfs");
    let mut files: Vec<String> = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path().strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            "all/api/package.json",
            "all/web/package.json",
            "deps/services/api/package.json",
            "deps/services/web/package.json",
            "one.json"
        ]
    );
    assert_eq!(
        fs::read_to_string(root.join("one.json")).unwrap(),
        "{\"name\": \"web\"}\n"
    );
}

#[test]
fn secrets_come_from_the_command_line_and_never_reach_the_image() {
    let p = project();
    p.write("token.txt", "s3cret-value\n");
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nRUN --mount=type=secret,id=tok,mode=0440 if [ -f /run/secrets/tok ]; then stat -c %a /run/secrets/tok > /had; else echo none > /had; fi\n",
    );
    // Not given: the step runs without it (BuildKit's default).
    p.ok(&["build", "-f", "Dockerfile"]);
    assert_eq!(p.ok(&["run", "stage0", "--", "cat", "/had"]).stdout, "none\n");
    let given = p.ok(&[
        "build",
        "-f",
        "Dockerfile",
        "--no-cache",
        "--secret",
        "id=tok,src=token.txt",
    ]);
    assert!(!given.stderr.contains("s3cret-value"), "{}", given.stderr);
    assert_eq!(p.ok(&["run", "stage0", "--", "cat", "/had"]).stdout, "440\n");
    let layout = p.path("oci");
    p.ok(&["build", "-f", "Dockerfile", "-o", &format!("oci:{}", layout.display())]);
    let bundle = umoci_unpack(&layout, "stage0");
    assert!(!bundle.path().join("b/rootfs/run/secrets/tok").exists());

    // Required, or named by a recipe: missing is an error that says how to give it.
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nRUN --mount=type=secret,id=tok,required=true true\n",
    );
    let r = p.run(&["build", "-f", "Dockerfile"]);
    assert!(
        r.stderr.contains("Dockerfile:2:1: secret `tok` is not given: pass `--secret id=tok,src=FILE` (or `env=VARIABLE`) to strata build"),
        "{}",
        r.stderr
    );
    p.write(
        "strata.rhai",
        r#"image("r", from("rootfs:busybox.tar").run("cat /run/secrets/tok > /dev/null", #{ secrets: [#{ id: "tok" }] }));"#,
    );
    assert!(p.run(&["build"]).stderr.contains("secret `tok` is not given"));
    let given = p
        .cmd(&["build", "--secret", "id=tok,env=STRATA_TEST_TOKEN"])
        .env("STRATA_TEST_TOKEN", "from-env")
        .output()
        .unwrap();
    assert!(given.status.success(), "{}", String::from_utf8_lossy(&given.stderr));
}

#[test]
fn fetched_files_are_verified_pinned_in_the_lock_and_kept() {
    let files = tempfile::tempdir().unwrap();
    fs::write(files.path().join("tool.txt"), "tool v1\n").unwrap();
    let server = DebianMirror::serve(files.path());
    let url = format!("{}/tool.txt", server.url);
    let sha = tool("sha256sum", &[files.path().join("tool.txt").to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let p = project();
    p.write(
        "Dockerfile",
        &format!("FROM rootfs:busybox.tar\nADD --checksum=sha256:{sha} {url} /opt/\nADD {url} /pinned.txt\n"),
    );
    p.ok(&["build", "-f", "Dockerfile"]);
    let out = p.ok(&[
        "run",
        "stage0",
        "--",
        "sh",
        "-c",
        "cat /opt/tool.txt; stat -c %a /opt/tool.txt /pinned.txt",
    ]);
    assert_eq!(out.stdout, "tool v1\n600\n600\n");
    // The URL without a checksum is pinned in strata.lock.
    let lock: serde_json::Value = serde_json::from_str(&fs::read_to_string(p.path("strata.lock")).unwrap()).unwrap();
    assert_eq!(lock["urls"][&url], format!("sha256:{sha}"));

    // A checksum the download does not match stops the build.
    let wrong = "0".repeat(64);
    p.write(
        "bad.Dockerfile",
        &format!("FROM rootfs:busybox.tar\nADD --checksum=sha256:{wrong} {url} /x\n"),
    );
    let r = p.run(&["build", "-f", "bad.Dockerfile"]);
    assert!(
        r.stderr.contains(&format!(
            "bad.Dockerfile:2:1: fetch `{url}`: the download hashes to sha256:{sha}, the recipe says sha256:{wrong}"
        )),
        "{}",
        r.stderr
    );

    // With the server gone, the store's copy and the lock still build.
    drop(server);
    p.ok(&["build", "-f", "Dockerfile", "--no-cache"]);
}

#[test]
fn a_dockerfiles_own_dockerignore_replaces_the_contexts() {
    let p = project();
    p.write(".dockerignore", "a.txt\n");
    p.write("a.txt", "a\n");
    p.write("b.txt", "b\n");
    p.write("app.Dockerfile", "FROM rootfs:busybox.tar\nCOPY *.txt /ctx/\n");
    p.write("app.Dockerfile.dockerignore", "b.txt\n");
    let built = p.ok(&["build", "-f", "app.Dockerfile"]);
    assert!(!built.stderr.contains("warning"), "{}", built.stderr);
    let out = p.ok(&["run", "stage0", "--", "ls", "/ctx"]).stdout;
    assert_eq!(out, "a.txt\nhello.txt\n");
    let r = p.ok(&["convert", "app.Dockerfile"]);
    assert!(
        r.stderr
            .contains("app.Dockerfile.dockerignore applies to `strata build -f app.Dockerfile`"),
        "{}",
        r.stderr
    );
}

#[test]
fn copy_heredocs_become_files() {
    let p = project();
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nARG WHAT=heredoc\nCOPY --chmod=0755 <<EOF /usr/local/bin/hi\n#!/bin/sh\necho hi from a ${WHAT}\nEOF\nCOPY <<A <<B /etc/notes/\none\nA\ntwo\nB\n",
    );
    p.ok(&["build", "-f", "Dockerfile"]);
    let other = p.ok(&["build", "-f", "Dockerfile", "--build-arg", "WHAT=build arg"]);
    // The changed file and the copies after it.
    assert!(other.stderr.contains("3 built, 1 cached"), "{}", other.stderr);
    assert_eq!(p.ok(&["run", "stage0", "--", "hi"]).stdout, "hi from a build arg\n");
    p.ok(&["build", "-f", "Dockerfile"]);
    let out = p.ok(&[
        "run",
        "stage0",
        "--",
        "sh",
        "-c",
        "hi; cat /etc/notes/A /etc/notes/B; stat -c %a /usr/local/bin/hi /etc/notes/A",
    ]);
    assert_eq!(out.stdout, "hi from a heredoc\none\ntwo\n755\n644\n");
}

#[test]
fn a_base_images_onbuild_triggers_run_in_the_dockerfile_that_uses_it() {
    let registry = Registry::start();
    let producer = busybox_project("");
    fs::remove_file(producer.path("strata.rhai")).unwrap();
    producer.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nONBUILD COPY app.txt /app/\nONBUILD RUN cat /app/app.txt > /app/seen\nONBUILD ENV TRIGGERED=yes\n",
    );
    let base = format!("{}/team/onbuild:1", registry.addr);
    producer.ok(&["build", "-f", "Dockerfile", "--push", &base]);

    let p = Project::new();
    p.write("Dockerfile", &format!("FROM {base}\nRUN echo own > /own\n"));
    p.write("app.txt", "from the child's context\n");
    let built = p.ok(&["build", "-f", "Dockerfile"]);
    let digest = digest_of(&built.stdout, "stage0");
    assert_eq!(
        p.ok(&["run", "stage0", "--", "cat", "/app/seen"]).stdout,
        "from the child's context\n"
    );
    let inspect: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "stage0"]).stdout).unwrap();
    let config = &inspect["config"]["config"];
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("TRIGGERED=yes")),
        "{config}"
    );
    // Triggers are for the direct child only.
    assert!(config.get("OnBuild").is_none_or(|o| o.is_null()), "{config}");

    // The conversion runs them too, and builds the same image.
    let recipe = p.ok(&["convert"]).stdout;
    assert!(
        recipe.contains(".copy(ctx(\"app.txt\"), \"/app/\")") && recipe.contains(".no_onbuild()"),
        "{recipe}"
    );
    p.write("strata.rhai", &recipe);
    assert_eq!(p.build_digest(&[], "stage0"), digest);

    // The base is pinned in strata.lock and its config kept in the store:
    // with the registry gone the Dockerfile still builds.
    drop(registry);
    let again = p.ok(&["build", "-f", "Dockerfile"]);
    assert_eq!(digest_of(&again.stdout, "stage0"), digest);
}

#[test]
fn a_trigger_the_frontend_cannot_run_is_an_error_at_the_from_line() {
    let registry = Registry::start();
    let producer = busybox_project("");
    fs::remove_file(producer.path("strata.rhai")).unwrap();
    producer.write("Dockerfile", "FROM rootfs:busybox.tar\nONBUILD COPY --frm=x a /b\n");
    let base = format!("{}/team/bad-onbuild:1", registry.addr);
    producer.ok(&["build", "-f", "Dockerfile", "--push", &base]);
    let p = Project::new();
    p.write("Dockerfile", &format!("# a comment\nFROM {base}\n"));
    let failed = p.run(&["build", "-f", "Dockerfile"]);
    assert!(
        failed.stderr.contains("Dockerfile:2")
            && failed.stderr.contains(&format!(
                "ONBUILD `COPY --frm=x a /b` of {base}: COPY does not take --frm"
            )),
        "{}",
        failed.stderr
    );
}

#[test]
fn ssh_mounts_reach_the_agent_given_and_nothing_of_it_stays() {
    let agent = SshAgent::start();
    let p = busybox_project("");
    fs::remove_file(p.path("strata.rhai")).unwrap();
    fs::copy(probe_binary(), p.path("probe")).unwrap();
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\n\
         COPY probe /bin/probe\n\
         RUN --mount=type=ssh probe agent > /agent.txt\n\
         RUN --mount=type=ssh,id=deploy,target=/run/deploy.sock,uid=1000,mode=0660 stat -c '%a %u' /run/deploy.sock > /deploy.txt\n\
         RUN --mount=type=ssh,id=absent probe agent > /absent.txt\n",
    );
    let ssh = format!("default={}", agent.socket.display());
    let deploy = format!("deploy={}", agent.socket.display());
    let built = p.ok(&["build", "-f", "Dockerfile", "--ssh", &ssh, "--ssh", &deploy]);
    let digest = digest_of(&built.stdout, "stage0");
    let cat = |path: &str| p.ok(&["run", "stage0", "--", "cat", path]).stdout;
    assert_eq!(cat("/agent.txt"), "agent: 1 identities at /run/buildkit/ssh_agent.0\n");
    assert_eq!(cat("/deploy.txt"), "660 1000\n");
    // Not required and not given: the step runs without it.
    assert_eq!(cat("/absent.txt"), "agent: SSH_AUTH_SOCK is not set\n");
    // As BuildKit: the directories made for the socket stay, the socket does not.
    let listing = p
        .ok(&[
            "run",
            "stage0",
            "--",
            "sh",
            "-c",
            "ls -a /run/buildkit /run/deploy.sock 2>&1; true",
        ])
        .stdout;
    assert_eq!(
        listing,
        "ls: /run/deploy.sock: No such file or directory\n/run/buildkit:\n.\n..\n"
    );

    // The agent's socket is not part of the key: another path to the same
    // agent builds the same image from the cache.
    let link = p.path("other.sock");
    std::os::unix::fs::symlink(&agent.socket, &link).unwrap();
    let again = p.ok(&[
        "build",
        "-f",
        "Dockerfile",
        "--ssh",
        &format!("default={}", link.display()),
        "--ssh",
        &deploy,
    ]);
    assert_eq!(digest_of(&again.stdout, "stage0"), digest);

    // Required and not given: an error that says how to give it.
    p.write(
        "Dockerfile",
        "FROM rootfs:busybox.tar\nRUN --mount=type=ssh,required=true true\n",
    );
    let failed = p.run(&["build", "-f", "Dockerfile"]);
    assert!(
        failed
            .stderr
            .contains("ssh agent `default` is not given: pass `--ssh default`"),
        "{}",
        failed.stderr
    );
    // A recipe names the agent by id.
    p.recipe(
        r#"image("r", from("rootfs:busybox.tar").copy(ctx("probe"), "/bin/probe").run("probe agent > /a", #{ ssh: ["default"] }));"#,
    );
    p.ok(&["build", "--ssh", &ssh]);
    assert_eq!(
        p.ok(&["run", "r", "--", "cat", "/a"]).stdout,
        "agent: 1 identities at /run/buildkit/ssh_agent.0\n"
    );
    // A key file is not an agent.
    let key = p.path("id_ed25519");
    fs::write(&key, "not a socket").unwrap();
    let refused = p.run(&[
        "build",
        "-f",
        "Dockerfile",
        "--ssh",
        &format!("default={}", key.display()),
    ]);
    assert!(
        refused
            .stderr
            .contains("is not a socket; strata forwards an agent, not key files"),
        "{}",
        refused.stderr
    );
}

/// The nodes of `strata graph --format json` as (op, description, key):
/// what the graph is, whatever file it came from.
fn graph_of(p: &Project, file: &str) -> Vec<(String, String, String)> {
    let out = p.ok(&["graph", "--format", "json", "-f", file]).stdout;
    let graph: serde_json::Value = serde_json::from_str(&out).unwrap();
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["op"].as_str().unwrap_or_default().to_string(),
                n["description"].as_str().unwrap_or_default().to_string(),
                n["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn hostile_values_are_data_never_recipe_code() {
    // Each value goes into every instruction that takes a word; each must
    // be built as the literal it is, or refused at its line, and `strata
    // convert` must print a recipe that makes the very same graph.
    let hostile = [
        r#"x"); image("pwn", scratch()); ("#,
        "`${x}`",
        "${ not a var }",
        "}",
        r#"{"pwn".image(Fn("run").curry(1).call(#{secrets:[#{id:"s"}+#{file:"/etc/shadow"}]}));0}"#,
        r#"#{file:"/etc/shadow"}"#,
        "$(id) && echo",
        r"back\slash",
    ];
    for value in hostile {
        let p = project();
        p.write("a.txt", "a");
        // Inside double quotes the Dockerfile escapes `\`, `"` and `$`.
        let quoted = value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$");
        let dockerfile = format!(
            "FROM scratch\nENV E=\"{quoted}\"\nLABEL l=\"{quoted}\"\nCOPY a.txt /dst/\nWORKDIR \"/w{quoted}\"\nUSER \"{quoted}\"\nCMD [\"{}\"]\n",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        );
        p.write("Dockerfile", &dockerfile);
        let direct = graph_of(&p, "Dockerfile");
        let converted = p.ok(&["convert", "Dockerfile"]).stdout;
        p.write("converted.rhai", &converted);
        assert_eq!(graph_of(&p, "converted.rhai"), direct, "{value}:\n{converted}");
        let targets = p.ok(&["build", "-f", "Dockerfile", "--progress", "plain"]);
        assert!(
            !targets.stdout.contains("pwn\t"),
            "{value}: a target was injected: {}",
            targets.stdout
        );
        let inspected: serde_json::Value = serde_json::from_str(&p.ok(&["inspect", "stage0"]).stdout).unwrap();
        let config = &inspected["config"]["config"];
        assert_eq!(config["Labels"]["l"], value, "{value}");
        assert!(
            config["Env"].as_array().unwrap().contains(&format!("E={value}").into()),
            "{config}"
        );
        assert_eq!(config["User"], value);
        assert_eq!(config["Cmd"][0], value);
        assert_eq!(config["WorkingDir"], format!("/w{value}"));
    }
    // A secret mount's uid must be a number: a Rhai expression in its
    // place (the attack that reached a host file) is refused at its line.
    let p = project();
    p.write(
        "Dockerfile",
        "FROM scratch\nRUN --mount=type=secret,id=x,uid={\"pwn\".image(Fn(\"run\"));0} true\n",
    );
    let r = p.run(&["build", "-f", "Dockerfile"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Dockerfile:2:1: RUN --mount=type=secret,uid={\"pwn\".image(Fn(\"run\"));0}: not a number"),
        "{}",
        r.stderr
    );
}
