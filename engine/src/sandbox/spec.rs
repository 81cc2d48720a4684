//! What the engine hands the sandbox process: plain, serialisable data.
//! Secret *values* never appear here: a file secret is bind-mounted from its
//! host path, an environment secret is read by the sandbox from its own
//! environment and written to a tmpfs that exists only in its namespace.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One extra mount inside the sandbox. `target` is an absolute path inside
/// the image, already resolved through the image's symlinks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// A host directory or file.
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A read-only view of another state: its layers stacked, then `subpath` of it.
    Layers {
        lowers: Vec<PathBuf>,
        subpath: String,
        target: String,
    },
    /// An empty tmpfs.
    Tmpfs { target: String, size: Option<u64> },
    /// A secret taken from the sandbox's environment variable `var`.
    SecretEnv {
        var: String,
        target: String,
        access: SecretAccess,
    },
    /// A secret read from the host file `source`.
    SecretFile {
        source: PathBuf,
        target: String,
        access: SecretAccess,
    },
}

/// A secret file's mode and owner inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretAccess {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl MountSpec {
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Layers { target, .. }
            | MountSpec::Tmpfs { target, .. }
            | MountSpec::SecretEnv { target, .. }
            | MountSpec::SecretFile { target, .. } => target,
        }
    }
}

/// Everything a RUN needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Unpacked layers of the parent state, bottom first (may be empty).
    pub lowers: Vec<PathBuf>,
    /// The step's scratch directory: holds `upper/`, `work/`, `merged/`, `l/`.
    pub dir: PathBuf,
    pub argv: Vec<String>,
    /// `NAME=value` strings.
    pub env: Vec<String>,
    /// Working directory inside the image (created if missing).
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Share the host's network namespace (else only `lo`).
    pub network_host: bool,
    pub hostname: String,
    pub mounts: Vec<MountSpec>,
    /// Mount sysfs read-only at /sys (only when the image has /sys).
    pub sysfs: bool,
    /// `strata run` on a terminal: Ctrl-C belongs to the command (the
    /// terminal delivers it), not to the sandbox, which would kill it.
    #[serde(default)]
    pub interactive: bool,
    /// `security: "insecure"` allowed with `--allow insecure`: the step keeps
    /// every capability, sees all of /proc and /sys, and has no seccomp filter.
    #[serde(default)]
    pub insecure: bool,
    /// In strata's user namespace (rootless mode): overlay keeps its
    /// markers in `user.*` xattrs, device nodes are bound from the host's
    /// /dev, and a step on the host network gets the host's /sys read-only.
    #[serde(default)]
    pub rootless: bool,
}

impl Spec {
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

/// Exit status the sandbox uses when setting up failed (the message is its
/// last line of output, prefixed with [`SETUP_PREFIX`]).
pub const SETUP_FAILED: i32 = 125;
/// Exit status when the command could not be executed.
pub const EXEC_FAILED: i32 = 127;
/// Prefix of the sandbox's own error lines.
pub const SETUP_PREFIX: &str = "strata sandbox: ";

/// The overlay mount options for `lowers` given as short relative names
/// (`lowers[0]` is the bottom layer; overlay wants the top first). With no
/// lower layer, `empty` stands in (overlay needs at least one).
pub fn overlay_options(lower_names: &[String], upper: &str, work: &str) -> String {
    let lowers: Vec<&str> = lower_names.iter().rev().map(String::as_str).collect();
    format!(
        "lowerdir={},upperdir={upper},workdir={work},index=off,redirect_dir=off,metacopy=off",
        lowers.join(":")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_put_the_top_layer_first_and_disable_redirects() {
        let names: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        assert_eq!(
            overlay_options(&names, "/s/upper", "/s/work"),
            "lowerdir=2:1:0,upperdir=/s/upper,workdir=/s/work,index=off,redirect_dir=off,metacopy=off"
        );
    }

    #[test]
    fn three_hundred_layers_fit_in_one_page_of_options() {
        let names: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let opts = overlay_options(
            &names,
            "/root/.local/share/strata/tmp/123-abcdef/tXXXXXX/upper",
            "/root/.local/share/strata/tmp/123-abcdef/tXXXXXX/work",
        );
        assert!(opts.len() < 4096, "{}", opts.len());
    }
}
