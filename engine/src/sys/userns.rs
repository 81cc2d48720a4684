//! Rootless mode. An ordinary user's strata enters a user namespace of its
//! own before it does anything else ([`enter`]): the user becomes root
//! there, and the user's subordinate ids from `/etc/subuid` and
//! `/etc/subgid` become ids 1 to N, written by the setuid `newuidmap` and
//! `newgidmap` helpers (the `uidmap` package), as buildah and podman do.
//! Everything strata does after that, and every sandbox it starts, happens
//! inside: files are created with their image owners (on the host, the
//! subordinate ids), overlays are mounted in the sandboxes' own mount
//! namespaces (Linux 5.11 or later), and capabilities reach no further
//! than the namespace.
//!
//! [`rootless`] tells the rest of the engine which mode it is in; overlay
//! keeps its markers in `user.overlay.*` xattrs there (`trusted.*` needs
//! root on the host), and device nodes cannot be created.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;

use nix::unistd::{ForkResult, Gid, Uid};

/// A range of subordinate ids: `start`, `start + 1`, … `start + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// Why strata could not enter its user namespace.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless mode needs subordinate {kind}s for user `{user}` (uid {id}), and {file} has none: add a line `{user}:100000:65536` to {file} (as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`), or run strata as root"
    )]
    NoRange {
        kind: &'static str,
        user: String,
        id: u32,
        file: &'static str,
    },
    #[error(
        "rootless mode needs `{0}` (from the `uidmap` package: `apt-get install uidmap`) to map the user's subordinate ids; it is not on PATH"
    )]
    NoHelper(&'static str),
    #[error("rootless mode: `{tool}` failed: {message}")]
    Helper { tool: String, message: String },
    #[error(
        "rootless mode: cannot create a user namespace: {0} (unprivileged user namespaces may be disabled: see `sysctl user.max_user_namespaces` and `kernel.unprivileged_userns_clone`)"
    )]
    Unshare(io::Error),
    #[error("rootless mode: {0}")]
    Io(String),
}

/// True when this process runs in a user namespace other than the host's
/// (strata's own rootless namespace, inherited by its sandboxes).
pub fn rootless() -> bool {
    static ROOTLESS: OnceLock<bool> = OnceLock::new();
    *ROOTLESS.get_or_init(|| {
        fs::read_to_string("/proc/self/uid_map")
            .map(|map| !is_identity_map(&map))
            .unwrap_or(false)
    })
}

/// The highest id `map` (a `uid_map` or `gid_map`) gives the namespace.
fn highest_id(map: &str) -> Option<u64> {
    map.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            (f.len() == 3 && f[2] > 0).then(|| f[0] + f[2] - 1)
        })
        .max()
}

/// The error for an owner this namespace has no id for (the kernel says
/// only EINVAL): which ids there are, and where more come from.
pub fn unmapped(uid: u32, gid: u32) -> io::Error {
    let highest = |file| {
        fs::read_to_string(file)
            .ok()
            .and_then(|m| highest_id(&m))
            .map_or_else(|| "?".to_string(), |h| h.to_string())
    };
    io::Error::other(format!(
        "{uid}:{gid} is outside the ids of strata's rootless user namespace (uids 0 to {}, gids 0 to {}); a larger range in /etc/subuid and /etc/subgid gives it more",
        highest("/proc/self/uid_map"),
        highest("/proc/self/gid_map")
    ))
}

/// The host's own map: every id to itself.
fn is_identity_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The first range `/etc/subuid`-style `text` gives the user, by name or by id.
pub fn sub_range(text: &str, name: Option<&str>, id: u32) -> Option<Range> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let ours = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let range = Range {
            start: start.trim().parse().ok()?,
            count: count.trim().parse().ok()?,
        };
        (ours && range.count > 0).then_some(range)
    })
}

/// The `uid_map`/`gid_map` lines strata asks for: root in the namespace is
/// the user, ids from 1 up are the subordinate range.
pub fn map_args(id: u32, range: Range) -> Vec<String> {
    [0, id, 1, 1, range.start, range.count]
        .iter()
        .map(u32::to_string)
        .collect()
}

/// The user's subordinate range from `file`.
fn range_of(file: &'static str, kind: &'static str, name: Option<&str>, id: u32) -> Result<Range, RootlessError> {
    let text = fs::read_to_string(file).unwrap_or_default();
    sub_range(&text, name, id).ok_or_else(|| RootlessError::NoRange {
        kind,
        user: name.map(str::to_string).unwrap_or_else(|| id.to_string()),
        id,
        file,
    })
}

