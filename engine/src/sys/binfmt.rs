//! QEMU user emulation through binfmt_misc: a RUN step for another
//! architecture executes its binaries through the handler the kernel has
//! for their ELF machine. Handlers need the `F` flag (the interpreter is
//! opened when it is registered), so they work inside the sandbox, whose
//! root filesystem does not have the interpreter.

use std::fs;
use std::path::{Path, PathBuf};

use crate::platform::Platform;

/// Where the kernel lists its handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static describes its handlers (systemd's
/// binfmt.d format: `:name:type:offset:magic:mask:interpreter:flags`).
pub const BINFMT_D: &str = "/usr/lib/binfmt.d";

/// A registered handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
}

/// QEMU's name for the machine of a platform (`qemu-aarch64`), `None` for
/// one strata cannot emulate.
pub fn qemu_name(p: &Platform) -> Option<&'static str> {
    Some(match (p.architecture.as_str(), p.variant.as_deref()) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("arm", _) => "arm",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64le",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        ("mips64le", _) => "mips64el",
        _ => return None,
    })
}

/// True when this machine runs the platform's binaries itself.
pub fn is_native(p: &Platform) -> bool {
    let host = Platform::host();
    p.os == host.os
        && (p.architecture == host.architecture || (host.architecture == "amd64" && p.architecture == "386"))
}

/// The handlers the kernel has (none when binfmt_misc is not mounted).
pub fn handlers() -> Vec<Handler> {
    handlers_in(Path::new(BINFMT_DIR))
}

fn handlers_in(dir: &Path) -> Vec<Handler> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Handler> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                return None;
            }
            let text = fs::read_to_string(e.path()).ok()?;
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            Some(Handler {
                enabled: text.lines().next() == Some("enabled"),
                interpreter: field("interpreter"),
                flags: field("flags:"),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Checks that steps for `p` can run here: natively, or through an enabled
/// `qemu-*` handler with the `F` flag. The error says how to get one.
pub fn check(p: &Platform) -> Result<(), String> {
    if is_native(p) {
        return Ok(());
    }
    let Some(qemu) = qemu_name(p) else {
        return Err(format!(
            "steps for {p} cannot run here: strata knows no QEMU emulator for it"
        ));
    };
    let name = format!("qemu-{qemu}");
    let how = "install QEMU's user emulators (Debian: `apt-get install qemu-user-static`) and register them with `strata binfmt --install` (as root)";
    if !Path::new(BINFMT_DIR).join("status").exists() {
        return Err(format!(
            "steps for {p} run under QEMU emulation, and binfmt_misc is not mounted at {BINFMT_DIR}: {how}, which mounts it"
        ));
    }
    match handlers().into_iter().find(|h| h.name == name) {
        None => Err(format!("steps for {p} run under QEMU emulation, and no `{name}` handler is registered: {how}")),
        Some(h) if !h.enabled => Err(format!(
            "steps for {p}: the `{name}` handler is disabled (echo 1 > {BINFMT_DIR}/{name} enables it)"
        )),
        Some(h) if !h.flags.contains('F') => Err(format!(
            "steps for {p}: the `{name}` handler ({}) lacks the F flag, so its interpreter cannot be found inside the sandbox; `strata binfmt --install` registers it again with F",
            h.interpreter
        )),
        Some(_) => Ok(()),
    }
}

/// One line of a binfmt.d file, with the `F` flag added (and `P`, `C`
/// kept as given).
fn with_fix_binary(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if !line.starts_with(':') {
        return None;
    }
    let fields: Vec<&str> = line[1..].split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    let name = fields[0].to_string();
    let mut flags = fields[6].to_string();
    if !flags.contains('F') {
        flags.push('F');
    }
    let mut out = fields[..6].join(":");
    out.insert(0, ':');
    Some((name, format!("{out}:{flags}")))
}

/// Registers every QEMU handler described in `binfmt_d` (Debian's
/// qemu-user-static files) with the `F` flag, replacing one registered
/// without it; mounts binfmt_misc first if needed. Returns the names
/// registered.
pub fn install(binfmt_d: &Path) -> Result<Vec<String>, String> {
    let dir = Path::new(BINFMT_DIR);
    if !dir.join("register").exists() {
        nix::mount::mount(
            Some("binfmt_misc"),
            dir,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount binfmt_misc at {BINFMT_DIR}: {e}"))?;
    }
    let mut files: Vec<PathBuf> = fs::read_dir(binfmt_d)
        .map_err(|e| format!("{}: {e} (is qemu-user-static installed?)", binfmt_d.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu-") && n.to_string_lossy().ends_with(".conf"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "no qemu-*.conf in {}: install QEMU's user emulators (Debian: `apt-get install qemu-user-static`)",
            binfmt_d.display()
        ));
    }
    let existing = handlers();
    let mut registered = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (name, rule) in text.lines().filter_map(with_fix_binary) {
            let interpreter = rule.split(':').nth(6).unwrap_or_default();
            if !Path::new(interpreter).exists() {
                continue;
            }
            match existing.iter().find(|h| h.name == name) {
                Some(h) if h.flags.contains('F') && h.enabled => continue,
                // Replaced: registered without F, or disabled.
                Some(_) => fs::write(dir.join(&name), "-1").map_err(|e| format!("remove handler {name}: {e}"))?,
                None => {}
            }
            fs::write(dir.join("register"), &rule).map_err(|e| format!("register {name}: {e}"))?;
            registered.push(name);
        }
    }
    Ok(registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platforms_name_their_emulators() {
        assert_eq!(qemu_name(&platform("linux/arm64")), Some("aarch64"));
        assert_eq!(qemu_name(&platform("linux/arm/v7")), Some("arm"));
        assert_eq!(qemu_name(&platform("linux/s390x")), Some("s390x"));
        assert_eq!(qemu_name(&platform("linux/sparc")), None);
        assert!(is_native(&Platform::host()));
    }

    #[test]
    fn a_binfmt_d_rule_gets_the_fix_binary_flag() {
        let line = r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POC";
        let (name, rule) = with_fix_binary(line).unwrap();
        assert_eq!(name, "qemu-aarch64");
        assert!(
            rule.ends_with(":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:POCF"),
            "{rule}"
        );
        assert!(with_fix_binary("# a comment").is_none());
    }

    #[test]
    fn handlers_are_read_from_the_kernels_listing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("status"), "enabled\n").unwrap();
        fs::write(dir.path().join("register"), "").unwrap();
        fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\nmagic 7f454c46\nmask ffffffff\n",
        )
        .unwrap();
        assert_eq!(
            handlers_in(dir.path()),
            [Handler {
                name: "qemu-aarch64".into(),
                enabled: true,
                interpreter: "/usr/bin/qemu-aarch64-static".into(),
                flags: "OCF".into(),
            }]
        );
    }
}
