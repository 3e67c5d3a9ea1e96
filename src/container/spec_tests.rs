//! Unit tests for `spec`, `env` and `user`: build specs from JSON pods and fake layer dirs.

use super::*;
use crate::container::env;
use serde_json::json;
use std::path::Path;

fn pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1",
                     "labels": {"app": "x"}},
        "spec": {"containers": containers, "nodeName": "node1", "restartPolicy": "Always",
                 "volumes": [{"name": "data", "emptyDir": {}},
                             {"name": "host", "hostPath": {"path": "/srv/h"}}]}
    }))
    .unwrap()
}

fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": config
    }))
    .unwrap()
}

struct Fixture {
    pod: Pod,
    image: ImageConfiguration,
    layers: Vec<PathBuf>,
    resources: Resources,
    qos: QosClass,
    sub_paths: BTreeMap<usize, PathBuf>,
    objects: crate::object::Snapshot,
}

fn volume(path: &str, read_only: bool) -> crate::volume::HostVolume {
    crate::volume::HostVolume {
        path: path.into(),
        read_only,
    }
}

impl Fixture {
    fn new(container: serde_json::Value, config: serde_json::Value) -> Self {
        Fixture {
            pod: pod(json!([container])),
            image: image(config),
            layers: vec![
                PathBuf::from("/nonexistent/l0"),
                PathBuf::from("/nonexistent/l1"),
            ],
            resources: Resources::default(),
            qos: QosClass::BestEffort,
            sub_paths: BTreeMap::new(),
            objects: crate::object::Snapshot::empty("prod"),
        }
    }

    fn build(&self) -> Result<Spec, SpecError> {
        build_spec(&self.input())
    }

    fn input(&self) -> SpecInput<'_> {
        let container = &self.pod.spec.as_ref().unwrap().containers[0];
        SpecInput {
            pod: &self.pod,
            container,
            image_config: &self.image,
            rootfs: RootfsLayout {
                lower: self.layers.clone(),
                upper: "/u".into(),
                work: "/w".into(),
                merged: "/m".into(),
            },
            sandbox_pid: 42,
            pod_ip: Some(Ipv4Addr::new(10, 88, 0, 5)),
            hosts_path: "/run/p/hosts".into(),
            resolv_path: "/run/p/resolv.conf".into(),
            hostname_path: "/run/p/hostname".into(),
            shm_path: "/run/p/shm".into(),
            termination_log_path: "/run/p/term".into(),
            host_ip: Some(Ipv4Addr::new(10, 88, 0, 1)),
            volume_dirs: [
                ("data".to_string(), volume("/var/p/data", false)),
                ("host".to_string(), volume("/srv/h", false)),
                ("cfg".to_string(), volume("/var/p/cfg", true)),
            ]
            .into(),
            sub_path_sources: self.sub_paths.clone(),
            objects: &self.objects,
            cgroup_path: Some("/sys/fs/cgroup/peapod/pod-uid-1/app-0".into()),
            host_devices: Vec::new(),
            seccomp_root: "/nonexistent/seccomp".into(),
            apparmor_profile: None,
            resources: self.resources,
            qos: self.qos,
            node_name: "node1".into(),
            node_memory_bytes: 8 << 30,
        }
    }
}

fn args_of(c: serde_json::Value, cfg: serde_json::Value) -> Result<Vec<String>, SpecError> {
    let mut c = c;
    c["name"] = json!("app");
    c["image"] = json!("busybox");
    Fixture::new(c, cfg)
        .build()
        .map(|s| s.process().as_ref().unwrap().args().clone().unwrap())
}

fn env_of(spec: &Spec) -> Vec<String> {
    spec.process().as_ref().unwrap().env().clone().unwrap()
}