/// Moves this process into a new user namespace in which the calling user
/// is root and the user's subordinate ids are 1 to N. Must be called while
/// the process has one thread (the kernel refuses otherwise).
pub fn enter() -> Result<(), RootlessError> {
    let uid = Uid::current().as_raw();
    let gid = Gid::current().as_raw();
    let name = nix::unistd::User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    let uids = range_of("/etc/subuid", "uid", name.as_deref(), uid)?;
    let gids = range_of("/etc/subgid", "gid", name.as_deref(), uid)?;
    let newuidmap = super::find_on_path("newuidmap").ok_or(RootlessError::NoHelper("newuidmap"))?;
    let newgidmap = super::find_on_path("newgidmap").ok_or(RootlessError::NoHelper("newgidmap"))?;

    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RootlessError::Io(format!("pipe: {e}")));
    let (go_read, go_write) = pipe()?;
    let (done_read, done_write) = pipe()?;
    let target = nix::unistd::getpid().as_raw();
    // The helper is forked before the unshare: started from inside the new
    // namespace, the setuid helpers would not be privileged.
    // SAFETY: the process has one thread (the caller's promise).
    match unsafe { nix::unistd::fork() }.map_err(|e| RootlessError::Io(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(go_write);
            drop(done_read);
            let code = map_helper(
                go_read,
                done_write,
                target,
                [(&newuidmap, uid, uids), (&newgidmap, gid, gids)],
            );
            // SAFETY: ends the forked helper without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_read);
            drop(done_write);
            let unshared = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER);
            let mut go = fs::File::from(go_write);
            if unshared.is_ok() {
                let _ = go.write_all(b"g");
            }
            drop(go);
            let mut report = String::new();
            let _ = fs::File::from(done_read).read_to_string(&mut report);
            let _ = nix::sys::wait::waitpid(child, None);
            if let Err(e) = unshared {
                return Err(RootlessError::Unshare(io::Error::from_raw_os_error(e as i32)));
            }
            if let Some((tool, message)) = report.split_once('\n') {
                return Err(RootlessError::Helper {
                    tool: tool.to_string(),
                    message: message.trim().to_string(),
                });
            }
            if report != "ok" {
                return Err(RootlessError::Io(format!(
                    "the id-mapping helper ended early: {report:?}"
                )));
            }
        }
    }
    if !Uid::current().is_root() {
        return Err(RootlessError::Io(
            "the user namespace's map did not make strata root in it".into(),
        ));
    }
    Ok(())
}

/// The forked helper: waits for the parent's unshare, runs the two map
/// helpers for it, and reports `ok` or `TOOL\nwhat it said`.
fn map_helper(go: OwnedFd, done: OwnedFd, target: i32, maps: [(&Path, u32, Range); 2]) -> i32 {
    let mut byte = [0u8; 1];
    if !matches!(fs::File::from(go).read(&mut byte), Ok(1)) {
        return 1;
    }
    let mut done = fs::File::from(done);
    for (tool, id, range) in maps {
        let out = std::process::Command::new(tool)
            .arg(target.to_string())
            .args(map_args(id, range))
            .output();
        let failure = match out {
            Ok(out) if out.status.success() => continue,
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        let _ = write!(done, "{}\n{failure}", tool.display());
        return 1;
    }
    let _ = done.write_all(b"ok");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_range_is_found_by_name_or_by_uid() {
        let text = "# ranges\nalice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            sub_range(text, Some("alice"), 1000),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            sub_range(text, Some("carol"), 1001),
            Some(Range {
                start: 200000,
                count: 1000
            })
        );
        // An empty range is no range.
        assert_eq!(sub_range(text, Some("bob"), 1002), None);
        assert_eq!(sub_range(text, None, 4), None);
    }

    #[test]
    fn root_in_the_namespace_is_the_user_and_the_rest_the_range() {
        let args = map_args(
            1000,
            Range {
                start: 100000,
                count: 65536,
            },
        );
        assert_eq!(args, ["0", "1000", "1", "1", "100000", "65536"]);
    }

    #[test]
    fn only_the_hosts_own_map_is_not_rootless() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map(
            "         0       1000          1\n         1     100000      65536\n"
        ));
    }

    #[test]
    fn the_highest_id_is_the_end_of_the_last_range() {
        assert_eq!(highest_id("0 1000 1\n1 100000 65536\n"), Some(65536));
        assert_eq!(highest_id("0 0 4294967295\n"), Some(4294967294));
        assert_eq!(highest_id(""), None);
    }

    #[test]
    fn a_user_without_ranges_is_told_the_line_to_add() {
        let err = RootlessError::NoRange {
            kind: "uid",
            user: "alice".into(),
            id: 1000,
            file: "/etc/subuid",
        };
        assert_eq!(
            err.to_string(),
            "rootless mode needs subordinate uids for user `alice` (uid 1000), and /etc/subuid has none: add a line `alice:100000:65536` to /etc/subuid (as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice`), or run strata as root"
        );
    }
}
