//! Pod manifests: strict decoding of YAML/JSON into Kubernetes `Pod`s, defaults, validation
//! with field paths, and resource quantities. Owns nothing on the host.
//!
//! INTERFACE (filled in by the manifest work):
//! - `decode_pods(text, source) -> Result<Vec<Pod>, ManifestError>`: every `---` document,
//!   strictly decoded (unknown field -> error naming `spec.containers[0].resorces`), validated,
//!   defaults applied (namespace `default`, restartPolicy Always, dnsPolicy ClusterFirst,
//!   terminationGracePeriodSeconds 30, imagePullPolicy, terminationMessagePath, ...).
//! - `Resources` / `container_resources(&Container)`: parsed cpu/memory requests and limits.
//! - `QosClass` / `qos_class(&Pod)`.

pub mod resources;
