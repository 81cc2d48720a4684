//! Everything the user sees: progress, diagnostics, signal handling.

pub mod diagnostics;
pub mod progress;
pub mod signals;
