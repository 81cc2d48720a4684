//! The conversion's own tests: the recipe each Dockerfile prints as.
use super::super::parse::parse;
use super::*;

fn recipe(text: &str) -> String {
    let df = parse(text).unwrap();
    convert(
        &df,
        &Options {
            source_name: "Dockerfile",
            args: None,
            onbuild: None,
            ..Options::default()
        },
    )
    .unwrap()
    .recipe()
    .0
}

fn error(text: &str) -> DockerfileError {
    convert(&parse(text).unwrap(), &Options::default()).unwrap_err()
}

#[test]
fn stages_become_variables_and_copy_from_becomes_path() {
    let r = recipe(
        "FROM debian:bookworm AS build\nRUN make\nFROM scratch\nCOPY --from=build --chown=1:1 /out/app /app\nCMD [\"/app\"]\n",
    );
    assert_eq!(
        r,
        "// Converted from Dockerfile by `strata convert`.\n\nlet build = from(\"debian:bookworm\")\n    .run(\"make\", #{ network: \"host\" });\n\nlet stage1 = scratch()\n    .env(\"PATH\", \"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\")\n    .workdir(\"/\")\n    .copy(build.path(\"/out/app\"), \"/app\", #{ chown: \"1:1\" })\n    .cmd([\"/app\"]);\n\nimage(\"stage1\", stage1);\n"
    );
}

#[test]
fn args_are_recipe_args_and_reach_run_as_environment() {
    let r = recipe("ARG BASE=busybox\nFROM ${BASE}:1.36\nARG MODE=release\nRUN make $MODE\nENV OUT=/out/${MODE}\n");
    assert!(r.contains("let base = arg(\"BASE\", \"busybox\");"), "{r}");
    assert!(r.contains("let mode = arg(\"MODE\", \"release\");"), "{r}");
    assert!(r.contains("from(base + \":1.36\")"), "{r}");
    assert!(
        r.contains(".run(\"make $MODE\", #{ env: #{ MODE: mode }, network: \"host\" })"),
        "{r}"
    );
    assert!(r.contains(".env(\"OUT\", \"/out/\" + mode)"), "{r}");
}

#[test]
fn env_values_substitute_the_dockerfiles_own_variables() {
    // As Docker: the pairs of one ENV read the variables as they were before it.
    let r = recipe("FROM scratch\nENV A=/opt B=\"$A/bin\" C=${A:+set} D=${NOPE:-dflt}\nENV E=$A/lib\nWORKDIR $E\n");
    assert!(
        r.contains(
            ".env(\"A\", \"/opt\")\n    .env(\"B\", \"/bin\")\n    .env(\"C\", \"\")\n    .env(\"D\", \"dflt\")"
        ),
        "{r}"
    );
    assert!(r.contains(".workdir(\"/opt/lib\")"), "{r}");
}

#[test]
fn env_reads_the_base_images_environment_through_the_engine() {
    let r = recipe("FROM debian\nENV PATH=/go/bin:$PATH COST='$5'\n");
    assert!(
        r.contains(
            ".env(\"PATH\", \"/go/bin:${PATH}\", #{ expand: true })\n    .env(\"COST\", \"$$5\", #{ expand: true })"
        ),
        "{r}"
    );
    let r = recipe("FROM debian\nENV A=1\nENV B=$A\nWORKDIR /x/$B\n");
    assert!(
        r.contains(".env(\"B\", \"1\")") && r.contains(".workdir(\"/x/1\")"),
        "{r}"
    );
}

#[test]
fn an_unset_modifier_on_an_arg_is_decided_when_the_recipe_runs() {
    let r = recipe("FROM scratch\nARG V\nLABEL v=${V:-none}\n");
    assert!(
        r.contains(".label(\"v\", (if v == \"\" { \"none\" } else { v }))"),
        "{r}"
    );
}

#[test]
fn shell_form_commands_use_the_shell_and_heredocs_are_scripts() {
    let r = recipe("FROM scratch\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN <<EOF\necho a\nEOF\nCMD run it\n");
    assert!(
        r.contains(".run([\"/bin/bash\", \"-eu\", \"-c\", \"echo a\\n\"], #{ network: \"host\" })"),
        "{r}"
    );
    assert!(r.contains(".cmd([\"/bin/bash\", \"-eu\", \"-c\", \"run it\"])"), "{r}");
    let r = recipe("FROM scratch\nRUN cat > /x <<EOF\nhi\nEOF\n");
    assert!(
        r.contains(".run(\"cat > /x <<EOF\\nhi\\nEOF\", #{ network: \"host\" })"),
        "{r}"
    );
}

