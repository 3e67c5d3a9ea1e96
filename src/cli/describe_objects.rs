//! `peapod describe configmap|secret|pvc|pv`: kubectl's describers for the stored kinds
//! [kubectl pkg/describe/describe.go ConfigMapDescriber, describeSecret,
//! describePersistentVolumeClaim, describePersistentVolume], built as tab-separated lines and
//! aligned by [`tabwrite`] like kubectl's tabwriter. A Secret's values are never shown, only
//! their sizes.

use std::fmt::Write;

use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::describe::{annotations, describe_events, multiline, L1};
use super::format::{since, tabwrite};
use super::kinds::Kind;
use super::objects::{access_modes, claim_capacity_and_modes, phase, storage_class};
use crate::manifest::objects::{
    RESOURCE_STORAGE, SECRET_TYPE_SERVICE_ACCOUNT_TOKEN, SERVICE_ACCOUNT_TOKEN_KEY,
};
use crate::object::ObjectStore;
use crate::pod::record::Event;
use crate::store::Paths;

const L2: &str = "    ";

/// Who reports a claim's events (the volume binder and provisioner).
pub const CLAIM_EVENT_SOURCE: &str = "persistentvolume-controller";

/// `Name:` and `Namespace:` of a namespaced object.
fn name_and_namespace(out: &mut String, meta: &ObjectMeta) {
    let _ = writeln!(out, "Name:\t{}", meta.name.as_deref().unwrap_or_default());
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or_default()
    );
}

