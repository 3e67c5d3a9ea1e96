//! `peapod apply -f`: manifest text (YAML or JSON, several documents) through
//! `manifest::decode_objects`, as the CLI calls it; then, for each Pod, what apply computes
//! from it (resources, QoS class) and the JSON it stores as pod.json. Errors are rendered as the
//! CLI prints them. A panic anywhere is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peapod::manifest::{container_resources, decode_objects, qos_class, Object};

fuzz_target!(|data: &[u8]| {
    // The CLI reads manifests with read_to_string: anything else never reaches the decoder.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_objects(text, "fuzz.yaml") {
        Ok(objects) => {
            for object in &objects {
                let _ = (object.kind_name(), object.name(), object.namespace());
                if let Object::Pod(pod) = object {
                    let spec = pod.spec.as_ref();
                    for c in spec.iter().flat_map(|s| s.containers.iter()) {
                        let _ = container_resources(c);
                    }
                    let _ = qos_class(pod);
                    let _ = serde_json::to_vec(pod.as_ref());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
            for p in e.problems() {
                let _ = p.cause();
            }
        }
    }
});
