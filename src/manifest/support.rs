//! The support table: which Pod fields peapod's runtime implements. A field that is not listed
//! is refused with `not supported: <path>`, so a new Kubernetes field can never be silently
//! ignored. To widen support, implement the feature in the runtime and change its row here.
//!
//! The table is matched against the decoded Pod re-serialized to JSON; paths use the manifest's
//! camelCase names, and `[]` stands for any element of a list. A refused feature that is set to
//! its no-op value (`false`, `""`, `[]`, `{}` for [`Support::No`]; exactly the value given in
//! [`Support::UnlessEquals`]) is accepted.

use serde_json::Value;

use super::{Problem, Reason};

/// How peapod treats one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented (or without effect on one node without a scheduler): the whole subtree.
    Yes,
    /// An object or a list of objects whose own fields are looked up in the table.
    Into,
    /// Not implemented: refused unless set to a no-op value.
    No,
    /// Not implemented, but this value (as JSON text) is the no-op default and is accepted.
    UnlessEquals(&'static str),
}

use Support::{Into, No, UnlessEquals, Yes};

/// The support table of one kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Pod,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
}

impl Table {
    /// Finds the row for a normalized path (`spec.containers[].env[].name`).
    pub fn lookup(self, pattern: &str) -> Option<Support> {
        if let Some(found) = find(META_FIELDS, pattern) {
            return Some(found);
        }
        match self {
            Table::Pod => lookup(pattern),
            Table::ConfigMap => find(CONFIG_MAP_FIELDS, pattern),
            Table::Secret => find(SECRET_FIELDS, pattern),
            Table::PersistentVolumeClaim => find(CLAIM_FIELDS, pattern),
        }
    }
}

/// Fields every kind has: type, object metadata, and a status the API server ignores on create.
pub const META_FIELDS: &[(&str, Support)] = &[
    ("apiVersion", Yes),
    ("kind", Yes),
    ("metadata", Into),
    ("metadata.name", Yes),
    ("metadata.namespace", Yes),
    ("metadata.labels", Yes),
    ("metadata.annotations", Yes),
    ("metadata.uid", Yes), // server-set fields from `kubectl get -o yaml`; no effect on create
    ("metadata.resourceVersion", Yes),
    ("metadata.creationTimestamp", Yes),
    ("metadata.generation", Yes),
    ("metadata.managedFields", Yes),
    ("metadata.selfLink", Yes),
    ("metadata.ownerReferences", Yes), // no garbage collector, no owners
    ("metadata.generateName", No),
    ("metadata.finalizers", No),
    ("metadata.deletionTimestamp", No),
    ("metadata.deletionGracePeriodSeconds", No),
];

