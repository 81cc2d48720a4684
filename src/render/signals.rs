//! Ctrl-C and SIGTERM, through signal-hook: the first asks the build to
//! stop cleanly (running steps are killed, temporary state removed, nothing
//! half-written is recorded); a second one exits at once with 128 + the
//! signal's number.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

static CANCELLED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    CANCELLED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers.
pub fn install() {
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the earlier signal left it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(flag()));
        let _ = signal_hook::flag::register(sig, Arc::clone(flag()));
    }
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