/// `Status:`, or `Terminating (lasts 10s)` once a deletion was asked for.
fn status_line(out: &mut String, meta: &ObjectMeta, phase_text: &str, now: Timestamp) {
    match meta.deletion_timestamp.as_ref() {
        Some(t) => {
            let _ = writeln!(
                out,
                "Status:\tTerminating (lasts {})",
                since(Some(t.0), now)
            );
        }
        None => {
            let _ = writeln!(out, "Status:\t{phase_text}");
        }
    }
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_list(items: Option<&Vec<String>>) -> String {
    format!("[{}]", items.map(|i| i.join(" ")).unwrap_or_default())
}

/// The ConfigMap: every data value in full, binary values by size, then its events.
pub fn describe_config_map(cm: &ConfigMap, events: &[Event], now: Timestamp) -> String {
    let mut out = String::new();
    name_and_namespace(&mut out, &cm.metadata);
    multiline(&mut out, "Labels", cm.metadata.labels.as_ref());
    annotations(&mut out, "Annotations", cm.metadata.annotations.as_ref());
    out.push_str("\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        let _ = write!(out, "{k}:\n----\n{v}\n\n");
    }
    out.push_str("\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        let _ = writeln!(out, "{k}: {} bytes", v.0.len());
    }
    out.push('\n');
    describe_events(&mut out, events, CLAIM_EVENT_SOURCE, now);
    tabwrite(&out, 0, 2)
}

/// The Secret: its type and the size of each value; only a service-account token is shown.
pub fn describe_secret(secret: &Secret) -> String {
    let mut out = String::new();
    name_and_namespace(&mut out, &secret.metadata);
    multiline(&mut out, "Labels", secret.metadata.labels.as_ref());
    annotations(
        &mut out,
        "Annotations",
        secret.metadata.annotations.as_ref(),
    );
    let type_ = secret.type_.as_deref().unwrap_or_default();
    let _ = write!(out, "\nType:\t{type_}\n\nData\n====\n");
    for (k, v) in secret.data.iter().flatten() {
        if k == SERVICE_ACCOUNT_TOKEN_KEY && type_ == SECRET_TYPE_SERVICE_ACCOUNT_TOKEN {
            let _ = writeln!(out, "{k}:\t{}", String::from_utf8_lossy(&v.0));
        } else {
            let _ = writeln!(out, "{k}:\t{} bytes", v.0.len());
        }
    }
    tabwrite(&out, 0, 2)
}

/// The claim, the pods that use it (`used_by`, any order) and its events.
pub fn describe_claim(
    claim: &PersistentVolumeClaim,
    used_by: &[String],
    events: &[Event],
    now: Timestamp,
) -> String {
    let spec = claim.spec.clone().unwrap_or_default();
    let meta = &claim.metadata;
    let mut out = String::new();
    name_and_namespace(&mut out, meta);
    let _ = writeln!(
        out,
        "StorageClass:\t{}",
        storage_class(meta, spec.storage_class_name.as_ref())
    );
    let claim_phase = phase(meta, claim.status.as_ref().and_then(|s| s.phase.as_ref()));
    status_line(&mut out, meta, &claim_phase, now);
    let _ = writeln!(
        out,
        "Volume:\t{}",
        spec.volume_name.as_deref().unwrap_or_default()
    );
    multiline(&mut out, "Labels", meta.labels.as_ref());
    annotations(&mut out, "Annotations", meta.annotations.as_ref());
    let _ = writeln!(out, "Finalizers:\t{}", go_list(meta.finalizers.as_ref()));
    let (capacity, modes) = claim_capacity_and_modes(claim);
    let _ = writeln!(out, "Capacity:\t{capacity}");
    let _ = writeln!(out, "Access Modes:\t{modes}");
    if let Some(mode) = spec.volume_mode.as_deref() {
        let _ = writeln!(out, "VolumeMode:\t{mode}");
    }
    let mut pods = used_by.to_vec();
    pods.sort();
    match pods.split_first() {
        None => {
            let _ = writeln!(out, "Used By:\t<none>");
        }
        Some((first, rest)) => {
            let _ = writeln!(out, "Used By:\t{first}");
            for pod in rest {
                let _ = writeln!(out, "\t{pod}");
            }
        }
    }
    if let Some(conditions) = claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .filter(|c| !c.is_empty())
    {
        let _ = writeln!(out, "Conditions:");
        let _ = writeln!(
            out,
            "{L1}Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage"
        );
        let _ = writeln!(
            out,
            "{L1}----\t------\t-----------------\t------------------\t------\t-------"
        );
        let time = |t: Option<&Time>| t.map(|t| super::format::rfc1123z(t.0)).unwrap_or_default();
        for c in conditions {
            let _ = writeln!(
                out,
                "{L1}{} \t{} \t{} \t{} \t{} \t{}",
                c.type_,
                c.status,
                time(c.last_probe_time.as_ref()),
                time(c.last_transition_time.as_ref()),
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            );
        }
    }
    describe_events(&mut out, events, CLAIM_EVENT_SOURCE, now);
    tabwrite(&out, 0, 2)
}

/// The volume: class, status, claim, policy, capacity, node affinity and its source.
pub fn describe_volume(pv: &PersistentVolume, events: &[Event], now: Timestamp) -> String {
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    let meta = &pv.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "Name:\t{}", meta.name.as_deref().unwrap_or_default());
    multiline(&mut out, "Labels", meta.labels.as_ref());
    annotations(&mut out, "Annotations", meta.annotations.as_ref());
    let _ = writeln!(out, "Finalizers:\t{}", go_list(meta.finalizers.as_ref()));
    let _ = writeln!(
        out,
        "StorageClass:\t{}",
        storage_class(meta, spec.storage_class_name.as_ref())
    );
    status_line(
        &mut out,
        meta,
        status.phase.as_deref().unwrap_or_default(),
        now,
    );
    let claim = spec.claim_ref.as_ref().map(|c| {
        format!(
            "{}/{}",
            c.namespace.as_deref().unwrap_or_default(),
            c.name.as_deref().unwrap_or_default()
        )
    });
    let _ = writeln!(out, "Claim:\t{}", claim.unwrap_or_default());
    let _ = writeln!(
        out,
        "Reclaim Policy:\t{}",
        spec.persistent_volume_reclaim_policy
            .as_deref()
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Access Modes:\t{}",
        access_modes(spec.access_modes.as_ref())
    );
    if let Some(mode) = spec.volume_mode.as_deref() {
        let _ = writeln!(out, "VolumeMode:\t{mode}");
    }
    let capacity = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get(RESOURCE_STORAGE))
        .map_or("0", |q| q.0.as_str());
    let _ = writeln!(out, "Capacity:\t{capacity}");
    node_affinity(&mut out, pv);
    let _ = writeln!(
        out,
        "Message:\t{}",
        status.message.as_deref().unwrap_or_default()
    );
    let _ = writeln!(out, "Source:");
    if let Some(h) = &spec.host_path {
        let _ = writeln!(out, "{L2}Type:\tHostPath (bare host directory volume)");
        let _ = writeln!(out, "{L2}Path:\t{}", h.path);
        let _ = writeln!(
            out,
            "{L2}HostPathType:\t{}",
            h.type_.as_deref().unwrap_or_default()
        );
    } else if let Some(l) = &spec.local {
        let _ = writeln!(
            out,
            "{L2}Type:\tLocalVolume (a persistent volume backed by local storage on a node)"
        );
        let _ = writeln!(out, "{L2}Path:\t{}", l.path);
    } else {
        let _ = writeln!(out, "{L1}<unknown>");
    }
    describe_events(&mut out, events, CLAIM_EVENT_SOURCE, now);
    tabwrite(&out, 0, 2)
}

