//! The recipe front end on arbitrary text: the Rhai parser, the recipe
//! functions, their option checks and the engine's limits. An error with a
//! position or a graph, never a panic, a hang or a stack overflow.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = std::env::temp_dir();
    let _ = strata_dsl::compile_source(text, "fuzz.rhai", &dir, &BTreeMap::new());
});