/// Pod-level fields. Container fields are in [`CONTAINER_FIELDS`].
pub const POD_FIELDS: &[(&str, Support)] = &[
    ("status", Yes), // written by the runtime; ignored on create, as the API server does
    ("spec", Into),
    ("spec.containers", Into),
    ("spec.initContainers", Into), // run in order before the containers; sidecars with Always
    ("spec.restartPolicy", Yes),
    ("spec.terminationGracePeriodSeconds", Yes), // covers preStop, the signal, then SIGKILL
    ("spec.activeDeadlineSeconds", Yes),         // Failed/DeadlineExceeded, containers stopped
    ("spec.shareProcessNamespace", Yes),         // one pid namespace held by the pause process
    // Pod-level resources (1.34 beta): the pod cgroup's limits and cpu.weight, the QoS class.
    ("spec.resources", Into),
    ("spec.resources.requests", Yes),
    ("spec.resources.limits", Yes),
    ("spec.resources.claims", Yes), // forbidden at pod level by validation, as upstream
    ("spec.os", Into),
    ("spec.os.name", Yes), // linux runs; windows is rejected by the node's admission
    ("spec.hostname", Yes),
    ("spec.subdomain", Yes),
    ("spec.hostAliases", Yes),
    ("spec.dnsPolicy", Yes),
    ("spec.dnsConfig", Yes),
    ("spec.volumes", Into),
    ("spec.volumes[].name", Yes),
    ("spec.volumes[].emptyDir", Into),
    ("spec.volumes[].emptyDir.medium", Yes), // "" or Memory, checked in validate
    ("spec.volumes[].emptyDir.sizeLimit", Yes), // tmpfs size, or eviction when over it
    ("spec.volumes[].emptyDir.mode", Yes),   // alpha (EmptyDirVolumeMode), as if enabled
    ("spec.volumes[].hostPath", Yes),        // type checked (and created) at setup
    // Claims bind to a directory of peapod's local-path provisioner (volume::claim).
    ("spec.volumes[].persistentVolumeClaim", Yes),
    ("spec.volumes[].ephemeral", Into),
    ("spec.volumes[].ephemeral.volumeClaimTemplate", Into),
    ("spec.volumes[].ephemeral.volumeClaimTemplate.metadata", Yes),
    // API data (`volume::{config_map, secret, downward_api, projected}`); paths, modes and
    // field paths checked in validate_volumes. `defaultUser`/`user` are refused (not listed).
    ("spec.volumes[].configMap", Into),
    ("spec.volumes[].configMap.name", Yes),
    ("spec.volumes[].configMap.defaultMode", Yes),
    ("spec.volumes[].configMap.optional", Yes),
    ("spec.volumes[].configMap.items", Into),
    ("spec.volumes[].configMap.items[].key", Yes),
    ("spec.volumes[].configMap.items[].path", Yes),
    ("spec.volumes[].configMap.items[].mode", Yes),
    ("spec.volumes[].secret", Into),
    ("spec.volumes[].secret.secretName", Yes),
    ("spec.volumes[].secret.defaultMode", Yes),
    ("spec.volumes[].secret.optional", Yes),
    ("spec.volumes[].secret.items", Into),
    ("spec.volumes[].secret.items[].key", Yes),
    ("spec.volumes[].secret.items[].path", Yes),
    ("spec.volumes[].secret.items[].mode", Yes),
    ("spec.volumes[].downwardAPI", Into),
    ("spec.volumes[].downwardAPI.defaultMode", Yes),
    ("spec.volumes[].downwardAPI.items", Into),
    ("spec.volumes[].downwardAPI.items[].path", Yes),
    ("spec.volumes[].downwardAPI.items[].mode", Yes),
    ("spec.volumes[].downwardAPI.items[].fieldRef", Yes),
    ("spec.volumes[].downwardAPI.items[].resourceFieldRef", Yes),
    ("spec.volumes[].projected", Into),
    ("spec.volumes[].projected.defaultMode", Yes),
    ("spec.volumes[].projected.sources", Into),
    ("spec.volumes[].projected.sources[].configMap", Into),
    ("spec.volumes[].projected.sources[].configMap.name", Yes),
    ("spec.volumes[].projected.sources[].configMap.optional", Yes),
    ("spec.volumes[].projected.sources[].configMap.items", Into),
    (
        "spec.volumes[].projected.sources[].configMap.items[].key",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].configMap.items[].path",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].configMap.items[].mode",
        Yes,
    ),
    ("spec.volumes[].projected.sources[].secret", Into),
    ("spec.volumes[].projected.sources[].secret.name", Yes),
    ("spec.volumes[].projected.sources[].secret.optional", Yes),
    ("spec.volumes[].projected.sources[].secret.items", Into),
    ("spec.volumes[].projected.sources[].secret.items[].key", Yes),
    (
        "spec.volumes[].projected.sources[].secret.items[].path",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].secret.items[].mode",
        Yes,
    ),
    ("spec.volumes[].projected.sources[].downwardAPI", Into),
    ("spec.volumes[].projected.sources[].downwardAPI.items", Into),
    (
        "spec.volumes[].projected.sources[].downwardAPI.items[].path",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].downwardAPI.items[].mode",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].downwardAPI.items[].fieldRef",
        Yes,
    ),
    (
        "spec.volumes[].projected.sources[].downwardAPI.items[].resourceFieldRef",
        Yes,
    ),
    // No token issuer, trust bundles or pod certificates on one node without an API server.
    ("spec.volumes[].projected.sources[].serviceAccountToken", No),
    ("spec.volumes[].projected.sources[].clusterTrustBundle", No),
    ("spec.volumes[].projected.sources[].podCertificate", No),
    ("spec.securityContext", Into),
    ("spec.securityContext.runAsUser", Yes),
    ("spec.securityContext.runAsGroup", Yes),
    ("spec.securityContext.runAsNonRoot", Yes),
    ("spec.securityContext.supplementalGroups", Yes),
    ("spec.securityContext.supplementalGroupsPolicy", Yes), // Merge, or Strict: no image groups
    ("spec.securityContext.fsGroup", Yes), // volume ownership and a supplementary group
    ("spec.securityContext.fsGroupChangePolicy", Yes),
    // Checked in validate (manifest::security); the node's part at admission (pod::admission).
    ("spec.securityContext.seccompProfile", Yes),
    ("spec.securityContext.sysctls", Yes),
    ("spec.securityContext.appArmorProfile", Yes),
    // Scheduling and API-access fields: no effect on one node without a scheduler.
    ("spec.nodeSelector", Yes),
    ("spec.affinity", Yes),
    ("spec.tolerations", Yes),
    ("spec.schedulerName", Yes),
    ("spec.priority", Yes),
    ("spec.priorityClassName", Yes),
    ("spec.preemptionPolicy", Yes),
    ("spec.topologySpreadConstraints", Yes),
    ("spec.nodeName", Yes),
    ("spec.serviceAccountName", Yes),
    ("spec.serviceAccount", Yes),
    ("spec.automountServiceAccountToken", Yes), // no token is mounted either way
    ("spec.enableServiceLinks", Yes),           // no services, so no service variables
    ("spec.imagePullSecrets", Yes),             // dockerconfigjson/dockercfg Secrets, for pulls
    // Refused: behaviour the runtime does not implement.
    ("spec.hostNetwork", Yes), // no veth, podIP = hostIP, the node's hosts file
    ("spec.hostPID", Yes),
    ("spec.hostIPC", Yes),
    // User namespaces are not implemented: hostUsers: false is refused by name.
    ("spec.hostUsers", UnlessEquals("true")),
    ("spec.setHostnameAsFQDN", No),
    ("spec.hostnameOverride", No),
    ("spec.ephemeralContainers", No),
    ("spec.runtimeClassName", No),
    ("spec.overhead", No),
    ("spec.readinessGates", No),
    ("spec.resourceClaims", No),
    ("spec.schedulingGates", No),
];

