//! Container names and IDs, as the kubelet and containerd's CRI plugin spell them.
//!
//! Owns only string formatting; it never touches the disk.

use sha2::{Digest, Sha256};

/// The kubelet's container name: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`
/// [pkg/kubelet/dockershim/naming.go].
pub fn container_name(
    pod_name: &str,
    namespace: &str,
    uid: &str,
    container: &str,
    attempt: u32,
) -> String {
    format!("k8s_{container}_{pod_name}_{namespace}_{uid}_{attempt}")
}

/// A 64-hex-digit container ID: sha256 of the container name and a caller-chosen nonce, so a
/// restarted container (same name, new nonce) gets a new ID, as containerd does.
pub fn container_id(name: &str, nonce: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0u8]);
    hasher.update(nonce.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matches_kubelet_layout() {
        assert_eq!(
            container_name("web", "default", "1234-abcd", "nginx", 2),
            "k8s_nginx_web_default_1234-abcd_2"
        );
    }

    #[test]
    fn id_is_64_hex_and_depends_on_nonce() {
        let a = container_id("k8s_nginx_web_default_u_0", "n1");
        let b = container_id("k8s_nginx_web_default_u_0", "n2");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a, container_id("k8s_nginx_web_default_u_0", "n1"));
    }
}
