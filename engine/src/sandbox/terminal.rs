//! The terminal of an interactive sandbox (`--debug`, `strata run` on a
//! terminal), as runc gives a container one: a pseudo-terminal of strata's
//! own, whose slave is the sandbox's controlling terminal in a session of
//! its own. The user's terminal never enters the sandbox: strata puts it
//! in raw mode and copies bytes between it and the pty's master, and
//! passes window size changes on. So a step can write to, read from and
//! even `TIOCSTI` into its own terminal, never into the user's shell.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};

/// A pseudo-terminal: the master stays with strata, the slave goes to the sandbox.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some(ws)
}

fn set_window_size(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}

/// A new pty the size of the user's terminal (standard input), if it is one.
pub fn open() -> io::Result<Pty> {
    let pty = nix::pty::openpty(None, None).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    if let Some(ws) = window_size(libc::STDIN_FILENO) {
        set_window_size(pty.master.as_raw_fd(), &ws);
    }
    Ok(Pty {
        master: pty.master,
        slave: pty.slave,
    })
}

/// For the child between fork and exec: a new session whose controlling
/// terminal is its standard input (the pty's slave).
pub fn take_as_controlling_terminal() -> io::Result<()> {
    // SAFETY: async-signal-safe calls on the child's own descriptors.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// For the child between fork and exec: a session of its own and no
/// controlling terminal, so `/dev/tty` is nobody's.
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid is async-signal-safe.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The user's terminal in raw mode until dropped (nothing when standard
/// input is not a terminal).
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, saved);
        }
    }
}

/// Copies the user's terminal to and from `master` until `child` exits,
/// then what it still wrote; returns how it ended.
pub fn relay(master: OwnedFd, child: &mut Child) -> io::Result<ExitStatus> {
    let _raw = RawMode::enter();
    let mut size = window_size(libc::STDIN_FILENO);
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    let mut out = io::stdout();
    let mut master_file = std::fs::File::from(master);
    loop {
        if let Some(status) = child.try_wait()? {
            drain(&mut master_file, &mut out, &mut buf);
            return Ok(status);
        }
        // SIGWINCH would need a handler; a look every 100 ms does the same.
        let now = window_size(libc::STDIN_FILENO);
        if let Some(ws) = now.filter(|ws| size.is_none_or(|s| (s.ws_row, s.ws_col) != (ws.ws_row, ws.ws_col))) {
            set_window_size(master_file.as_raw_fd(), &ws);
        }
        size = now;
        // SAFETY: standard input stays open while this borrow lives.
        let stdin_fd = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
        let mut fds = vec![PollFd::new(master_file.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
        }
        let master_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = fds.get(1).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
        if master_ready.intersects(PollFlags::POLLIN) {
            match master_file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                _ => {}
            }
        } else if master_ready.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            // Every holder of the slave closed it: wait for the child.
            std::thread::sleep(Duration::from_millis(10));
        }
        if stdin_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match nix::unistd::read(libc::STDIN_FILENO, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = master_file.write_all(&buf[..n]);
                }
            }
        }
    }
}

/// What the child wrote before it exited.
fn drain(master: &mut std::fs::File, out: &mut io::Stdout, buf: &mut [u8]) {
    loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if !matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            break;
        }
        match master.read(buf) {
            Ok(n) if n > 0 => {
                let _ = out.write_all(&buf[..n]);
            }
            _ => break,
        }
    }
    let _ = out.flush();
}
