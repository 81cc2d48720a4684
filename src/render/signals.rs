//! Ctrl-C and SIGTERM: the first asks the build to stop cleanly (running
//! steps are killed, temporary state removed, nothing half-written is
//! recorded); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if CANCELLED.swap(true, Ordering::SeqCst) {
        // Second signal: give up now, with the conventional status.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The flag the engine polls.
pub fn cancelled() -> &'static AtomicBool {
    &CANCELLED
}
