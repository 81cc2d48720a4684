//! The Debian control parser (Packages indexes, dpkg status): stanzas,
//! dependency fields, version comparison. Never a panic; comparison is a
//! total order on what it is given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::debian::control;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for stanza in control::stanzas(&text) {
        for field in ["Depends", "Pre-Depends", "Provides", "Conflicts", "Breaks"] {
            if let Some(value) = stanza.get(field) {
                let _ = control::dependencies(value);
            }
        }
    }
    let _ = control::dependencies(&text);
    let mut parts = text.splitn(3, '\n');
    if let (Some(a), Some(b)) = (parts.next(), parts.next()) {
        let ab = control::compare_versions(a, b);
        assert_eq!(ab.reverse(), control::compare_versions(b, a), "{a:?} vs {b:?}");
        assert_eq!(control::compare_versions(a, a), std::cmp::Ordering::Equal, "{a:?}");
    }
});
