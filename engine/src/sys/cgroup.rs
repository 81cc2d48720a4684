//! Resource limits for one sandbox through cgroups, as runc applies them:
//! a fresh cgroup per sandbox below strata's own (`strata-PID-N`), limits
//! written before any process joins, the sandbox added by writing `0` to
//! `cgroup.procs` between fork and exec (so nothing it starts escapes),
//! and the cgroup removed once its processes are gone.
//!
//! Each controller comes from where the host offers it: the unified (v2)
//! hierarchy when our cgroup there may delegate it, else the v1 hierarchy
//! that has it (this machine: v1 `memory`, `pids`, `cpu`; a v2 mount with
//! none of them). A controller found nowhere, or a cgroup we may not
//! create (rootless without delegation), is reported in [`Cgroup::missing`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a sandbox may use. `None` leaves a resource unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (swap included where the host accounts it).
    pub memory: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// CPU time in thousandths of a CPU (1500 = one and a half CPUs).
    pub cpu_millis: Option<u64>,
}

impl Limits {
    /// Whether these limits ask anything of `controller` (`memory`, `pids`, `cpu`).
    pub fn asks(&self, controller: &str) -> bool {
        match controller {
            "memory" => self.memory.is_some(),
            "pids" => self.pids.is_some(),
            "cpu" => self.cpu_millis.is_some(),
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Where a controller lives: our own cgroup's directory in its hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Home {
    version: Version,
    dir: PathBuf,
}

/// The three controllers strata uses, found from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Homes {
    memory: Option<Home>,
    pids: Option<Home>,
    cpu: Option<Home>,
}

impl Homes {
    /// Makes `home` the home of every controller `has` names (over one
    /// already found only when `replace`).
    fn assign(&mut self, home: &Home, has: impl Fn(&str) -> bool, replace: bool) {
        for (slot, name) in [
            (&mut self.memory, "memory"),
            (&mut self.pids, "pids"),
            (&mut self.cpu, "cpu"),
        ] {
            if has(name) && (replace || slot.is_none()) {
                *slot = Some(home.clone());
            }
        }
    }
}

fn homes() -> Homes {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    find_homes(&mountinfo, &cgroups, &|dir| {
        fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default()
    })
}

/// The homes of the controllers, given the two `/proc` files and a reader
/// of a v2 directory's `cgroup.controllers`.
fn find_homes(mountinfo: &str, cgroups: &str, controllers: &dyn Fn(&Path) -> String) -> Homes {
    // hierarchy id → (controllers, path of our cgroup in it)
    let ours: Vec<(Vec<&str>, &str)> = cgroups
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            let names = f.next()?;
            let path = f.next()?;
            Some((names.split(',').filter(|n| !n.is_empty()).collect(), path))
        })
        .collect();
    let mut homes = Homes::default();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let (root, mount_point) = (left[3], left[4]);
        let (fstype, options) = (right[0], right[2]);
        let place = |path: &str| -> Option<PathBuf> {
            // Our cgroup relative to the mount's root (which is not always `/`).
            let rel = path.strip_prefix(root)?.trim_start_matches('/');
            let mut dir = PathBuf::from(unescape(mount_point));
            if !rel.is_empty() {
                dir.push(rel);
            }
            Some(dir)
        };
        match fstype {
            "cgroup" => {
                let opts: Vec<&str> = options.split(',').collect();
                for (names, path) in &ours {
                    if names.is_empty() || !names.iter().all(|n| opts.contains(n)) {
                        continue;
                    }
                    let Some(dir) = place(path) else { continue };
                    let home = Home {
                        version: Version::V1,
                        dir,
                    };
                    // The first hierarchy that has a controller keeps it.
                    homes.assign(&home, |c| names.contains(&c), false);
                }
            }
            "cgroup2" => {
                let Some((_, path)) = ours.iter().find(|(names, _)| names.is_empty()) else {
                    continue;
                };
                let Some(dir) = place(path) else { continue };
                let available = controllers(&dir);
                let available: Vec<&str> = available.split_whitespace().collect();
                let home = Home {
                    version: Version::V2,
                    dir,
                };
                // A v2 controller wins over v1 (a host has it in one only).
                homes.assign(&home, |c| available.contains(&c), true);
            }
            _ => {}
        }
    }
    homes
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// `512m`, `2g`, `2GiB`, `1.5G`, `1048576` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// One sandbox's cgroups (one per hierarchy), removed when dropped.
pub struct Cgroup {
    limits: Limits,
    /// `(version, directory)` of each cgroup created, memory's first.
    dirs: Vec<(Version, PathBuf)>,
    memory: Option<(Version, PathBuf)>,
    pids: Option<(Version, PathBuf)>,
    /// `cgroup.procs` of each directory, open for the child to write `0`.
    procs: Vec<File>,
    missing: Vec<&'static str>,
}

