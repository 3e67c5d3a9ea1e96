//! Tests of `decode_pods` as a user sees it: messages, paths, defaults.

use super::*;

const GOOD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - containerPort: 80
    resources:
      limits:
        cpu: 500m
        memory: 128Mi
";

fn errors(text: &str) -> String {
    match decode_pods(text, "pod.yaml") {
        Ok(pods) => panic!("expected an error, got {} pods", pods.len()),
        Err(e) => e.to_string(),
    }
}

fn one(text: &str) -> Pod {
    match decode_pods(text, "pod.yaml") {
        Ok(mut pods) if pods.len() == 1 => pods.remove(0),
        other => panic!("expected one pod, got {other:?}"),
    }
}

#[test]
fn typo_names_the_path() {
    let text = GOOD.replace("    resources:", "    resorces:");
    let err = errors(&text);
    assert!(
        err.contains("pod.yaml: document 1: spec.containers[0].resorces: unknown field"),
        "{err}"
    );
}

#[test]
fn collects_all_errors_of_a_document() {
    let text = GOOD
        .replace("    resources:", "    resorces:")
        .replace("  name: web", "  name: web\n  lables: {}")
        .replace("containerPort: 80", "containerPort: eighty")
        .replace("kind: Pod", "kind: Pod\nspec2: 1");
    let err = errors(&text);
    for needle in [
        "spec.containers[0].resorces: unknown field",
        "metadata.lables: unknown field",
        "spec2: unknown field",
        "spec.containers[0].ports[0].containerPort: Invalid value: invalid type: string \"eighty\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn wrong_type_names_the_path() {
    let err = errors(&GOOD.replace("image: nginx", "image: [nginx]"));
    assert!(
        err.contains("spec.containers[0].image: Invalid value: invalid type"),
        "{err}"
    );
}

#[test]
fn bad_kind_and_api_version() {
    let err = errors(&GOOD.replace("kind: Pod", "kind: Deployment"));
    assert!(
        err.contains("kind Deployment is not supported, peapod takes Pod, ConfigMap"),
        "{err}"
    );
    let err = errors(&GOOD.replace("apiVersion: v1", "apiVersion: apps/v1"));
    assert!(err.contains("document 1: apiVersion"), "{err}");
}

#[test]
fn bad_names() {
    let err = errors(&GOOD.replace("name: web", "name: Web_1"));
    assert!(err.contains("metadata.name: Invalid value"), "{err}");
    let err = errors(&GOOD.replace("name: app", "name: app.1"));
    assert!(
        err.contains("spec.containers[0].name: Invalid value"),
        "{err}"
    );
    let err = errors(&GOOD.replace("  name: web\n", "  namespace: a\n"));
    assert!(err.contains("metadata.name: Required value"), "{err}");
}

#[test]
fn missing_image_and_containers() {
    let err = errors(&GOOD.replace("    image: nginx\n", ""));
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    let err = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: []\n");
    assert!(err.contains("spec.containers: Required value"), "{err}");
}

#[test]
fn bad_quantities() {
    let err = errors(&GOOD.replace("cpu: 500m", "cpu: 500 m"));
    assert!(
        err.contains("spec.containers[0].resources.limits.cpu: Invalid value"),
        "{err}"
    );
    let err = errors(&GOOD.replace("memory: 128Mi", "memory: 128MB"));
    assert!(err.contains("resources.limits.memory"), "{err}");
    let text = GOOD.replace(
        "      limits:",
        "      requests:\n        cpu: \"2\"\n      limits:",
    );
    let err = errors(&text);
    assert!(err.contains("resources.requests.cpu: Invalid value: \"2\": must be less than or equal to cpu limit of 500m"), "{err}");
    let err = errors(&GOOD.replace("memory: 128Mi", "gpus: 1"));
    assert!(err.contains("resources.limits.gpus"), "{err}");
}

#[test]
fn duplicate_container_names_across_init() {
    let text = GOOD.replace(
        "  containers:",
        "  initContainers:\n  - name: app\n    image: busybox\n  containers:",
    );
    let err = errors(&text);
    assert!(
        err.contains("spec.containers[0].name: Duplicate value"),
        "{err}"
    );
}

#[test]
fn multi_document_with_one_bad_returns_nothing() {
    let text = format!(
        "{GOOD}---\n---\n{}",
        GOOD.replace("name: web", "name: db")
            .replace("image: nginx", "image: \"\"")
    );
    let err = errors(&text);
    assert!(
        err.contains("document 3: spec.containers[0].image: Required value"),
        "{err}"
    );
    let text = format!(
        "---\n{GOOD}---\n# only a comment\n---\n{}",
        GOOD.replace("name: web", "name: db")
    );
    let pods = decode_pods(&text, "-").unwrap_or_default();
    assert_eq!(pods.len(), 2);
    let err = errors(&format!("{GOOD}---\n{GOOD}"));
    assert!(
        err.contains("document 2: metadata.name: Duplicate value"),
        "{err}"
    );
}

#[test]
fn json_is_accepted() {
    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
        "spec":{"containers":[{"name":"c","image":"busybox:1.36","resources":{"limits":{"cpu":0.5}}}]}}"#;
    let pod = one(json);
    let c = &pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()[0];
    assert_eq!(
        container_resources(c)
            .map(|r| r.cpu_request_millis)
            .ok()
            .flatten(),
        Some(500)
    );
}

