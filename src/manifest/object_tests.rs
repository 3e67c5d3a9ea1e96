//! The API server's refusals of ConfigMaps, Secrets and claims, word for word
//! [pkg/apis/core/validation/validation.go, apimachinery util/validation].

use super::*;

/// Every problem of `text`, as `path: body` lines.
fn causes(text: &str) -> Vec<String> {
    match decode_objects(text, "f.yaml") {
        Ok(objects) => panic!("expected a refusal, got {objects:?}"),
        Err(e) => e.problems().iter().map(Problem::cause).collect(),
    }
}

fn only(text: &str) -> String {
    let mut all = causes(text);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' \
or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
'[-._a-zA-Z0-9]+')";

fn cm(body: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n{body}")
}

fn secret(type_: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ntype: {type_}\n{data}")
}

fn claim(spec: &str) -> String {
    format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: p\nspec:\n{spec}")
}

const CLAIM_OK: &str =
    "  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n";

#[test]
fn object_names_and_namespaces() {
    assert_eq!(
        only("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Web\n"),
        format!("metadata.name: Invalid value: \"Web\": {SUBDOMAIN}")
    );
    assert_eq!(
        only("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: x\n"),
        "metadata.name: Required value: name or generateName is required"
    );
    assert_eq!(
        only("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: a.b\n"),
        "metadata.namespace: Invalid value: \"a.b\": must not contain dots"
    );
    let long = "a".repeat(254);
    let all = causes(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {long}\n"
    ));
    assert_eq!(
        all,
        [format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 253 characters"
        )]
    );
}

#[test]
fn config_map_keys_duplicates_and_size() {
    assert_eq!(
        only(&cm("data:\n  a b: x\n")),
        format!("data[a b]: Invalid value: \"a b\": {CONFIG_KEY}")
    );
    assert_eq!(
        only(&cm("binaryData:\n  ..x: eA==\n")),
        "binaryData[..x]: Invalid value: \"..x\": must not start with '..'"
    );
    assert_eq!(
        only(&cm("data:\n  k: x\nbinaryData:\n  k: eA==\n")),
        "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
    );
    let big = "x".repeat(objects::MAX_DATA_BYTES / 2 + 1);
    assert_eq!(
        only(&cm(&format!("data:\n  a: {big}\n  b: {big}\n"))),
        "[]: Too long: may not be more than 1048576 bytes"
    );
}

#[test]
fn secret_keys_and_size() {
    assert_eq!(
        only(&secret("Opaque", "stringData:\n  a/b: x\n")),
        format!("data[a/b]: Invalid value: \"a/b\": {CONFIG_KEY}")
    );
    let big = "x".repeat(objects::MAX_DATA_BYTES + 1);
    assert_eq!(
        only(&secret("Opaque", &format!("stringData:\n  a: {big}\n"))),
        "data: Too long: may not be more than 1048576 bytes"
    );
}