/// `Node Affinity:` [describe.go printVolumeNodeAffinity].
fn node_affinity(out: &mut String, pv: &PersistentVolume) {
    let Some(required) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        let _ = writeln!(out, "Node Affinity:\t<none>");
        return;
    };
    let _ = writeln!(out, "Node Affinity:\t");
    if required.node_selector_terms.is_empty() {
        let _ = writeln!(out, "{L1}Required Terms:\t<none>");
        return;
    }
    let _ = writeln!(out, "{L1}Required Terms:\t");
    for (i, term) in required.node_selector_terms.iter().enumerate() {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let _ = write!(out, "{L2}Term {i}:\t");
        if exprs.is_empty() {
            let _ = writeln!(out, "<none>");
        }
        for (j, req) in exprs.iter().enumerate() {
            if j > 0 {
                let _ = write!(out, "{L2}\t");
            }
            let mut text = format!("{} {}", req.key, req.operator.to_ascii_lowercase());
            if let Some(values) = req.values.as_ref().filter(|v| !v.is_empty()) {
                let _ = write!(text, " [{}]", values.join(", "));
            }
            let _ = writeln!(out, "{text}");
        }
    }
}

/// `describe KIND NAME` of a stored kind: the text, or None when there is no such object.
pub fn describe(paths: &Paths, kind: Kind, namespace: &str, name: &str) -> Result<Option<String>> {
    let store = ObjectStore::new(paths);
    let now = Timestamp::now();
    let context = || format!("reading {} {name:?}", kind.resource());
    Ok(match kind {
        Kind::ConfigMap => store
            .get::<ConfigMap>(namespace, name)
            .with_context(context)?
            .map(|o| describe_config_map(&o, &[], now)),
        Kind::Secret => store
            .get::<Secret>(namespace, name)
            .with_context(context)?
            .map(|o| describe_secret(&o)),
        Kind::PersistentVolumeClaim => {
            match store
                .get::<PersistentVolumeClaim>(namespace, name)
                .with_context(context)?
            {
                Some(c) => {
                    // The pods whose volumes name the claim, ephemeral ones included
                    // [describe.go getPodsForPVC].
                    let pods = crate::volume::claim::users(paths, namespace, name)
                        .context("reading pod records")?;
                    let events = store
                        .events::<PersistentVolumeClaim>(namespace, name)
                        .with_context(context)?;
                    Some(describe_claim(&c, &pods, &events, now))
                }
                None => None,
            }
        }
        Kind::PersistentVolume => store
            .get::<PersistentVolume>(namespace, name)
            .with_context(context)?
            .map(|o| describe_volume(&o, &[], now)),
        Kind::Pod | Kind::Event => None,
    })
}