#[test]
fn unsupported_features_are_named() {
    let text = format!(
        "{GOOD}  volumes:\n  - name: v\n    gitRepo: {{repository: r}}\n  setHostnameAsFQDN: true\n"
    );
    let err = errors(&text);
    assert!(
        err.contains("not supported: spec.volumes[0].gitRepo"),
        "{err}"
    );
    assert!(
        err.contains("not supported: spec.setHostnameAsFQDN"),
        "{err}"
    );
    let text = format!("{GOOD}  hostNetwork: false\n  nodeSelector: {{disk: ssd}}\n");
    one(&text);
    let text = GOOD.replace("    ports:", "    env:\n    - name: X\n      valueFrom: {fieldRef: {fieldPath: spec.hostname}}\n    ports:");
    assert!(errors(&text).contains(
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\""
    ));
}

#[test]
fn defaults_are_applied() {
    let pod = one(
        &format!("{GOOD}    - name: other\n      containerPort: 81\n")
            .replace("    - name: other\n      containerPort: 81\n", ""),
    );
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = pod.spec.unwrap_or_default();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    let c = &spec.containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
    let ports = c.ports.clone().unwrap_or_default();
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let requests = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    assert_eq!(requests.get("cpu").map(|q| q.0.as_str()), Some("500m"));
    assert_eq!(requests.get("memory").map(|q| q.0.as_str()), Some("128Mi"));
    assert_eq!(qos_class(&one(GOOD)), QosClass::Guaranteed);

    let pod = one(&GOOD
        .replace("image: nginx", "image: nginx:1.29")
        .replace("name: web", "name: web\n  namespace: prod"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("prod"));
    let spec = pod.spec.unwrap_or_default();
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
}

#[test]
fn restart_and_dns_policies() {
    let err = errors(&format!("{GOOD}  restartPolicy: Sometimes\n"));
    assert!(
        err.contains("spec.restartPolicy: Invalid value: \"Sometimes\""),
        "{err}"
    );
    let err = errors(&format!("{GOOD}  dnsPolicy: None\n"));
    assert!(err.contains("spec.dnsConfig"), "{err}");
    let err = errors(&format!("{GOOD}  terminationGracePeriodSeconds: -1\n"));
    assert!(err.contains("spec.terminationGracePeriodSeconds"), "{err}");
}

#[test]
fn yaml_syntax_error_is_reported() {
    let err = errors("apiVersion: v1\nkind: [Pod\n");
    assert!(
        err.contains("pod.yaml: document 1: <document>: Invalid value: not valid YAML"),
        "{err}"
    );
}

#[test]
fn no_op_values_of_refused_features_are_accepted() {
    let text = GOOD.replace(
        "    - containerPort: 80",
        "    - containerPort: 80\n      hostPort: 0\n    securityContext: {procMount: Default}\n    stdin: false",
    );
    one(&format!(
        "{text}  hostUsers: true\n  shareProcessNamespace: false\n  ephemeralContainers: []\n"
    ));
    one(&GOOD.replace(
        "    - containerPort: 80",
        "    - containerPort: 80\n      hostPort: 8080",
    ));
    let err = errors(&format!("{GOOD}  hostUsers: false\n"));
    assert!(err.contains("not supported: spec.hostUsers"), "{err}");
}

#[test]
fn yaml_octal_integers_are_read_as_kubernetes_does() {
    // Kubernetes reads YAML 1.1: an unquoted 010 in an integer field is eight.
    let pod = one(&format!("{GOOD}  terminationGracePeriodSeconds: 010\n"));
    assert_eq!(pod.spec.unwrap().termination_grace_period_seconds, Some(8));
    let err = errors(&format!("{GOOD}  terminationGracePeriodSeconds: 08\n"));
    assert!(
        err.contains("spec.terminationGracePeriodSeconds: Invalid value"),
        "{err}"
    );
}

#[test]
fn type_error_inside_refused_feature_is_not_supported() {
    let err = errors(&format!(
        "{GOOD}  readinessGates:\n  - conditionType: [x]\n"
    ));
    assert!(err.contains("not supported: spec.readinessGates"), "{err}");
    assert!(!err.contains("Invalid value"), "{err}");
}

#[test]
fn volumes_and_mounts() {
    let with = |volumes: &str, mounts: &str| {
        GOOD.replace(
            "    ports:",
            &format!("    volumeMounts:\n{mounts}    ports:"),
        ) + "  volumes:\n"
            + volumes
    };
    let ok = with(
        "  - name: data\n    emptyDir: {medium: Memory, sizeLimit: 64Mi}\n  - name: host\n    hostPath: {path: /srv, type: Directory}\n",
        "    - {name: data, mountPath: /data}\n    - {name: host, mountPath: /host, readOnly: true}\n",
    );
    one(&ok);
    let err = errors(&with(
        "  - name: data\n    emptyDir: {}\n",
        "    - {name: nope, mountPath: /data}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts[0].name: Invalid value: \"nope\": not found"),
        "{err}"
    );
    let err = errors(&with(
        "  - name: data\n    emptyDir: {medium: HugePages}\n",
        "",
    ));
    assert!(
        err.contains("not supported: spec.volumes[0].emptyDir.medium"),
        "{err}"
    );
    let err = errors(&with(
        "  - name: data\n    hostPath: {path: srv, type: Dir}\n",
        "",
    ));
    assert!(err.contains("spec.volumes[0].hostPath.path"), "{err}");
    assert!(err.contains("spec.volumes[0].hostPath.type"), "{err}");
    let err = errors(&with(
        "  - name: data\n    nfs: {server: s, path: /x}\n",
        "",
    ));
    assert!(err.contains("not supported: spec.volumes[0].nfs"), "{err}");
    let err = errors(&with(
        "  - name: data\n    emptyDir: {}\n",
        "    - {name: data, mountPath: /d, bindMountOptions: [noexec]}\n",
    ));
    assert!(
        err.contains("not supported: spec.containers[0].volumeMounts[0].bindMountOptions"),
        "{err}"
    );
}

#[test]
fn api_data_volumes_are_defaulted_and_validated() {
    let with = |volumes: &str| format!("{GOOD}  volumes:\n{volumes}");
    let pod = one(&with(
        "  - {name: a, configMap: {name: cm, items: [{key: k, path: dir/k, mode: 0400}]}}\n\
         \x20 - {name: b, secret: {secretName: s, optional: true}}\n\
         \x20 - {name: c, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}\n\
         \x20 - {name: d, projected: {sources: [{configMap: {name: cm}}, {secret: {name: s}}]}}\n",
    ));
    let volumes = pod.spec.unwrap().volumes.unwrap();
    assert_eq!(
        volumes[0].config_map.as_ref().unwrap().default_mode,
        Some(420)
    );
    assert_eq!(volumes[1].secret.as_ref().unwrap().default_mode, Some(420));
    assert_eq!(
        volumes[2].downward_api.as_ref().unwrap().default_mode,
        Some(420)
    );
    assert_eq!(
        volumes[3].projected.as_ref().unwrap().default_mode,
        Some(420)
    );

    let err = errors(&with(
        "  - {name: a, configMap: {name: cm, defaultMode: 01000, items: [{key: k, path: ../x}]}}\n\
         \x20 - {name: b, secret: {}}\n\
         \x20 - {name: c, downwardAPI: {items: [{path: p, fieldRef: {fieldPath: spec.nodeName}}, {path: q}]}}\n\
         \x20 - {name: d, projected: {sources: [{configMap: {name: cm, items: [{key: k, path: x}]}}, {downwardAPI: {items: [{path: x, fieldRef: {fieldPath: metadata.name}}]}}]}}\n\
         \x20 - {name: e, projected: {sources: [{serviceAccountToken: {path: token}}]}}\n",
    ));
    for needle in [
        "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
        "spec.volumes[0].configMap.items[0].path: Invalid value: \"../x\": must not contain '..'",
        "spec.volumes[1].secret.secretName: Required value",
        "spec.volumes[2].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"",
        "spec.volumes[2].downwardAPI.items[1]: Invalid value: one of fieldRef and resourceFieldRef is required",
        "spec.volumes[3].projected.sources[1].downwardAPI.items[0].path: Invalid value: \"x\": conflicting duplicate paths",
        "not supported: spec.volumes[4].projected.sources[0].serviceAccountToken",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn env_sources_are_validated() {
    let with = |env: &str| GOOD.replace("    ports:", &format!("{env}    ports:"));
    one(&with(
        "    envFrom: [{configMapRef: {name: c}, prefix: 1_}, {secretRef: {name: s, optional: true}}]\n\
         \x20   env:\n\
         \x20   - {name: 1.relaxed-name, valueFrom: {configMapKeyRef: {name: c, key: k}}}\n\
         \x20   - {name: B, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}\n\
         \x20   - {name: C, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n\
         \x20   - {name: D, valueFrom: {fieldRef: {fieldPath: status.hostIPs}}}\n",
    ));
    let err = errors(&with(
        "    envFrom: [{prefix: \"a=\"}]\n\
         \x20   env:\n\
         \x20   - {name: \"A=B\", value: x}\n\
         \x20   - {name: C, valueFrom: {configMapKeyRef: {name: c, key: \"bad key\"}}}\n\
         \x20   - {name: D, valueFrom: {fieldRef: {fieldPath: spec.hostname}}}\n",
    ));
    for needle in [
        "spec.containers[0].envFrom[0].prefix: Invalid value: \"a=\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        "spec.containers[0].envFrom[0]: Invalid value: must specify one of: `configMapRef` or `secretRef`",
        "spec.containers[0].env[0].name: Invalid value: \"A=B\"",
        "spec.containers[0].env[1].valueFrom.configMapKeyRef.key: Invalid value: \"bad key\"",
        "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[path = "volume_tests.rs"]
mod volume_tests;

#[test]
fn ports_env_and_dns() {
    let err = errors(&GOOD.replace(
        "containerPort: 80",
        "containerPort: 70000\n      protocol: ICMP",
    ));
    assert!(
        err.contains("spec.containers[0].ports[0].containerPort: Invalid value: 70000"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].ports[0].protocol"),
        "{err}"
    );
    let err = errors(&GOOD.replace(
        "    ports:",
        "    env:\n    - {name: \"A=B\", value: x}\n    ports:",
    ));
    assert!(
        err.contains("spec.containers[0].env[0].name: Invalid value"),
        "{err}"
    );
    let dns =
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [1.1.1.1, 8.8.8.8, 9.9.9.9, 1.0.0.1]\n";
    let err = errors(&format!("{GOOD}{dns}"));
    assert!(
        err.contains("spec.dnsConfig.nameservers: Invalid value: must not have more than 3"),
        "{err}"
    );
    let pod = one(&format!("{GOOD}  dnsPolicy: None\n  dnsConfig: {{nameservers: [10.0.0.10], searches: [svc.local]}}\n  hostname: h1\n  subdomain: s\n"));
    assert_eq!(pod.spec.and_then(|s| s.hostname).as_deref(), Some("h1"));
    let err = errors(&format!("{GOOD}  hostname: Not_A_Label\n"));
    assert!(err.contains("spec.hostname: Invalid value"), "{err}");
}

#[test]
fn init_containers_get_defaults() {
    let text = GOOD.replace(
        "  containers:",
        "  initContainers:\n  - name: setup\n    image: busybox:1.36\n  containers:",
    );
    let spec = one(&text).spec.unwrap_or_default();
    let init = spec.init_containers.unwrap_or_default();
    assert_eq!(init[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        init[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
}

#[test]
fn invalid_limit_is_reported_once() {
    let err = errors(&GOOD.replace("cpu: 500m", "cpu: 5x"));
    assert_eq!(err.matches("quantity \"5x\"").count(), 1, "{err}");
    assert!(
        err.contains("spec.containers[0].resources.limits.cpu: Invalid value"),
        "{err}"
    );
}

#[test]
fn invalid_image_reference_is_refused_naming_it() {
    for bad in [
        "Nginx:1.25",
        "nginx:",
        "nginx@sha256:abc",
        "host:5000/Team/app",
        "a//b",
    ] {
        let err = errors(&GOOD.replace("image: nginx", &format!("image: \"{bad}\"")));
        assert!(
            err.contains(&format!(
                "spec.containers[0].image: Invalid value: {bad:?}: InvalidImageName"
            )),
            "{bad}: {err}"
        );
    }
    for good in [
        "nginx",
        "nginx:1.25",
        "library/nginx",
        "docker.io/library/nginx",
        "host:5000/team/app:v1",
        "app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let pods = decode_pods(
            &GOOD.replace("image: nginx", &format!("image: {good}")),
            "t",
        );
        assert!(pods.is_ok(), "{good}: {pods:?}");
    }
}

#[test]
fn claim_volumes_and_ephemeral_templates_are_checked_as_claims() {
    let pod = |volume: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: busybox:1.36\n  volumes:\n{volume}"
        )
    };
    one(&pod(
        "  - name: d\n    persistentVolumeClaim:\n      claimName: data\n      readOnly: true\n",
    ));
    let eph = "  - name: s\n    ephemeral:\n      volumeClaimTemplate:\n        metadata:\n          labels: {a: b}\n        spec:\n          accessModes: [ReadWriteOnce]\n          resources: {requests: {storage: 1Gi}}\n";
    one(&pod(eph));
    let err = errors(&pod(
        &eph.replace("accessModes", "volumeMode: Block\n          accessModes")
    ));
    assert!(
        err.contains(
            "not supported: spec.volumes[0].ephemeral.volumeClaimTemplate.spec.volumeMode"
        ),
        "{err}"
    );
}

#[test]
fn env_takes_one_label_not_the_whole_map() {
    let env = |path: &str| {
        format!("{GOOD}    env:\n    - name: X\n      valueFrom:\n        fieldRef:\n          fieldPath: \"{path}\"\n")
    };
    one(&env("metadata.labels['app']"));
    one(&env("status.podIPs"));
    let err = errors(&env("metadata.labels"));
    assert!(
        err.contains("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\""),
        "{err}"
    );
}

#[test]
fn stdin_stdin_once_and_tty_are_accepted() {
    let text = GOOD.replace(
        "    ports:",
        "    stdin: true\n    stdinOnce: true\n    tty: true\n    ports:",
    );
    let pod = one(&text);
    let c = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        (c.stdin, c.stdin_once, c.tty),
        (Some(true), Some(true), Some(true))
    );
}

#[test]
fn annotations_of_the_cri_server_are_reserved() {
    let text = GOOD.replace(
        "  name: web",
        "  name: web\n  annotations: {peapod.io/cri-sandbox-id: abc, peapod.io/host-ports: '[]', peapod.io/other: x}",
    );
    let err = errors(&text);
    for key in ["peapod.io/cri-sandbox-id", "peapod.io/host-ports"] {
        assert!(
            err.contains(&format!(
                "metadata.annotations[{key}]: Forbidden: reserved for pods made through peapod's CRI socket"
            )),
            "{err}"
        );
    }
    assert!(!err.contains("peapod.io/other"), "{err}");
}
