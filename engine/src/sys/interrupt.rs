//! The process's interrupt flag (Ctrl-C, SIGTERM), for the long loops that
//! hold no build context: downloads, hashing a file. A build's scheduler
//! watches its own flag; the CLI hands the same one here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();

/// Makes [`requested`] watch `flag` (the first call wins).
pub fn watch(flag: &'static AtomicBool) {
    let _ = FLAG.set(flag);
}

/// Whether an interrupt has been asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