/// The names of every object of a stored kind in `namespace`, sorted (`describe KIND`).
pub fn names(paths: &Paths, kind: Kind, namespace: &str) -> Result<Vec<String>> {
    let rows = super::objects::list(paths, kind, Some(namespace), Timestamp::now())?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::status::tests::ts;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PersistentVolumeClaimStatus};
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    fn event() -> Event {
        Event {
            type_: "Normal".into(),
            reason: "ProvisioningSucceeded".into(),
            message: "Successfully provisioned volume pvc-1".into(),
            field_path: String::new(),
            first_timestamp: "2024-01-01T00:00:00Z".into(),
            last_timestamp: "2024-01-01T00:00:00Z".into(),
            count: 1,
        }
    }

    #[test]
    fn config_map_shows_values_and_binary_sizes() {
        let mut cm = ConfigMap {
            metadata: meta("settings"),
            data: Some(BTreeMap::from([
                ("a.conf".into(), "x=1\ny=2".into()),
                ("b".into(), "2".into()),
            ])),
            binary_data: Some(BTreeMap::from([("blob".into(), ByteString(vec![0, 1, 2]))])),
            ..Default::default()
        };
        cm.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        cm.metadata.annotations = Some(BTreeMap::from([
            ("note".into(), "hello".into()),
            (
                "kubectl.kubernetes.io/last-applied-configuration".into(),
                "{}".into(),
            ),
        ]));
        assert_eq!(
            describe_config_map(&cm, &[], ts("2024-01-01T00:00:00Z")),
            "Name:         settings\nNamespace:    default\nLabels:       app=web\n\
             Annotations:  note: hello\n\nData\n====\na.conf:\n----\nx=1\ny=2\n\nb:\n----\n2\n\n\n\
             BinaryData\n====\nblob: 3 bytes\n\nEvents:  <none>\n"
        );
    }

    #[test]
    fn secret_shows_sizes_never_values() {
        let secret = Secret {
            metadata: meta("creds"),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                ("password".into(), ByteString(b"hunter2".to_vec())),
                ("user".into(), ByteString(b"me".to_vec())),
            ])),
            ..Default::default()
        };
        let text = describe_secret(&secret);
        assert_eq!(
            text,
            "Name:         creds\nNamespace:    default\nLabels:       <none>\n\
             Annotations:  <none>\n\nType:  Opaque\n\nData\n====\npassword:  7 bytes\n\
             user:      2 bytes\n"
        );
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn claim_with_users_and_events() {
        let claim = PersistentVolumeClaim {
            metadata: meta("data"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some("local-path".into()),
                volume_mode: Some("Filesystem".into()),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        };
        let now = ts("2024-01-01T00:01:00Z");
        assert_eq!(
            describe_claim(&claim, &[], &[], now),
            "Name:          data\nNamespace:     default\nStorageClass:  local-path\n\
             Status:        Pending\nVolume:        \nLabels:        <none>\n\
             Annotations:   <none>\nFinalizers:    []\nCapacity:      \nAccess Modes:  \n\
             VolumeMode:    Filesystem\nUsed By:       <none>\nEvents:        <none>\n"
        );
        let text = describe_claim(&claim, &["web-2".into(), "web-1".into()], &[event()], now);
        assert!(
            text.contains("Used By:       web-1\n               web-2\nEvents:\n"),
            "{text}"
        );
        assert!(
            text.contains("  Normal  ProvisioningSucceeded  60s   persistentvolume-controller  Successfully provisioned volume pvc-1\n"),
            "{text}"
        );
    }
}