#[test]
fn a_parent_stages_onbuild_triggers_run_first_in_its_child() {
    let r =
        recipe("FROM scratch AS parent\nONBUILD COPY a.txt /a.txt\nONBUILD LABEL seen=yes\nFROM parent\nLABEL own=1\n");
    let child = &r[r.find("let stage1").expect("the child stage")..];
    assert_eq!(
        child.lines().take(5).collect::<Vec<_>>(),
        [
            "let stage1 = parent",
            "    .copy(ctx(\"a.txt\"), \"/a.txt\")",
            "    .label(\"seen\", \"yes\")",
            "    .no_onbuild()",
            "    .label(\"own\", \"1\");",
        ],
        "{r}"
    );
}

#[test]
fn a_base_images_onbuild_triggers_are_read_with_the_build_args() {
    let asked = std::cell::RefCell::new(Vec::new());
    let read = |image: &str| -> Result<Vec<String>, String> {
        asked.borrow_mut().push(image.to_string());
        Ok(vec!["RUN make".into(), "ENV BUILT=1".into()])
    };
    let args = BTreeMap::from([("TAG".to_string(), "2.0".to_string())]);
    let df = parse("ARG TAG=1.0\nFROM registry.test/base:${TAG}\nRUN true\n").unwrap();
    let r = convert(
        &df,
        &Options {
            source_name: "Dockerfile",
            args: Some(&args),
            onbuild: Some(&read),
            ..Options::default()
        },
    )
    .unwrap()
    .recipe()
    .0;
    assert_eq!(*asked.borrow(), ["registry.test/base:2.0"]);
    let runs: Vec<&str> = r
        .lines()
        .filter(|l| l.contains(".run(") || l.contains("onbuild"))
        .collect();
    assert_eq!(runs.len(), 3, "{r}");
    assert!(
        runs[0].contains("make") && runs[1].contains("no_onbuild") && runs[2].contains("true"),
        "{r}"
    );
    assert!(r.contains(".env(\"BUILT\", \"1\")"), "{r}");
}

