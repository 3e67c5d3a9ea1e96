//! Image references as users write them (`peapod pull`, a Pod's `image:`, `rmi`): Docker-style
//! normalization, and the splits the store and a pull make of a normalized reference. Besides
//! "no panic", a normalized reference must normalize to itself (the store names images by it and
//! normalizes every lookup) and must split back into what it was made of.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peapod::image::{is_bare_tag, normalize_reference, split_reference, RemoteRef, NO_TAG};

fuzz_target!(|data: &[u8]| {
    let Ok(reference) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_bare_tag(reference);
    let Ok(normalized) = normalize_reference(reference) else {
        return;
    };
    assert_eq!(
        normalize_reference(&normalized).ok().as_deref(),
        Some(normalized.as_str()),
        "normalizing {reference:?} twice differs"
    );
    let (repository, tag) = split_reference(&normalized);
    let name = normalized.split('@').next().unwrap_or_default();
    if tag == NO_TAG {
        assert_eq!(repository, name);
    } else {
        assert_eq!(format!("{repository}:{tag}"), name);
    }
    let remote = RemoteRef::parse(&normalized);
    assert_eq!(
        format!("{}/{}", remote.domain, remote.repository),
        repository
    );
    let _ = remote.tag_or_digest();
});
