//! A registry's JSON documents as `peapod pull` decodes them (`image::document`): the
//! top-level document a tag names (media type sniffing, schema 1 refusal, index with this host's
//! platform picked, manifest with supported layer types), an index entry's manifest, and the
//! image config. The same input goes through all three; a panic anywhere is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peapod::image::registry::Endpoint;
use peapod::image::{decode_config, decode_index_entry, decode_top_level, Origin, TopLevel};
use peapod_fuzz::sha256_digest;

fuzz_target!(|data: &[u8]| {
    let endpoint = Endpoint {
        host: "registry.fuzz".to_string(),
        plain_http: false,
        mirror: false,
        ca_file: None,
    };
    let origin = Origin {
        endpoint: &endpoint,
        repository: "fuzz/image",
    };
    // A pull decodes what it verified against this digest.
    let digest = sha256_digest(data);
    match decode_top_level(origin, &digest, data) {
        Ok(TopLevel::Index { chosen, .. }) => {
            let _ = chosen.digest().to_string();
        }
        Ok(TopLevel::Manifest { manifest, .. }) => {
            let _ = manifest.config().digest().to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let index = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    if let Err(e) = decode_index_entry(origin, index, &digest, data) {
        let _ = e.to_string();
    }
    match decode_config(origin, &digest, data) {
        Ok(config) => {
            let _ = config.rootfs().diff_ids().len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
