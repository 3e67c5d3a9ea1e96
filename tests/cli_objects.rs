//! The real binary on ConfigMaps, Secrets and claims, as a user types it: apply a mixed file,
//! then get/describe/delete/create, asserting kubectl's exact output. No root, no VM: every
//! state directory points into a temporary directory.

mod common;

use common::cli::{ages, Peapod};
use std::path::Path;

const MIXED: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: hunter2
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
";

#[test]
fn apply_get_describe_delete() {
    let p = Peapod::new();
    let file = p.write("mixed.yaml", MIXED);
    p.ok(
        &["apply", "-f", &file],
        "configmap/settings created\nsecret/creds created\npersistentvolumeclaim/data created\n",
    );
    p.ok(
        &["apply", "-f", &file],
        "configmap/settings unchanged\nsecret/creds unchanged\npersistentvolumeclaim/data unchanged\n",
    );

    let r = p.run(&["get", "configmaps"]);
    assert_eq!(
        ages(&r.stdout),
        "NAME       DATA   AGE\nsettings   2      AGE\n"
    );
    let r = p.run(&["get", "secret", "creds"]);
    assert_eq!(
        ages(&r.stdout),
        "NAME    TYPE     DATA   AGE\ncreds   Opaque   1      AGE\n"
    );
    let r = p.run(&["get", "pvc"]);
    assert_eq!(
        ages(&r.stdout),
        "NAME   STATUS    VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE\n\
         data   Pending                                      local-path     <unset>                 AGE\n"
    );
    let r = p.run(&["get", "cm,secret", "-A"]);
    assert_eq!(
        ages(&r.stdout),
        "NAMESPACE   NAME                 DATA   AGE\ndefault     configmap/settings   2      AGE\n\n\
         NAMESPACE   NAME           TYPE     DATA   AGE\ndefault     secret/creds   Opaque   1      AGE\n"
    );
    p.ok(&["get", "cm", "-o", "name"], "configmap/settings\n");
    p.ok(
        &["get", "cm", "settings", "-o", "jsonpath={.data.greeting}"],
        "hello",
    );

    let r = p.run(&["get", "cm", "settings", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["kind"], "ConfigMap");
    assert_eq!(v["metadata"]["namespace"], "default");
    assert!(
        r.stdout.starts_with("{\n    \"apiVersion\": \"v1\",\n"),
        "{}",
        r.stdout
    );
    let r = p.run(&["get", "secrets", "-o", "yaml"]);
    assert!(
        r.stdout
            .starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("kind: List\n"), "{}", r.stdout);

    p.fails(
        &["get", "cm", "nope"],
        "Error from server (NotFound): configmaps \"nope\" not found\n",
    );
    let r = p.run(&["get", "cm", "-n", "empty"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, "No resources found in empty namespace.\n")
    );
    let r = p.run(&["get", "pv"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, "No resources found\n"));
    let r = p.run(&["get", "deployments"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"deployments\"\n"
        )
    );

    p.ok(
        &["describe", "secret", "creds"],
        "Name:         creds\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\n\
         Type:  Opaque\n\nData\n====\npassword:  7 bytes\n",
    );
    p.ok(
        &["describe", "cm", "settings"],
        "Name:         settings\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\n\
         Data\n====\ngreeting:\n----\nhello\n\nmode:\n----\nfast\n\n\nBinaryData\n====\n\nEvents:  <none>\n",
    );
    let r = p.run(&["describe", "pvc", "data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "Name:          data\nNamespace:     default\nStorageClass:  local-path\n\
             Status:        Pending\nVolume:        \nLabels:        <none>\nAnnotations:   <none>\n\
             Finalizers:    [kubernetes.io/pvc-protection]\nCapacity:      \nAccess Modes:  \n\
             VolumeMode:    Filesystem\nUsed By:       <none>\nEvents:\n"
        ),
        "{}",
        r.stdout
    );
    // The claim waits for its first pod (WaitForFirstConsumer binding).
    assert!(
        r.stdout.contains(
            "  Normal  WaitForFirstConsumer  "
        ) && r.stdout.contains(
            "persistentvolume-controller  waiting for first consumer to be created before binding\n"
        ),
        "{}",
        r.stdout
    );

    let r = p.run(&["delete", "configmap", "settings", "nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "configmap \"settings\" deleted from default namespace\n"
    );
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): configmaps \"nope\" not found\n"
    );
    p.ok(
        &["delete", "pvc/data"],
        "persistentvolumeclaim \"data\" deleted from default namespace\n",
    );
    // The claim and the config map are gone already: kubectl goes on past them.
    let r = p.run(&["delete", "-f", &file]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "secret \"creds\" deleted from default namespace\n"
    );
    assert_eq!(
        r.stderr,
        "Error from server (NotFound): configmaps \"settings\" not found\n\
         Error from server (NotFound): persistentvolumeclaims \"data\" not found\n"
    );
    p.none_found(&["get", "secrets"]);
}

