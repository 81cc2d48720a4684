//! `strata du` and `strata gc`.

use strata_engine::store::{self, Store};

use super::{human, CliError};

pub fn du(store: &Store) -> Result<(), CliError> {
    let u = store::disk_usage(store)?;
    crate::outln!("{:<28} {:>10}", "WHAT", "SIZE");
    crate::outln!(
        "{:<28} {:>10}",
        format!("images ({} tagged)", u.images),
        human(u.image_bytes)
    );
    crate::outln!("{:<28} {:>10}", "blobs (all)", human(u.blobs));
    crate::outln!("{:<28} {:>10}", "unpacked layers", human(u.layers));
    crate::outln!("{:<28} {:>10}", "cache mounts", human(u.caches));
    crate::outln!("{:<28} {:>10}", "Debian packages", human(u.packages));
    crate::outln!(
        "{:<28} {:>10}",
        format!("records ({})", u.records),
        human(u.record_bytes)
    );
    Ok(())
}

pub fn gc(store: &Store, keep_days: f64, caches: bool) -> Result<(), CliError> {
    if keep_days < 0.0 || keep_days.is_nan() {
        return Err(CliError::Usage(format!("--keep-days {keep_days}: expected 0 or more")));
    }
    let guard = match store.hold(true, false)? {
        Some(g) => g,
        None => {
            eprintln!("waiting for running builds to finish…");
            store.hold(true, true)?.expect("a blocking lock is always taken")
        }
    };
    let r = store::gc(store, keep_days, caches)?;
    drop(guard);
    crate::outln!(
        "removed {} records, {} layers, {} blobs{}: {} freed",
        r.records,
        r.layers,
        r.blobs,
        if caches {
            format!(", {} cache mounts and the package cache", r.caches)
        } else {
            String::new()
        },
        human(r.bytes)
    );
    Ok(())
}

/// `strata check [--repair]`: one line per damaged entry, then a summary;
/// exit status 1 when something is damaged and not repaired.
pub fn check(store: &Store, repair: bool) -> Result<(), CliError> {
    // Alone in the store, as gc is: a build's half-written entries are not damage.
    let guard = match store.hold(true, false)? {
        Some(g) => g,
        None => {
            eprintln!("waiting for running builds to finish…");
            store.hold(true, true)?.expect("a blocking lock is always taken")
        }
    };
    eprintln!("checking the store: every blob and every layer's files are read");
    let (checked, damage) = store::check(store)?;
    for d in &damage {
        crate::outln!(
            "damaged {} {}: {} ({})",
            d.kind.name(),
            d.name,
            d.reason,
            d.path.display()
        );
    }
    if repair && !damage.is_empty() {
        for line in store::repair(store, &damage)? {
            crate::outln!("{line}");
        }
    }
    drop(guard);
    let mut summary = format!(
        "checked {} blobs, {} layers (every file's content), {} records, {} tags",
        checked.blobs, checked.layers, checked.records, checked.tags
    );
    if checked.without_contents > 0 {
        summary.push_str(&format!(
            " ({} layers committed by an older strata: their metadata checked, not their contents)",
            checked.without_contents
        ));
    }
    match (damage.len(), repair) {
        (0, _) => {
            crate::outln!("{summary}: all intact");
            Ok(())
        }
        (n, true) => {
            crate::outln!("{summary}: {n} damaged, removed; the next build rebuilds or re-fetches them");
            Ok(())
        }
        (n, false) => Err(CliError::Damaged(format!(
            "{summary}: {n} damaged; `strata check --repair` removes them"
        ))),
    }
}