/// Fields of one entry of `spec.containers` or `spec.initContainers`.
pub const CONTAINER_FIELDS: &[(&str, Support)] = &[
    ("name", Yes),
    ("image", Yes),
    ("imagePullPolicy", Yes),
    ("command", Yes),
    ("args", Yes),
    ("workingDir", Yes),
    ("terminationMessagePath", Yes),
    ("terminationMessagePolicy", Yes),
    // Init containers: Always makes a native sidecar. Any container may set its own policy and
    // restartPolicyRules (ContainerRestartRules; RestartAllContainers as with
    // RestartAllContainersOnContainerExits on): pod::machine::rules.
    ("restartPolicy", Yes),
    ("restartPolicyRules", Yes),
    // Hooks and probes run by the supervisor through src/probe (every handler kind the API
    // allows; a tcpSocket hook fails at run time as the kubelet's does).
    ("lifecycle", Into),
    ("lifecycle.stopSignal", Yes),
    ("lifecycle.postStart", Yes),
    ("lifecycle.preStop", Yes),
    ("livenessProbe", Yes),
    ("readinessProbe", Yes),
    ("startupProbe", Yes),
    ("env", Into),
    ("env[].name", Yes),
    ("env[].value", Yes),
    ("env[].valueFrom", Into),
    ("env[].valueFrom.fieldRef", Yes), // field paths checked in validate
    ("env[].valueFrom.resourceFieldRef", Yes),
    ("env[].valueFrom.configMapKeyRef", Yes),
    ("env[].valueFrom.secretKeyRef", Yes),
    ("envFrom", Into),
    ("envFrom[].prefix", Yes),
    ("envFrom[].configMapRef", Yes),
    ("envFrom[].secretRef", Yes),
    ("ports", Into),
    ("ports[].containerPort", Yes),
    ("ports[].name", Yes),
    ("ports[].protocol", Yes),
    ("ports[].hostPort", Yes), // network::hostport, as the CNI portmap plugin
    ("ports[].hostIP", Yes),
    ("resources", Into),
    ("resources.limits", Yes),
    ("resources.requests", Yes),
    ("volumeMounts", Into),
    ("volumeMounts[].name", Yes),
    ("volumeMounts[].mountPath", Yes),
    ("volumeMounts[].readOnly", Yes),
    ("volumeMounts[].recursiveReadOnly", Yes), // mount_setattr(AT_RECURSIVE)
    ("volumeMounts[].subPath", Yes),           // made and bind-mounted safely on the host
    ("volumeMounts[].subPathExpr", Yes),
    ("volumeMounts[].mountPropagation", Yes), // Bidirectional: host-to-container only
    ("volumeMounts[].bindMountOptions", No),  // alpha (VolumeBindMountOptions)
    ("securityContext", Into),
    ("securityContext.runAsUser", Yes),
    ("securityContext.runAsGroup", Yes),
    ("securityContext.runAsNonRoot", Yes),
    ("securityContext.privileged", Yes),
    ("securityContext.readOnlyRootFilesystem", Yes),
    ("securityContext.allowPrivilegeEscalation", Yes),
    ("securityContext.capabilities", Into),
    ("securityContext.capabilities.add", Yes),
    ("securityContext.capabilities.drop", Yes),
    ("securityContext.procMount", Yes), // Unmasked needs hostUsers: false, refused in validate
    ("securityContext.seccompProfile", Yes),
    ("securityContext.appArmorProfile", Yes),
    ("stdin", Yes),
    ("stdinOnce", Yes),
    ("tty", Yes),
];