impl Cgroup {
    /// Creates the cgroups for `limits`. A limit whose controller the host
    /// lacks, or whose cgroup cannot be created, is left out and named in
    /// [`Cgroup::missing`] with the reason.
    pub fn create(limits: Limits) -> Cgroup {
        let name = format!(
            "strata-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        Cgroup::create_in(known_homes(), limits, &name)
    }

    fn create_in(homes: &Homes, limits: Limits, name: &str) -> Cgroup {
        let mut cg = Cgroup {
            limits,
            dirs: Vec::new(),
            memory: None,
            pids: None,
            procs: Vec::new(),
            missing: Vec::new(),
        };
        for (controller, home) in [("memory", &homes.memory), ("pids", &homes.pids), ("cpu", &homes.cpu)] {
            if !limits.asks(controller) {
                continue;
            }
            let Some(home) = home else {
                cg.missing.push(controller);
                continue;
            };
            let dir = home.dir.join(name);
            let made = match cg.dirs.iter().find(|(_, d)| *d == dir) {
                Some(_) => Ok(()),
                None => cg.make(home.version, &home.dir, &dir),
            };
            if made.and_then(|()| cg.limit(controller, home.version, &dir)).is_err() {
                cg.missing.push(controller);
                continue;
            }
            match controller {
                "memory" => cg.memory = Some((home.version, dir)),
                "pids" => cg.pids = Some((home.version, dir)),
                _ => {}
            }
        }
        cg
    }

    fn make(&mut self, version: Version, parent: &Path, dir: &Path) -> io::Result<()> {
        if version == Version::V2 {
            // Let the parent hand the controllers down (allowed when it holds
            // no process itself, as under a delegated systemd scope).
            let subtree = parent.join("cgroup.subtree_control");
            for c in ["+memory", "+pids", "+cpu"] {
                let _ = OpenOptions::new()
                    .write(true)
                    .open(&subtree)
                    .and_then(|mut f| f.write_all(c.as_bytes()));
            }
        }
        fs::create_dir(dir)?;
        self.dirs.push((version, dir.to_path_buf()));
        let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
        self.procs.push(procs);
        Ok(())
    }

    fn limit(&self, controller: &str, version: Version, dir: &Path) -> io::Result<()> {
        let write = |file: &str, value: String| fs::write(dir.join(file), value);
        match (controller, version) {
            ("memory", Version::V1) => {
                let bytes = self.limits.memory.unwrap_or(u64::MAX);
                write("memory.limit_in_bytes", bytes.to_string())?;
                // Swap counts too, where the host accounts it.
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", bytes.to_string())?;
                }
                Ok(())
            }
            ("memory", Version::V2) => {
                write("memory.max", self.limits.memory.unwrap_or(u64::MAX).to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write("memory.swap.max", "0".into())?;
                }
                Ok(())
            }
            ("pids", _) => write("pids.max", self.limits.pids.unwrap_or(u64::MAX).to_string()),
            ("cpu", Version::V1) => {
                write("cpu.cfs_period_us", "100000".into())?;
                write(
                    "cpu.cfs_quota_us",
                    (self.limits.cpu_millis.unwrap_or(0) * 100).to_string(),
                )
            }
            ("cpu", Version::V2) => write(
                "cpu.max",
                format!("{} 100000", self.limits.cpu_millis.unwrap_or(0) * 100),
            ),
            _ => Ok(()),
        }
    }

    /// The controllers asked for that could not be applied.
    pub fn missing(&self) -> &[&'static str] {
        &self.missing
    }

