//! Work on a few threads at once, for downloads, uploads and the like.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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
}
