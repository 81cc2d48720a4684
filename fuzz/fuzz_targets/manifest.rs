//! Registry manifests and indexes on arbitrary bytes: which entry of an
//! index to follow for a platform, and an image manifest and config as a
//! pull reads them. Any bytes are an answer or an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::image::{self, ImageConfig, Manifest, Platform};

fuzz_target!(|data: &[u8]| {
    for media in ["", image::INDEX_MEDIA_TYPE, image::MANIFEST_MEDIA_TYPE, image::DOCKER_LIST_MEDIA_TYPE] {
        for platform in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
            let platform = Platform::parse(platform).unwrap();
            let _ = strata_engine::registry::index_entry(data, media, &platform, "fuzz");
        }
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let _ = manifest.layers.iter().map(|l| l.size).fold(0u64, u64::wrapping_add);
        let _ = image::to_json(&manifest);
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(data) {
        let _ = image::to_json(&config);
    }
});