/// A ConfigMap: all of it.
pub const CONFIG_MAP_FIELDS: &[(&str, Support)] =
    &[("data", Yes), ("binaryData", Yes), ("immutable", Yes)];

/// A Secret: all of it.
pub const SECRET_FIELDS: &[(&str, Support)] = &[
    ("data", Yes),
    ("stringData", Yes),
    ("type", Yes),
    ("immutable", Yes),
];

/// A PersistentVolumeClaim, served by peapod's local-path provisioner: a directory per claim.
pub const CLAIM_FIELDS: &[(&str, Support)] = &[
    ("status", Yes), // written by the provisioner; ignored on create
    ("spec", Into),
    ("spec.accessModes", Yes),
    ("spec.resources", Into),
    ("spec.resources.requests", Yes), // storage, checked in validate
    ("spec.resources.limits", Yes),
    ("spec.storageClassName", Yes),
    ("spec.volumeMode", UnlessEquals("\"Filesystem\"")),
    ("spec.volumeName", No), // pre-binding to a named volume: no static volumes here
    ("spec.selector", No),   // a provisioner cannot honour a selector
    ("spec.dataSource", No),
    ("spec.dataSourceRef", No),
    ("spec.volumeAttributesClassName", No),
];

/// Finds the row of a Pod field for a normalized path (`spec.containers[].env[].name`).
pub fn lookup(pattern: &str) -> Option<Support> {
    for prefix in ["spec.containers[].", "spec.initContainers[]."] {
        if let Some(rest) = pattern.strip_prefix(prefix) {
            return find(CONTAINER_FIELDS, rest);
        }
    }
    // A generic ephemeral volume's claim template is a claim: the claim's table applies.
    if let Some(rest) = pattern
        .strip_prefix("spec.volumes[].ephemeral.volumeClaimTemplate.")
        .filter(|rest| rest.starts_with("spec"))
    {
        return find(CLAIM_FIELDS, rest);
    }
    find(META_FIELDS, pattern).or_else(|| find(POD_FIELDS, pattern))
}

fn find(table: &[(&str, Support)], pattern: &str) -> Option<Support> {
    table
        .iter()
        .find(|(path, _)| *path == pattern)
        .map(|(_, support)| *support)
}

