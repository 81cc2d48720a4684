//! Ctrl-C and SIGTERM, through signal-hook: the first asks the build to
//! stop cleanly (running steps are killed, temporary state removed, nothing
//! half-written is recorded); a second one exits at once with 128 + the
//! signal's number. Should the first not have ended strata within
//! [`GRACE`] (a phase that cannot see the request: a read from a server
//! that sends nothing), strata exits then as the second would: the store
//! is made to survive being stopped at any moment.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

static CANCELLED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    CANCELLED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// How long a clean stop may take before strata stops anyway.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the handlers, and the watch that stops strata [`GRACE`] after
/// the first signal.
pub fn install() {
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the earlier signal left it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(flag()));
        let _ = signal_hook::flag::register(sig, Arc::clone(flag()));
    }
    strata_engine::sys::interrupt::watch(flag().as_ref());
    let _ = std::thread::Builder::new().name("interrupt-watch".into()).spawn(|| {
        use std::sync::atomic::Ordering;
        while !flag().load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(GRACE);
        eprintln!(
            "error: build interrupted (still running {} s after the signal: stopped)",
            GRACE.as_secs()
        );
        std::process::exit(130);
    });
}

/// For `strata run`: Ctrl-C belongs to the command (the terminal delivers
/// it to the container, and the sandbox stops it unless it is interactive);
/// SIGTERM ends strata at once, and the sandbox dies with it.
pub fn pass_to_container() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN and SIG_DFL run no code in this process.
    unsafe {
        let _ = signal(Signal::SIGINT, SigHandler::SigIgn);
        let _ = signal(Signal::SIGTERM, SigHandler::SigDfl);
    }
}

/// The flag the engine polls.
pub fn cancelled() -> &'static AtomicBool {
    flag()
}