fn app(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"name": "app", "image": "busybox", "command": ["/bin/sh"]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn command_args_entrypoint_matrix() {
    let cfg = json!({"Entrypoint": ["/ep"], "Cmd": ["cmd1"]});
    assert_eq!(args_of(json!({}), cfg.clone()).unwrap(), ["/ep", "cmd1"]);
    assert_eq!(
        args_of(json!({"command": ["/c"]}), cfg.clone()).unwrap(),
        ["/c"]
    );
    assert_eq!(
        args_of(json!({"args": ["a"]}), cfg.clone()).unwrap(),
        ["/ep", "a"]
    );
    assert_eq!(
        args_of(json!({"command": ["/c"], "args": ["a"]}), cfg).unwrap(),
        ["/c", "a"]
    );
    let err = args_of(json!({}), json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.containers[0].command: no command specified (the image has no ENTRYPOINT or CMD either)"
    );
}

#[test]
fn expansion_rules() {
    let vars = [("A".to_string(), "1".to_string())];
    let look = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(env::expand("x$(A)y", &look), "x1y");
    assert_eq!(env::expand("$$(A)", &look), "$(A)");
    assert_eq!(env::expand("$(B)", &look), "$(B)");
    assert_eq!(env::expand("$$", &look), "$");
    assert_eq!(env::expand("a$b", &look), "a$b");
    assert_eq!(env::expand("$(A", &look), "$(A");
    assert_eq!(env::expand("end$", &look), "end$");
}

#[test]
fn env_order_expansion_and_field_refs() {
    let c = app(json!({
        "args": ["$(GREETING)", "$(IMG)"],
        "env": [
            {"name": "A", "value": "one"},
            {"name": "GREETING", "value": "hi-$(A)-$(IMG)-$$(A)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PATH", "value": "/mine"},
            {"name": "A", "value": "two"}
        ]
    }));
    let f = Fixture::new(c, json!({"Env": ["IMG=img", "PATH=/img/bin"]}));
    let spec = f.build().unwrap();
    let env = env_of(&spec);
    assert_eq!(
        env,
        [
            "HOSTNAME=web",
            "IMG=img",
            "PATH=/mine",
            "A=two",
            "GREETING=hi-one-$(IMG)-$(A)",
            "POD=web",
            "NS=prod",
            "UID=uid-1",
            "IP=10.88.0.5",
            "NODE=node1",
            "SA=default",
            "LBL=x"
        ]
    );
    let args = spec.process().as_ref().unwrap().args().clone().unwrap();
    assert_eq!(args, ["/bin/sh", "hi-one-$(IMG)-$(A)", "$(IMG)"]);
}

#[test]
fn default_path_and_unsupported_sources() {
    let f = Fixture::new(app(json!({})), json!({}));
    let env = env_of(&f.build().unwrap());
    assert!(env.contains(&format!("PATH={}", env::DEFAULT_PATH)));

    let c = app(json!({"env": [{"name": "S", "valueFrom": {"fileKeyRef":
        {"volumeName": "data", "path": "e", "key": "k"}}}]}));
    let err = Fixture::new(c, json!({})).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.containers[0].env[0].valueFrom: fileKeyRef is not supported by peapod"
    );
}

#[test]
fn resource_field_refs() {
    let c = app(json!({"env": [
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "CPUM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "MEMMI", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}}
    ]}));
    let mut f = Fixture::new(c, json!({}));
    f.resources = Resources {
        cpu_request_millis: Some(250),
        cpu_limit_millis: Some(1500),
        memory_request_bytes: Some(64 << 20),
        memory_limit_bytes: None,
    };
    let env = env_of(&f.build().unwrap());
    assert!(env.contains(&"CPU=2".to_string()), "{env:?}");
    assert!(env.contains(&"CPUM=1500".to_string()));
    assert!(env.contains(&format!("MEM={}", 8u64 << 30)));
    assert!(env.contains(&"MEMMI=64".to_string()));
}

fn layer_with(dir: &Path, file: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc").join(file), text).unwrap();
    dir.to_path_buf()
}

fn user_of(f: &Fixture) -> (u32, u32, Vec<u32>) {
    let spec = f.build().unwrap();
    let u = spec.process().as_ref().unwrap().user().clone();
    (
        u.uid(),
        u.gid(),
        u.additional_gids().clone().unwrap_or_default(),
    )
}

