//! Broken recipes and bad usage: exit code 2 and a message that says what and where.

use crate::common::*;

fn fails_with(recipe: &str, args: &[&str], code: i32, expected: &[&str]) {
    let p = Project::new();
    p.write("present.txt", "here");
    p.recipe(recipe);
    let r = p.run(args);
    assert_eq!(r.code, code, "stderr:\n{}", r.stderr);
    for e in expected {
        assert!(r.stderr.contains(e), "expected `{e}` in:\n{}", r.stderr);
    }
}

#[test]
fn syntax_error_names_file_line_and_column() {
    fails_with(
        "let s = scratch()\nlet t = 1;\n",
        &["build"],
        2,
        &["strata.rhai:2:1", "syntax error"],
    );
}

#[test]
fn unknown_function_is_named() {
    fails_with(
        "let s = scratch();\nlet t = s.kopy(ctx(\"present.txt\"), \"/\");\n",
        &["build"],
        2,
        &["strata.rhai:2:11", "kopy"],
    );
}

#[test]
fn wrong_argument_type_says_what_was_expected() {
    fails_with(
        "let s = scratch();\nimage(\"s\", s.copy(\"present.txt\", \"/x\"));\n",
        &["build"],
        2,
        &[
            "strata.rhai:2:14",
            "expected state.copy(ctx(...) or state.path(...), dst",
        ],
    );
}

#[test]
fn missing_context_file_names_the_copy() {
    fails_with(
        "let s = scratch()\n    .copy(ctx(\"absent.txt\"), \"/x\");\nimage(\"s\", s);\n",
        &["build"],
        2,
        &["strata.rhai:2:6", "`absent.txt` is not in the build context"],
    );
}

#[test]
fn context_paths_cannot_escape() {
    fails_with(
        "image(\"s\", scratch().copy(ctx(\"../etc/passwd\"), \"/x\"));",
        &["build"],
        2,
        &["strata.rhai:1:27", "leaves the build context"],
    );
}

#[test]
fn missing_base_file_is_an_input_error() {
    fails_with(
        "image(\"s\", from(\"rootfs:nope.tar\"));",
        &["build"],
        2,
        &["strata.rhai:1:12", "nope.tar"],
    );
}

#[test]
fn unknown_target_lists_the_known_ones() {
    fails_with(
        "image(\"a\", scratch());",
        &["build", "b"],
        2,
        &["no target named `b`", "a"],
    );
}

#[test]
fn bad_options_are_usage_errors() {
    fails_with(
        "image(\"a\", scratch());",
        &["build", "--output", "tar:x"],
        2,
        &["expected oci:DIR or docker-archive:FILE"],
    );
    fails_with(
        "image(\"a\", scratch());",
        &["build", "--compression", "lz4"],
        2,
        &[
            "invalid value 'lz4' for '--compression <COMPRESSION>'",
            "[possible values: gzip, zstd, zstd-fast]",
        ],
    );
    fails_with(
        "image(\"a\", scratch().copy(ctx(\"present.txt\"), \"/\", #{ mode: 1 }));",
        &["build"],
        2,
        &["unknown option `mode`"],
    );
}

#[test]
fn a_runaway_recipe_is_stopped() {
    fails_with("let i = 0; loop { i += 1; }", &["build"], 2, &["operation limit"]);
}

#[test]
fn chown_to_an_unknown_user_names_the_user() {
    fails_with(
        "image(\"s\", scratch().copy(ctx(\"present.txt\"), \"/x\", #{ chown: \"alice\" }));",
        &["build"],
        2,
        &["strata.rhai:1:22", "alice"],
    );
}