#[test]
fn secret_types_require_their_keys() {
    assert_eq!(
        only(&secret("kubernetes.io/tls", "stringData:\n  tls.crt: c\n")),
        "data[tls.key]: Required value"
    );
    assert_eq!(
        causes(&secret("kubernetes.io/basic-auth", "")),
        [
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    assert!(decode_objects(
        &secret(
            "kubernetes.io/basic-auth",
            "stringData:\n  password: \"\"\n"
        ),
        "f"
    )
    .is_ok());
    assert_eq!(
        only(&secret(
            "kubernetes.io/ssh-auth",
            "stringData:\n  ssh-privatekey: \"\"\n"
        )),
        "data[ssh-privatekey]: Required value"
    );
    assert_eq!(
        only(&secret("kubernetes.io/dockercfg", "")),
        "data[.dockercfg]: Required value"
    );
    assert_eq!(
        only(&secret(
            "kubernetes.io/dockerconfigjson",
            "stringData:\n  .dockerconfigjson: \"[1]\"\n"
        )),
        "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": json: cannot \
         unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(
        only(&secret(
            "kubernetes.io/dockerconfigjson",
            "stringData:\n  .dockerconfigjson: \"{\"\n"
        )),
        "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": unexpected end \
         of JSON input"
    );
    assert_eq!(
        only(&secret(
            "kubernetes.io/dockerconfigjson",
            "stringData:\n  .dockerconfigjson: \"x\"\n"
        )),
        "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid \
         character 'x' looking for beginning of value"
    );
    assert_eq!(
        only(&secret("kubernetes.io/service-account-token", "")),
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"
    );
}

#[test]
fn claim_access_modes() {
    assert_eq!(
        only(&claim("  resources:\n    requests:\n      storage: 1Gi\n")),
        "spec.accessModes: Required value: at least 1 access mode is required"
    );
    assert_eq!(
        only(&claim(
            &CLAIM_OK.replace("[ReadWriteOnce]", "[ReadWriteAlways]")
        )),
        "spec.accessModes: Unsupported value: \"ReadWriteAlways\": supported values: \
         \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""
    );
    assert_eq!(
        only(&claim(&CLAIM_OK.replace(
            "[ReadWriteOnce]",
            "[ReadWriteOncePod, ReadOnlyMany]"
        ))),
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
    );
    // The same mode twice is not "other modes".
    assert!(decode_objects(
        &claim(&CLAIM_OK.replace("[ReadWriteOnce]", "[ReadWriteOncePod, ReadWriteOncePod]")),
        "f"
    )
    .is_ok());
}

#[test]
fn claim_storage_class_and_mode() {
    assert_eq!(
        only(&claim("  accessModes: [ReadWriteOnce]\n")),
        "spec.resources[storage]: Required value"
    );
    assert_eq!(
        only(&claim(&CLAIM_OK.replace("1Gi", "0Gi"))),
        "spec.resources[storage]: Invalid value: \"0\": must be greater than zero"
    );
    assert_eq!(
        only(&claim(&CLAIM_OK.replace("1Gi", "-1Gi"))),
        "spec.resources[storage]: Invalid value: \"-1Gi\": must be greater than zero"
    );
    assert_eq!(
        only(&claim(&format!("{CLAIM_OK}  storageClassName: Fast\n"))),
        format!("spec.storageClassName: Invalid value: \"Fast\": {SUBDOMAIN}")
    );
    let all = causes(&claim(&format!("{CLAIM_OK}  volumeMode: Disk\n")));
    assert!(
        all.contains(
            &"spec.volumeMode: Unsupported value: \"Disk\": supported values: \"Block\", \
              \"Filesystem\""
                .to_string()
        ),
        "{all:?}"
    );
}

#[test]
fn claim_defaults() {
    let objects = decode_objects(&claim(CLAIM_OK), "f").unwrap();
    let Object::PersistentVolumeClaim(c) = &objects[0] else {
        panic!()
    };
    let spec = c.spec.as_ref().unwrap();
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(phase, Some("Pending"));
    // An empty class is a choice (no class), not a default.
    let objects = decode_objects(
        &claim(&format!("{CLAIM_OK}  storageClassName: \"\"\n")),
        "f",
    )
    .unwrap();
    let Object::PersistentVolumeClaim(c) = &objects[0] else {
        panic!()
    };
    assert_eq!(
        c.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("")
    );
}

#[test]
fn problems_render_with_their_document() {
    let err = decode_objects(&cm("data:\n  a b: x\n"), "f.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("f.yaml: document 1: data[a b]: Invalid value: \"a b\": a valid config"),
        "{err}"
    );
}

#[test]
fn go_quote_escapes_as_go() {
    assert_eq!(go_quote("a\"b\\c\n\t\u{1}é"), "\"a\\\"b\\\\c\\n\\t\\x01é\"");
}

#[test]
fn messages_of_names_and_keys() {
    use super::names::messages;
    assert!(messages::config_key("a.b_C-1").is_empty());
    assert_eq!(messages::config_key("."), ["must not be '.'"]);
    assert_eq!(messages::config_key(""), [CONFIG_KEY]);
    assert_eq!(
        messages::config_key(&"a".repeat(254)),
        ["must be no more than 253 characters"]
    );
    assert!(messages::env_var_name("MY_VAR.x-1").is_empty());
    assert_eq!(
        messages::env_var_name("1X"),
        [
            "a valid environment variable name must consist of alphabetic characters, digits, \
          '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or \
          'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is \
          '[-._a-zA-Z][-._a-zA-Z0-9]*')"
        ]
    );
    assert_eq!(
        messages::dns1123_label("A"),
        [
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
          '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
          '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
}

#[test]
fn labels_and_annotation_keys() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {app: web, example.com/tier: front, ok: ''}\n  annotations: {Note: x}\n";
    assert!(decode_objects(text, "f.yaml").is_ok());
    let bad = text.replace("app: web", "-app: web-");
    assert_eq!(
        causes(&bad),
        [
            "metadata.labels: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"web-\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ]
    );
    let prefix = text.replace("example.com/tier", "Example.com/tier");
    assert!(only(&prefix).starts_with("metadata.labels: Invalid value: \"Example.com/tier\": prefix part a lowercase RFC 1123 subdomain"));
    let long = text.replace("ok: ''", &format!("ok: {}", "v".repeat(64)));
    assert!(
        only(&long).ends_with("must be no more than 63 characters"),
        "{}",
        only(&long)
    );
}