#[test]
fn user_resolution_from_layers() {
    let tmp = tempfile::tempdir().unwrap();
    // The bottom layer's passwd is shadowed by the top layer's.
    let bottom = layer_with(
        &tmp.path().join("l0"),
        "passwd",
        "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\n",
    );
    let top = layer_with(
        &tmp.path().join("l1"),
        "passwd",
        "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home:/bin/sh\n",
    );
    layer_with(
        &tmp.path().join("l0"),
        "group",
        "root:x:0:\nweb:x:1001:\nstaff:x:50:web,other\n",
    );
    let mut f = Fixture::new(app(json!({})), json!({"User": "web"}));
    f.layers = vec![bottom, top];
    assert_eq!(user_of(&f), (1000, 1001, vec![1001, 50]));

    f.image = image(json!({"User": "web:staff"}));
    assert_eq!(user_of(&f).1, 50);
    f.image = image(json!({"User": "1234:77"}));
    assert_eq!(user_of(&f), (1234, 77, vec![77]));
    f.image = image(json!({"User": "1000"}));
    assert_eq!(user_of(&f).1, 1001);

    f.image = image(json!({"User": "old"}));
    let err = f.build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "image user \"old\": no user \"old\" in the image's /etc/passwd"
    );

    // securityContext wins over the image; fsGroup and supplementalGroups are added after the
    // primary group (containerd's order).
    let mut f2 = Fixture::new(
        app(json!({"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}})),
        json!({"User": "web"}),
    );
    f2.pod.spec.as_mut().unwrap().security_context =
        Some(serde_json::from_value(json!({"supplementalGroups": [7, 8], "fsGroup": 9})).unwrap());
    f2.layers = f.layers.clone();
    assert_eq!(user_of(&f2), (2000, 3000, vec![3000, 9, 7, 8]));

    // Merge (the default) adds the image's memberships of the user; Strict does not.
    let mut f3 = Fixture::new(app(json!({})), json!({"User": "web"}));
    f3.layers = f.layers.clone();
    f3.pod.spec.as_mut().unwrap().security_context = Some(
        serde_json::from_value(
            json!({"supplementalGroups": [4000], "supplementalGroupsPolicy": "Merge"}),
        )
        .unwrap(),
    );
    assert_eq!(user_of(&f3), (1000, 1001, vec![1001, 50, 4000]));
    f3.pod.spec.as_mut().unwrap().security_context = Some(
        serde_json::from_value(
            json!({"supplementalGroups": [4000], "supplementalGroupsPolicy": "Strict"}),
        )
        .unwrap(),
    );
    assert_eq!(user_of(&f3), (1000, 1001, vec![1001, 4000]));

    // A CRI container's run_as_username is looked up in place of the image's user.
    let mut f4 = Fixture::new(app(json!({})), json!({"User": "old"}));
    f4.layers = f.layers.clone();
    let settings = crate::pod::control::CriContainerSettings {
        run_as_username: Some("web".into()),
        ..Default::default()
    };
    f4.pod.metadata.annotations = Some(
        [
            (
                crate::pod::control::CRI_SANDBOX_ANNOTATION.to_string(),
                "sb".to_string(),
            ),
            (
                crate::pod::control::CriContainerSettings::key("app"),
                serde_json::to_string(&settings).unwrap(),
            ),
        ]
        .into(),
    );
    assert_eq!(user_of(&f4), (1000, 1001, vec![1001, 50]));
}

#[test]
fn run_as_non_root_rejects_root() {
    let f = Fixture::new(
        app(json!({"securityContext": {"runAsNonRoot": true}})),
        json!({}),
    );
    assert_eq!(
        f.build().unwrap_err().to_string(),
        "container has runAsNonRoot and image will run as root (pod: \"web_prod(uid-1)\", container: app)"
    );
    let f = Fixture::new(
        app(json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}})),
        json!({}),
    );
    assert!(f
        .build()
        .unwrap_err()
        .to_string()
        .starts_with("container's runAsUser breaks non-root policy"));
    let f = Fixture::new(
        app(json!({"securityContext": {"runAsNonRoot": true}})),
        json!({"User": "nobody"}),
    );
    assert!(f.build().unwrap_err().to_string().starts_with(
        "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root"
    ));
    let f = Fixture::new(
        app(json!({"securityContext": {"runAsNonRoot": true}})),
        json!({"User": "1000:1000"}),
    );
    assert!(f.build().is_ok());
    let f = Fixture::new(
        app(json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 5}})),
        json!({}),
    );
    assert!(f.build().is_ok());
}