#[test]
fn a_trigger_that_cannot_run_names_the_base_and_the_from_line() {
    let read = |_: &str| -> Result<Vec<String>, String> { Ok(vec!["FROM other".into()]) };
    let e = convert(
        &parse("\nFROM registry.test/base\n").unwrap(),
        &Options {
            onbuild: Some(&read),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(
        e.message,
        "ONBUILD `FROM other` of registry.test/base: ONBUILD cannot take `FROM`"
    );
    let unreadable = |_: &str| -> Result<Vec<String>, String> { Err("registry down".into()) };
    let e = convert(
        &parse("FROM registry.test/base\n").unwrap(),
        &Options {
            onbuild: Some(&unreadable),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.message, "FROM registry.test/base: registry down");
}

#[test]
fn healthcheck_shell_and_onbuild_are_configuration() {
    let r = recipe(
        "FROM scratch\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\nSHELL [\"/bin/ash\", \"-c\"]\nONBUILD RUN make\nFROM scratch\nHEALTHCHECK NONE\nHEALTHCHECK CMD [\"/bin/check\"]\n",
    );
    assert!(
        r.contains(".healthcheck(\"curl -f http://localhost/\", #{ interval: \"5s\", retries: 3 })"),
        "{r}"
    );
    assert!(
        r.contains(".shell([\"/bin/ash\", \"-c\"])") && r.contains(".onbuild(\"RUN make\")"),
        "{r}"
    );
    assert!(
        r.contains(".no_healthcheck()") && r.contains(".healthcheck([\"/bin/check\"])"),
        "{r}"
    );
}

#[test]
fn copy_wildcards_parents_and_exclude() {
    let r = recipe("FROM scratch\nCOPY --parents --exclude=*.md --exclude=tests svc/*/pkg.json /app/\n");
    assert!(
        r.contains(".copy(ctx(\"svc/*/pkg.json\"), \"/app/\", #{ parents: true, exclude: [\"*.md\", \"tests\"] })"),
        "{r}"
    );
}

#[test]
fn an_arg_in_from_may_name_a_stage() {
    let r = recipe("ARG STAGE=a\nFROM scratch AS a\nFROM scratch AS b\nFROM ${STAGE}\n");
    assert!(
        r.contains("let stage2 = (if (stage).to_lower() == \"a\" { a } else if (stage).to_lower() == \"b\" { b } else { from(stage) });"),
        "{r}"
    );
    assert!(
        r.contains("image(\"stage2\", stage2);") && !r.contains("image(\"a\""),
        "{r}"
    );
}

#[test]
fn secret_mounts_are_given_by_the_command_line() {
    let r = recipe("FROM scratch\nRUN --mount=type=secret,id=npm,target=/root/.npmrc,mode=0440 --mount=type=secret,id=tok,required=true true\n");
    assert!(
        r.contains(".run(\"true\", #{ network: \"host\", secrets: [#{ id: \"npm\", target: \"/root/.npmrc\", mode: \"0440\", required: false }, #{ id: \"tok\", required: true }], keep_mount_points: true })"),
        "{r}"
    );
}

#[test]
fn from_platform_is_read_with_the_args() {
    let r = recipe("ARG ARCH=arm64\nFROM --platform=linux/${ARCH} scratch\nFROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH\n");
    assert!(r.contains("scratch(#{ platform: \"linux/arm64\" })"), "{r}");
    assert!(r.contains("from(\"busybox\", #{ platform: \"build\" })"), "{r}");
    assert!(r.contains("env: #{ TARGETARCH: target_platform().arch }"), "{r}");
    let e = error("ARG ARCH\nFROM --platform=linux/${ARCH}/x/y scratch\n");
    assert_eq!(e.line, 2);
    assert!(
        e.message.starts_with("FROM --platform: `linux//x/y` is not a platform"),
        "{}",
        e.message
    );
}

#[test]
fn ssh_mounts_reach_the_agents_the_command_line_gives() {
    let r = recipe("FROM scratch\nRUN --mount=type=ssh --mount=type=ssh,id=deploy,target=/run/deploy.sock,mode=0666,uid=1000,required ssh-add -l\n");
    assert!(
        r.contains(".run(\"ssh-add -l\", #{ network: \"host\", ssh: [#{ id: \"default\", required: false }, #{ id: \"deploy\", target: \"/run/deploy.sock\", mode: \"0666\", uid: 1000, required: true }], keep_mount_points: true })"),
        "{r}"
    );
}

#[test]
fn tmpfs_and_context_bind_mounts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
    let df = parse("FROM scratch\nWORKDIR /app\nRUN --mount=type=tmpfs,target=/tmp,size=64m --mount=type=bind,source=go.mod,target=go.mod --mount=type=bind,source=src,target=/s --mount=type=bind,target=/all true\n").unwrap();
    let r = convert(
        &df,
        &Options {
            context: Some(dir.path()),
            ..Options::default()
        },
    )
    .unwrap()
    .recipe()
    .0;
    assert!(
        r.contains("mounts: [#{ source: scratch().copy(ctx(\"go.mod\"), \"/go.mod\").path(\"/go.mod\"), target: \"/app/go.mod\" }, #{ source: scratch().copy(ctx(\"src\"), \"/\").path(\"/\"), target: \"/s\" }, #{ source: scratch().copy(ctx(\".\"), \"/\").path(\"/\"), target: \"/all\" }], tmpfs: [#{ target: \"/tmp\", size: \"64m\" }], keep_mount_points: true"),
        "{r}"
    );
}

#[test]
fn add_of_a_url_is_a_fetch() {
    let r = recipe(&format!(
        "FROM scratch\nADD --checksum=sha256:{} https://example.org/tool.tgz /opt/\nADD http://example.org/a.txt local.txt /both/\n",
        "ab".repeat(32)
    ));
    assert!(
        r.contains(&format!(
            ".copy(fetch(\"https://example.org/tool.tgz\", #{{ sha256: \"{}\" }}), \"/opt/\")",
            "ab".repeat(32)
        )),
        "{r}"
    );
    assert!(
        r.contains(".copy(fetch(\"http://example.org/a.txt\"), \"/both/\")"),
        "{r}"
    );
    assert!(
        r.contains(".copy(ctx(\"local.txt\"), \"/both/\", #{ extract: true })"),
        "{r}"
    );
}

#[test]
fn a_dockerfiles_run_has_the_network_unless_it_says_none() {
    let r = recipe("FROM scratch\nRUN --network=none true\nRUN --network=default false\n");
    assert!(
        r.contains(".run(\"true\")\n    .run(\"false\", #{ network: \"host\" })"),
        "{r}"
    );
}

#[test]
fn an_unquoted_copy_heredoc_takes_the_stages_variables() {
    let r = recipe("FROM scratch\nARG NAME=world\nENV GREETING=hello\nCOPY <<EOF <<'RAW' /etc/\n$GREETING \"${NAME}\"\nEOF\n$GREETING\nRAW\n");
    assert!(
        r.contains(".copy(text(\"hello \\\"\" + name + \"\\\"\\n\"), \"/etc/EOF\")\n    .copy(text(\"$GREETING\\n\"), \"/etc/RAW\")"),
        "{r}"
    );
}

#[test]
fn copy_heredocs_are_text_files() {
    let r = recipe("FROM scratch\nCOPY --chmod=0755 <<EOF /usr/local/bin/hi\n#!/bin/sh\necho hi\nEOF\nCOPY <<A <<'B' /etc/\none\nA\n$two\nB\n");
    assert!(
        r.contains(".copy(text(\"#!/bin/sh\\necho hi\\n\"), \"/usr/local/bin/hi\", #{ chmod: \"0755\" })"),
        "{r}"
    );
    assert!(
        r.contains(".copy(text(\"one\\n\"), \"/etc/A\")\n    .copy(text(\"$two\\n\"), \"/etc/B\")"),
        "{r}"
    );
}

#[test]
fn run_mounts_network_and_security() {
    let r = recipe(
        "FROM scratch AS tools\nFROM scratch\nRUN --network=host --security=insecure --mount=type=cache,target=/c,sharing=shared --mount=type=bind,from=tools,source=/bin,target=/t true\n",
    );
    assert!(
        r.contains(".run(\"true\", #{ network: \"host\", security: \"insecure\", cache: [#{ target: \"/c\", sharing: \"shared\" }], mounts: [#{ source: tools.path(\"/bin\"), target: \"/t\" }], keep_mount_points: true })"),
        "{r}"
    );
}

#[test]
fn the_target_stage_is_the_image() {
    let df = parse("FROM scratch AS a\nFROM a AS b\nFROM scratch AS c\n").unwrap();
    let r = convert(
        &df,
        &Options {
            target: Some("a"),
            ..Options::default()
        },
    )
    .unwrap()
    .recipe()
    .0;
    assert!(r.contains("image(\"a\", a);") && !r.contains("image(\"c\""), "{r}");
    // Without one, every stage no other uses.
    let r = recipe("FROM scratch AS a\nFROM a AS b\nFROM scratch AS c\n");
    assert!(
        r.contains("image(\"b\", b);\nimage(\"c\", c);\ngroup(\"default\", [\"c\"]);"),
        "{r}"
    );
}

#[test]
fn what_is_not_supported_yet_is_an_error_at_its_line() {
    let cases = [
        ("FROM scratch\n\nHEALTHCHECK true\n", 3, "HEALTHCHECK takes `CMD command` or `NONE`"),
        ("FROM scratch\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD cannot take `ONBUILD`"),
        ("FROM scratch\nADD git@github.com:x/y.git /y\n", 2, "ADD of a git repository (`git@github.com:x/y.git`) is not supported yet"),
        ("FROM scratch\nCOPY --from=x --exclude=b a /\n", 2, "COPY --from with --exclude is not supported yet"),
        ("FROM scratch\nCOPY --chmod a /\n", 2, "COPY --chmod needs a value"),
        ("FROM scratch\nCOPY --form=x a /\n", 2, "COPY does not take --form"),
        ("FROM scratch\nADD --from=x a /\n", 2, "ADD does not take --from"),
        ("FROM scratch\nRUN --mount=type=ssh,src=/x true\n", 2, "RUN --mount=type=ssh takes no source"),
        ("FROM scratch\nRUN --mount=type=sshh true\n", 2, "RUN --mount=type=sshh is unknown"),
        (
            "FROM debian\nRUN --mount=type=tmpfs,target=rel true\n",
            2,
            "the relative mount target `rel` needs a WORKDIR set by this Dockerfile (or an absolute target)",
        ),
        ("RUN true\n", 1, "RUN before the first FROM"),
        ("FROM scratch\nCOPY --from=3 /a /b\n", 2, "--from=3: no earlier stage 3"),
        (
            "FROM debian\nWORKDIR $HOME\n",
            2,
            "`$HOME` is not set by this Dockerfile; a value from the base image's environment can only be read by a plain `$NAME` in ENV yet",
        ),
    ];
    for (text, line, message) in cases {
        let e = error(text);
        assert_eq!((e.line, e.message.as_str()), (line, message), "{text}");
    }
}