#[test]
fn apply_refuses_an_invalid_file_whole() {
    let p = Peapod::new();
    let bad = MIXED.replace("  storage: 1Gi", "  storage: 0");
    let file = p.write("bad.yaml", &bad);
    let r = p.run(&["apply", "-f", &file]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "error: {file}: document 3: spec.resources[storage]: Invalid value: \"0\": must be greater than zero\n"
        )
    );
    // Nothing was stored.
    p.none_found(&["get", "cm"]);
}

#[test]
fn create_configmap_and_secrets() {
    let p = Peapod::new();
    let conf = p.write("app.conf", "x=1\n");
    let env = p.write("vars.env", "# settings\nA=1\nB=two words\n");
    p.ok(
        &[
            "create",
            "configmap",
            "app",
            "--from-file",
            &conf,
            "--from-literal=k=v",
        ],
        "configmap/app created\n",
    );
    let r = p.run(&["get", "cm", "app", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["data"]["app.conf"], "x=1\n");
    assert_eq!(v["data"]["k"], "v");
    p.fails(
        &["create", "cm", "app", "--from-literal=k=v"],
        "error: failed to create configmap: configmaps \"app\" already exists\n",
    );
    p.ok(
        &[
            "create",
            "cm",
            "env",
            "--from-env-file",
            &env,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        "apiVersion: v1\ndata:\n  A: \"1\"\n  B: two words\nkind: ConfigMap\nmetadata:\n  name: env\n",
    );
    p.ok(
        &[
            "create",
            "cm",
            "env",
            "--from-env-file",
            &env,
            "--dry-run=client",
        ],
        "configmap/env created (dry run)\n",
    );
    p.fails(
        &["create", "cm", "dup", "--from-literal=a=1", "--from-literal=a=2"],
        "error: cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"dup\"\n",
    );
    p.fails(
        &[
            "create",
            "cm",
            "e",
            "--from-env-file",
            &env,
            "--from-literal=a=1",
        ],
        "error: from-env-file cannot be combined with from-file or from-literal\n",
    );

    p.ok(
        &[
            "create",
            "secret",
            "generic",
            "token",
            "--from-literal=token=abc",
            "--type=example.com/token",
            "-n",
            "apps",
        ],
        "secret/token created\n",
    );
    let r = p.run(&["get", "secrets", "-n", "apps"]);
    assert_eq!(
        ages(&r.stdout),
        "NAME    TYPE                DATA   AGE\ntoken   example.com/token   1      AGE\n"
    );
    p.ok(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=registry.example:5000",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "secret/regcred created\n",
    );
    let r = p.run(&["get", "secret", "regcred", "-o", "jsonpath={.type}"]);
    assert_eq!(r.stdout, "kubernetes.io/dockerconfigjson");
    p.fails(
        &["create", "secret", "docker-registry", "r2", "--docker-username=u"],
        "error: either --from-file or the combination of --docker-username, --docker-password and --docker-server is required\n",
    );
    let cert = p.write("tls.crt", "not a cert");
    let key = p.write("tls.key", "not a key");
    p.fails(
        &[
            "create", "secret", "tls", "t", "--cert", &cert, "--key", &key,
        ],
        "error: tls: failed to find any PEM data in certificate input\n",
    );
    assert!(!Path::new(&p.path("lib/objects/secrets/default/t.json")).exists());
}