fn caps_of(spec: &Spec) -> Capabilities {
    spec.process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap()
}

#[test]
fn capabilities_add_drop_all() {
    let spec = Fixture::new(app(json!({})), json!({})).build().unwrap();
    assert_eq!(caps_of(&spec), capability_set(&DEFAULT_CAPABILITIES));
    assert_eq!(caps_of(&spec).len(), 14);

    let c = app(
        json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["MKNOD", "cap_kill"]}}}),
    );
    let caps = caps_of(&Fixture::new(c, json!({})).build().unwrap());
    assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::SysTime));
    assert!(!caps.contains(&Capability::Mknod) && !caps.contains(&Capability::Kill));

    let c = app(
        json!({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}),
    );
    let caps = caps_of(&Fixture::new(c, json!({})).build().unwrap());
    assert_eq!(caps, [Capability::NetBindService].into_iter().collect());

    let c = app(json!({"securityContext": {"capabilities": {"add": ["BOGUS"]}}}));
    let err = Fixture::new(c, json!({})).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.containers[0].securityContext.capabilities.add[0]: unknown capability \"BOGUS\""
    );
}

#[test]
fn privileged_gets_everything() {
    let spec = Fixture::new(
        app(json!({"securityContext": {"privileged": true}})),
        json!({}),
    )
    .build()
    .unwrap();
    assert_eq!(caps_of(&spec).len(), ALL_CAPABILITIES.len());
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none(), "privileged runs unconfined");
    let plain = Fixture::new(app(json!({})), json!({})).build().unwrap();
    let profile = plain.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(profile.default_action().to_string(), "SCMP_ACT_ERRNO");
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
    let rules = |linux: &oci_spec::runtime::Linux| {
        let devices = linux.resources().as_ref().unwrap().devices().clone();
        serde_json::to_value(devices.unwrap()).unwrap()
    };
    assert_eq!(rules(linux), json!([{"allow": true, "access": "rwm"}]));

    let spec = Fixture::new(app(json!({})), json!({})).build().unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(rules(linux)[0], json!({"allow": false, "access": "rwm"}));
    assert_eq!(
        linux.masked_paths().as_ref().unwrap().len(),
        MASKED_PATHS.len()
    );
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(false)
    );
    let c = app(json!({"securityContext": {"allowPrivilegeEscalation": false}}));
    let spec = Fixture::new(c, json!({})).build().unwrap();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
}

#[test]
fn resources_numbers() {
    let r = linux_resources(&Resources {
        cpu_request_millis: Some(500),
        cpu_limit_millis: Some(500),
        ..Default::default()
    })
    .unwrap();
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(
        (cpu.quota(), cpu.period(), cpu.shares()),
        (Some(50_000), Some(100_000), Some(512))
    );
    let r = linux_resources(&Resources {
        cpu_request_millis: Some(100),
        cpu_limit_millis: Some(5),
        ..Default::default()
    })
    .unwrap();
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.shares()), (Some(1000), Some(102)));
    let r = linux_resources(&Resources {
        memory_limit_bytes: Some(128 << 20),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(2));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), None);
    assert_eq!(r.memory().as_ref().unwrap().limit(), Some(128 << 20));
    assert_eq!(r.pids().as_ref().unwrap().limit(), DEFAULT_PIDS_LIMIT);
}

#[test]
fn oom_score_adj_classes() {
    let gib = 1u64 << 30;
    assert_eq!(oom_score_adj(QosClass::Guaranteed, gib, 8 * gib), -997);
    assert_eq!(oom_score_adj(QosClass::BestEffort, 0, 8 * gib), 1000);
    assert_eq!(oom_score_adj(QosClass::Burstable, 2 * gib, 8 * gib), 750);
    assert_eq!(oom_score_adj(QosClass::Burstable, 0, 8 * gib), 999);
    assert_eq!(oom_score_adj(QosClass::Burstable, 8 * gib, 8 * gib), 3);
    assert_eq!(oom_score_adj(QosClass::Burstable, 100 * gib, 8 * gib), 3);
}