/// Every refused feature the object uses, as `not supported` problems. `prefix` locates the
/// object in its document (`items[2].`).
pub(crate) fn check<T: serde::Serialize>(
    object: &T,
    table: Table,
    document: usize,
    prefix: &str,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    match serde_json::to_value(object) {
        Ok(value) => {
            let mut walker = Walker {
                table,
                doc: document,
                out: &mut problems,
            };
            walker.walk(&value, String::new(), String::new());
        }
        Err(e) => problems.push(Problem::new(
            document,
            "",
            Reason::Invalid(format!("object cannot be re-encoded: {e}")),
        )),
    }
    for p in &mut problems {
        p.path = format!("{prefix}{}", p.path);
    }
    problems
}

/// What a user needs to know of a refused value beyond its path: what it would ask for, and
/// what to write instead.
const WHY_REFUSED: &[(&str, &str)] = &[(
    "spec.hostUsers",
    "peapod does not implement user namespaces; remove the field, or set it to true to run \
     the pod with the host's user IDs",
)];

struct Walker<'a> {
    table: Table,
    doc: usize,
    out: &'a mut Vec<Problem>,
}

impl Walker<'_> {
    fn walk(&mut self, value: &Value, path: String, pattern: String) {
        let support = if pattern.is_empty() {
            Into
        } else {
            self.table.lookup(&pattern).unwrap_or(No)
        };
        match support {
            Yes => {}
            Into => match value {
                Value::Object(map) => {
                    for (key, child) in map {
                        let (p, q) = if path.is_empty() {
                            (key.clone(), key.clone())
                        } else {
                            (format!("{path}.{key}"), format!("{pattern}.{key}"))
                        };
                        self.walk(child, p, q);
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let p = format!("{path}[{index}]");
                        self.walk_element(item, p, format!("{pattern}[]"));
                    }
                }
                _ => {}
            },
            No => {
                if !is_no_op(value) {
                    self.refuse(path, &pattern);
                }
            }
            UnlessEquals(allowed) => {
                let no_op = serde_json::from_str::<Value>(allowed).ok();
                if !value.is_null() && no_op.as_ref() != Some(value) {
                    self.refuse(path, &pattern);
                }
            }
        }
    }

    /// A list element is an object whose fields are looked up under `pattern`.
    fn walk_element(&mut self, item: &Value, path: String, pattern: String) {
        match item {
            Value::Object(map) => {
                for (key, child) in map {
                    self.walk(child, format!("{path}.{key}"), format!("{pattern}.{key}"));
                }
            }
            _ => self.refuse(path, &pattern),
        }
    }

    /// `path` is refused; `pattern` (its place in the table) finds what else to say of it.
    fn refuse(&mut self, path: String, pattern: &str) {
        let why = WHY_REFUSED.iter().find(|(p, _)| *p == pattern);
        let why = why.map(|(_, why)| why.to_string());
        self.out
            .push(Problem::new(self.doc, path, Reason::NotSupported(why)));
    }
}

fn is_no_op(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

/// `env[].valueFrom.fieldRef.fieldPath` values the runtime fills in: the API server's list
/// [validation.go validEnvDownwardAPIFieldPathExpressions]. The whole labels and annotations
/// maps are for downwardAPI volumes only; env takes one key of them, in the subscripted paths
/// of [`SUBSCRIPTED_FIELD_REFS`].
pub const SUPPORTED_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `downwardAPI.items[].fieldRef.fieldPath` values [validVolumeDownwardAPIFieldPathExpressions].
pub const SUPPORTED_VOLUME_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

/// Fields that take a key subscript, `metadata.labels['app']`, in env and volumes.
pub const SUBSCRIPTED_FIELD_REFS: &[&str] = &["metadata.labels", "metadata.annotations"];

/// `env[].valueFrom.resourceFieldRef.resource` values the runtime fills in.
pub const SUPPORTED_RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// `emptyDir.medium` values: node disk, or tmpfs (not hugetlbfs).
pub const SUPPORTED_EMPTY_DIR_MEDIA: &[&str] = &[
    crate::volume::empty_dir::MEDIUM_DEFAULT,
    crate::volume::empty_dir::MEDIUM_MEMORY,
];