    /// Raw `cgroup.procs` descriptors: the child writes `0` to each between
    /// fork and exec (see [`join`]).
    pub fn procs_fds(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// Whether the kernel killed a process for reaching the memory limit.
    pub fn memory_exhausted(&self) -> bool {
        self.oom_kills() > 0
    }

    /// Whether a fork or clone failed for reaching the pids limit.
    pub fn pids_exhausted(&self) -> bool {
        self.fork_failures() > 0
    }

    fn oom_kills(&self) -> u64 {
        let Some((version, dir)) = &self.memory else {
            return 0;
        };
        let file = match version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        counter(&dir.join(file), "oom_kill")
    }

    fn fork_failures(&self) -> u64 {
        self.pids
            .as_ref()
            .map_or(0, |(_, dir)| counter(&dir.join("pids.events"), "max"))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// Where the controllers are, found once per process (stale cgroups of
/// dead strata processes are swept then).
fn known_homes() -> &'static Homes {
    static HOMES: std::sync::OnceLock<Homes> = std::sync::OnceLock::new();
    HOMES.get_or_init(|| {
        let homes = homes();
        sweep(&homes);
        homes
    })
}

/// The cgroup the strata process itself moves into for its builds
/// (`strata-PID-build`), so that every sandbox it starts is born in it:
/// the default limits bound all of a build's steps together, at the cost
/// of one move per process. (Moving each sandbox into a cgroup of its own
/// costs an RCU grace period per step on cgroup v1, 1–3 ms here; only
/// steps with their own `limits` pay it.)
static BUILD: std::sync::Mutex<Option<Build>> = std::sync::Mutex::new(None);

/// The outcome of the one attempt per process to join the build cgroup.
struct Build {
    /// `None` when this process could not be moved into it.
    group: Option<Cgroup>,
    /// The controllers asked for that could not be applied.
    missing: Vec<&'static str>,
}

/// Moves this process into its build cgroup with `limits` (tried once per
/// process; later calls keep the first result). Returns the controllers
/// that could not be applied.
pub fn join_build(limits: Limits) -> Vec<&'static str> {
    let mut build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let build = build.get_or_insert_with(|| {
        let name = format!("strata-{}-build", std::process::id());
        let mut group = Cgroup::create_in(known_homes(), limits, &name);
        if join(&group.procs_fds()).is_err() {
            // Not movable (no permission): no limit can hold this process.
            group.procs.clear();
            let missing = ["memory", "pids", "cpu"]
                .into_iter()
                .filter(|c| limits.asks(c))
                .collect();
            return Build { group: None, missing };
        }
        Build {
            missing: group.missing.clone(),
            group: Some(group),
        }
    });
    build.missing.clone()
}

/// The build cgroup, when this process joined one.
fn with_build<T>(f: impl FnOnce(&Cgroup) -> T) -> Option<T> {
    let build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    build.as_ref().and_then(|b| b.group.as_ref()).map(f)
}

/// The build cgroup's counters (memory limit kills, failed forks), to tell
/// afterwards whether a step met a limit.
pub fn build_counters() -> (u64, u64) {
    with_build(|group| (group.oom_kills(), group.fork_failures())).unwrap_or((0, 0))
}

/// The limits of the build cgroup, if this process joined one.
pub fn build_limits() -> Option<Limits> {
    with_build(|group| group.limits)
}

/// Moves this process back where it came from and removes its build
/// cgroup (at the end of a command; a killed process's is swept by the
/// next one).
pub fn leave_build() {
    let mut build = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(group) = build.take().and_then(|b| b.group) else {
        return;
    };
    for (_, dir) in &group.dirs {
        if let Some(parent) = dir.parent() {
            let _ = OpenOptions::new()
                .write(true)
                .open(parent.join("cgroup.procs"))
                .and_then(|mut f| f.write_all(b"0"));
        }
    }
    drop(group);
}

/// Removes the cgroups of strata processes that are gone (killed before
/// they could remove their own); they hold no process, only a name.
fn sweep(homes: &Homes) {
    for home in [&homes.memory, &homes.pids, &homes.cpu].into_iter().flatten() {
        for entry in fs::read_dir(&home.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("strata-").and_then(|r| r.split('-').next()) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// Puts the calling process into the cgroups whose `cgroup.procs` are `fds`.
/// Only plain `write` calls: safe between fork and exec.
pub fn join(fds: &[i32]) -> io::Result<()> {
    for fd in fds {
        // SAFETY: writing two bytes from a static buffer to a descriptor the parent opened.
        if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The value after `key` in a flat-keyed cgroup file (`key value` lines).
fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.procs.clear();
        // The sandbox's pid namespace is gone by now; its processes may
        // still be exiting. Anything left (it cannot be, but) is killed.
        for (_, dir) in self.dirs.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                        for pid in fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
                            if let Ok(pid) = pid.trim().parse::<i32>() {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid),
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                            }
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/4d85
1:cpu:/
0::/
";

    #[test]
    fn on_a_hybrid_host_each_controller_comes_from_its_v1_hierarchy() {
        let homes = find_homes(HYBRID_MOUNTINFO, HYBRID_CGROUP, &|_| "hugetlb".into());
        let v1 = |dir: &str| {
            Some(Home {
                version: Version::V1,
                dir: PathBuf::from(dir),
            })
        };
        assert_eq!(homes.memory, v1("/sys/fs/cgroup/memory/process_api/4d85"));
        assert_eq!(homes.pids, v1("/sys/fs/cgroup/pids"));
        assert_eq!(homes.cpu, v1("/sys/fs/cgroup/cpu"));
    }

    #[test]
    fn on_a_unified_host_the_delegated_cgroup_is_used() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let cgroups = "0::/user.slice/user-1000.slice/session-3.scope\n";
        let homes = find_homes(mountinfo, cgroups, &|dir| {
            assert_eq!(
                dir,
                Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope")
            );
            "cpu memory pids".into()
        });
        let v2 = Some(Home {
            version: Version::V2,
            dir: PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"),
        });
        assert_eq!(homes.memory, v2);
        assert_eq!(homes.pids, v2);
        assert_eq!(homes.cpu, v2);
    }

    #[test]
    fn a_mount_whose_root_is_not_ours_is_relative_to_its_root() {
        // Inside a cgroup namespace-less container: the hierarchy is mounted from /docker/abc.
        let mountinfo = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let homes = find_homes(mountinfo, "4:memory:/docker/abc/build\n", &|_| String::new());
        assert_eq!(homes.memory.unwrap().dir, PathBuf::from("/sys/fs/cgroup/memory/build"));
        // Our cgroup outside the mounted subtree: unusable.
        let homes = find_homes(mountinfo, "4:memory:/elsewhere\n", &|_| String::new());
        assert_eq!(homes.memory, None);
    }

    #[test]
    fn a_controller_the_host_lacks_is_reported_missing() {
        let cg = Cgroup::create_in(
            &Homes::default(),
            Limits {
                memory: Some(1 << 20),
                pids: None,
                cpu_millis: Some(500),
            },
            "strata-test",
        );
        assert_eq!(cg.missing(), ["memory", "cpu"]);
        assert!(!cg.memory_exhausted());
    }

    #[test]
    fn limits_are_written_in_the_files_each_version_names() {
        let cg = Cgroup {
            limits: Limits {
                memory: Some(2 << 30),
                pids: Some(64),
                cpu_millis: Some(1500),
            },
            dirs: Vec::new(),
            memory: None,
            pids: None,
            procs: Vec::new(),
            missing: Vec::new(),
        };
        let read = |d: &Path, f: &str| fs::read_to_string(d.join(f)).unwrap();
        let v1 = tempfile::tempdir().unwrap();
        fs::write(v1.path().join("memory.memsw.limit_in_bytes"), "").unwrap();
        for c in ["memory", "pids", "cpu"] {
            cg.limit(c, Version::V1, v1.path()).unwrap();
        }
        assert_eq!(read(v1.path(), "memory.limit_in_bytes"), "2147483648");
        assert_eq!(read(v1.path(), "memory.memsw.limit_in_bytes"), "2147483648");
        assert_eq!(read(v1.path(), "pids.max"), "64");
        assert_eq!(read(v1.path(), "cpu.cfs_quota_us"), "150000");
        assert_eq!(read(v1.path(), "cpu.cfs_period_us"), "100000");
        let v2 = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu"] {
            cg.limit(c, Version::V2, v2.path()).unwrap();
        }
        assert_eq!(read(v2.path(), "memory.max"), "2147483648");
        assert_eq!(read(v2.path(), "pids.max"), "64");
        assert_eq!(read(v2.path(), "cpu.max"), "150000 100000");
    }

    #[test]
    fn sizes_take_docker_style_units() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("-1g"), None);
    }

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.oom_control");
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(counter(&f, "oom_kill"), 3);
        assert_eq!(counter(&f, "under_oom"), 0);
        assert_eq!(counter(&dir.path().join("absent"), "max"), 0);
    }

    #[test]
    fn escaped_mount_points_are_unescaped() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }
}
