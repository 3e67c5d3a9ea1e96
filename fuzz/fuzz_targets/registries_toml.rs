//! `/etc/peapod/registries.toml` as every pull, push and login reads it
//! (`RegistriesConfig::parse`), then the endpoint lists a pull would try for each host it names
//! and for Docker Hub. Errors are rendered as the CLI prints them. A panic is a bug.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use peapod::image::RegistriesConfig;

fuzz_target!(|data: &[u8]| {
    // RegistriesConfig::from_file reads the file with read_to_string.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RegistriesConfig::parse(text, Path::new("/etc/peapod/registries.toml")) {
        Ok(config) => {
            for host in config.registries.keys() {
                let endpoints = config.endpoints(host);
                assert!(!endpoints.is_empty(), "no endpoint for {host:?}");
                for e in endpoints {
                    let _ = e.url();
                }
                let _ = config.direct_endpoint(host);
            }
            let _ = config.endpoints("docker.io");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
