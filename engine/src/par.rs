//! Work on a few threads at once, for downloads, uploads and the like.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Calls `f` on every item, at most `threads` at a time. After the first
/// error no further item starts, and that error is returned.
pub fn try_each<T: Sync>(items: &[T], threads: usize, f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let stopped = || failed.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    std::thread::scope(|scope| {
        for _ in 0..items.len().min(threads.max(1)) {
            scope.spawn(|| loop {
                if stopped() {
                    return;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                if let Err(e) = f(item) {
                    failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                    return;
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A counting gate: at most `permits` holders at once, the others wait.
pub struct Gate {
    held: Mutex<usize>,
    freed: Condvar,
    permits: usize,
}

impl Gate {
    pub fn new(permits: usize) -> Gate {
        Gate {
            held: Mutex::new(0),
            freed: Condvar::new(),
            permits: permits.max(1),
        }
    }

    /// One of the cores of this machine each.
    pub fn per_core() -> Gate {
        Gate::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Waits for a permit and takes it; `give` returns it.
    pub fn take(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while *held >= self.permits {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        *held += 1;
    }

    pub fn give(&self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        *held = held.saturating_sub(1);
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_and_the_first_error_wins() {
        let seen = Mutex::new(Vec::new());
        try_each(&[1, 2, 3, 4, 5], 3, |i| {
            seen.lock().unwrap().push(*i);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        let err = try_each(
            &[1, 2, 3],
            1,
            |i| {
                if *i == 2 {
                    Err(Error::Interrupted)
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(err, Err(Error::Interrupted)));
        try_each::<u8>(&[], 4, |_| unreachable!()).unwrap();
    }

    #[test]
    fn a_gate_lets_as_many_through_as_it_has_permits() {
        let gate = Gate::new(2);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    gate.take();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    gate.give();
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