#[test]
fn mounts_present_and_ordered() {
    let c = app(json!({
        "terminationMessagePath": "/tmp/term",
        "securityContext": {"readOnlyRootFilesystem": true},
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "host", "mountPath": "/h", "readOnly": true, "subPath": "sub"}
        ]
    }));
    let mut f = Fixture::new(c, json!({}));
    f.sub_paths = [(1, PathBuf::from("/var/p/volume-subpaths/host/app/1"))].into();
    let spec = f.build().unwrap();
    let mounts = spec.mounts().as_ref().unwrap();
    let dests: Vec<_> = mounts
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/shm",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/tmp/term",
            "/data",
            "/h"
        ]
    );
    let opts = |i: usize| mounts[i].options().clone().unwrap();
    assert_eq!(
        mounts[11].source().as_deref(),
        Some(Path::new("/var/p/data"))
    );
    assert_eq!(opts(11), ["rbind", "rprivate", "rw"]);
    assert_eq!(
        mounts[12].source().as_deref(),
        Some(Path::new("/var/p/volume-subpaths/host/app/1"))
    );
    assert_eq!(opts(12), ["rbind", "rprivate", "ro"]);
    assert!(
        opts(7).contains(&"ro".to_string()),
        "hosts is ro with a ro rootfs"
    );
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));

    let c = app(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}));
    let err = Fixture::new(c, json!({})).build().unwrap_err();
    assert!(err
        .to_string()
        .starts_with("spec.containers[0].volumeMounts[0].name: volume \"nope\""));
    // A subPath the supervisor has not prepared is not mounted from anywhere else.
    let c = app(json!({"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "s"}]}));
    let err = Fixture::new(c, json!({})).build().unwrap_err();
    assert!(err
        .to_string()
        .starts_with("spec.containers[0].volumeMounts[0].subPath: the subPath of volume \"data\""));
}

#[path = "spec_mount_tests.rs"]
mod mount_tests;

#[test]
fn annotations_namespaces_and_json() {
    let c = app(json!({"workingDir": ""}));
    let mut f = Fixture::new(c, json!({"WorkingDir": "/srv"}));
    f.qos = QosClass::Guaranteed;
    let spec = f.build().unwrap();
    let ann = spec.annotations().as_ref().unwrap();
    assert_eq!(
        ann[ANNOTATION_ROOTFS_LOWERDIRS],
        "/nonexistent/l1:/nonexistent/l0"
    );
    assert_eq!(ann[ANNOTATION_ROOTFS_UPPERDIR], "/u");
    assert_eq!(ann[ANNOTATION_ROOTFS_WORKDIR], "/w");
    assert_eq!(ann[ANNOTATION_POD_NAME], "web");
    assert_eq!(ann[ANNOTATION_POD_NAMESPACE], "prod");
    assert_eq!(ann[ANNOTATION_POD_UID], "uid-1");
    assert_eq!(ann[ANNOTATION_CONTAINER_NAME], "app");
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.cwd(), Path::new("/srv"));
    assert_eq!(process.oom_score_adj(), Some(-997));
    assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("/m"));
    assert_eq!(spec.hostname(), &None);

    let linux = spec.linux().as_ref().unwrap();
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n.typ().to_string(),
                n.path().clone().map(|p| p.display().to_string()),
            )
        })
        .collect();
    assert!(ns.contains(&("net".into(), Some("/proc/42/ns/net".into()))));
    assert!(ns.contains(&("uts".into(), Some("/proc/42/ns/uts".into()))));
    assert!(ns.contains(&("ipc".into(), Some("/proc/42/ns/ipc".into()))));
    assert!(ns.contains(&("pid".into(), None)));
    assert!(ns.contains(&("mnt".into(), None)));
    assert!(ns.contains(&("cgroup".into(), None)));
    assert_eq!(linux.devices().as_ref().unwrap().len(), 6);
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/sys/fs/cgroup/peapod/pod-uid-1/app-0"))
    );

    let text = serde_json::to_string(&spec).unwrap();
    let back: Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spec);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ociVersion"], OCI_VERSION);
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], DEFAULT_PIDS_LIMIT);
}

#[path = "env_tests.rs"]
mod env_tests;
