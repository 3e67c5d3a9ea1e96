//! Tests against a temp dir that mimics cgroupfs: control files are plain files.

use super::*;
use crate::manifest::resources::Resources;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResourcesBuilder,
};
use serde_json::json;

fn fake_root() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(FILE_CONTROLLERS),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    )
    .unwrap();
    tmp
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn weight_formula_table() {
    let table = [
        (0, 0),
        (2, 1),
        (1024, 100),
        (512, 59),
        (102, 17),
        (2048, 174),
        (262_144, 10_000),
        (1_000_000, 10_000),
    ];
    for (shares, weight) in table {
        assert_eq!(cpu_weight_from_shares(shares), weight, "shares {shares}");
    }
}

#[test]
fn paths() {
    let m = CgroupManager::new("/sys/fs/cgroup".into());
    assert_eq!(m.pod_path("u1"), Path::new("/sys/fs/cgroup/peapod/pod-u1"));
    assert_eq!(
        m.container_path("u1", "app", 3),
        Path::new("/sys/fs/cgroup/peapod/pod-u1/app-3")
    );
    assert_eq!(
        m.sandbox_path("u1"),
        Path::new("/sys/fs/cgroup/peapod/pod-u1/sandbox")
    );
    assert!(CgroupManager::is_own_pod_path(&m.pod_path("u1")));
    assert!(CgroupManager::is_own_pod_path(Path::new(
        "/sys/fs/cgroup/unified/peapod/pod-u1"
    )));
    assert!(!CgroupManager::is_own_pod_path(Path::new(
        "/sys/fs/cgroup/kubepods/burstable/pod-u1"
    )));
    assert!(!CgroupManager::is_own_pod_path(Path::new(
        "/sys/fs/cgroup/peapod"
    )));
}

#[test]
fn create_pod_enables_controllers_and_sets_limits() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf());
    let limits = PodResources {
        cpu_weight: Some(79),
        cpu_limit_millis: Some(1500),
        memory_limit_bytes: Some(256 << 20),
    };
    let pod = m.create_pod("u1", limits).unwrap();
    assert_eq!(pod, m.pod_path("u1"));
    for dir in [
        tmp.path().to_path_buf(),
        tmp.path().join("peapod"),
        pod.clone(),
    ] {
        assert_eq!(read(&dir.join(FILE_SUBTREE_CONTROL)), "+cpu +memory +pids");
    }
    assert_eq!(read(&pod.join(FILE_CPU_WEIGHT)), "79");
    assert_eq!(read(&pod.join(FILE_CPU_MAX)), "150000 100000");
    assert_eq!(read(&pod.join(FILE_MEMORY_MAX)), (256u64 << 20).to_string());

    let pod2 = m.create_pod("u2", PodResources::default()).unwrap();
    assert!(!pod2.join(FILE_CPU_WEIGHT).exists());
    assert!(!pod2.join(FILE_CPU_MAX).exists());
    assert!(!pod2.join(FILE_MEMORY_MAX).exists());
}

fn pod(json: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": json})).unwrap()
}

#[test]
fn pod_limits_only_when_every_container_declares_them() {
    let full = json!({"limits": {"cpu": "500m", "memory": "100"}});
    let cpu_only = json!({"limits": {"cpu": "250m"}});
    let two_full = pod(json!({"containers": [
        {"name": "a", "resources": full}, {"name": "b", "resources": full}
    ]}));
    let r = pod_resources(&two_full).unwrap();
    assert_eq!(
        (r.cpu_limit_millis, r.memory_limit_bytes),
        (Some(1000), Some(200))
    );
    let mixed = pod(json!({"containers": [
        {"name": "a", "resources": full}, {"name": "b", "resources": cpu_only}
    ]}));
    let r = pod_resources(&mixed).unwrap();
    assert_eq!(
        (r.cpu_limit_millis, r.memory_limit_bytes),
        (Some(750), None)
    );
    let big_init = pod(json!({
        "initContainers": [{"name": "i", "resources": {"limits": {"cpu": "4", "memory": "50"}}}],
        "containers": [{"name": "a", "resources": full}]
    }));
    let r = pod_resources(&big_init).unwrap();
    assert_eq!(
        (r.cpu_limit_millis, r.memory_limit_bytes),
        (Some(4000), Some(100))
    );
    let bare_init = pod(json!({
        "initContainers": [{"name": "i"}],
        "containers": [{"name": "a", "resources": full}]
    }));
    let r = pod_resources(&bare_init).unwrap();
    assert_eq!((r.cpu_limit_millis, r.memory_limit_bytes), (None, None));
}

#[test]
fn sidecars_add_to_the_pod_and_to_each_later_init_container() {
    let req = |cpu: u64| Resources {
        cpu_request_millis: Some(cpu),
        ..Default::default()
    };
    let app = [req(100)];
    let init = [
        (crate::pod::machine::Kind::Sidecar, req(200)),
        (crate::pod::machine::Kind::Init, req(250)),
    ];
    // The sum: app 100 + sidecar 200; the init container needs 250 + the sidecar's 200.
    let a = pod::aggregate(&app, &init, |r| r.cpu_request_millis);
    assert_eq!(a.total, 450);
    assert!(a.declared);
    let none = pod::aggregate(&app, &[], |r| r.cpu_limit_millis);
    assert_eq!((none.total, none.declared), (0, false));
}

#[test]
fn the_pod_cpu_weight_follows_the_summed_requests() {
    // The kubelet's shares (1024 per CPU, at least 2) and its linear weight.
    assert_eq!(pod::milli_cpu_to_shares(0), 2);
    assert_eq!(pod::milli_cpu_to_shares(1000), 1024);
    assert_eq!(pod::milli_cpu_to_shares(1), 2);
    assert_eq!(pod::pod_cpu_weight(2), 1);
    assert_eq!(pod::pod_cpu_weight(1024), 39);
    assert_eq!(pod::pod_cpu_weight(262_144), 10_000);
    let burstable = pod(json!({"containers": [
        {"name": "a", "resources": {"requests": {"cpu": "500m"}}},
        {"name": "b", "resources": {"requests": {"cpu": "1500m"}}}
    ]}));
    let r = pod_resources(&burstable).unwrap();
    assert_eq!(r.cpu_weight, Some(pod::pod_cpu_weight(2048)));
    assert_eq!((r.cpu_limit_millis, r.memory_limit_bytes), (None, None));
    let best_effort = pod(json!({"containers": [{"name": "a"}]}));
    assert_eq!(
        pod_resources(&best_effort).unwrap(),
        PodResources {
            cpu_weight: Some(1),
            ..Default::default()
        }
    );
}

#[test]
fn pod_level_resources_win_over_the_containers() {
    let p = pod(json!({
        "resources": {"requests": {"cpu": "1", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "200Mi"}},
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "50Mi"}, "limits": {"cpu": "500m", "memory": "100Mi"}}},
            {"name": "b"}
        ]
    }));
    let r = pod_resources(&p).unwrap();
    assert_eq!(r.cpu_weight, Some(pod::pod_cpu_weight(1024)));
    assert_eq!(r.cpu_limit_millis, Some(1000));
    assert_eq!(r.memory_limit_bytes, Some(200 << 20));
}

#[test]
fn create_writes_container_values() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf());
    let path = m.container_path("u1", "app", 0);
    let res = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(128i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(4096i64).build().unwrap())
        .build()
        .unwrap();
    m.create(&path, &res).unwrap();
    assert_eq!(read(&path.join(FILE_CPU_MAX)), "50000 100000");
    assert_eq!(read(&path.join(FILE_CPU_WEIGHT)), "59");
    assert_eq!(
        read(&path.join(FILE_MEMORY_MAX)),
        (128u64 << 20).to_string()
    );
    assert_eq!(read(&path.join(FILE_MEMORY_OOM_GROUP)), "1");
    assert_eq!(read(&path.join(FILE_PIDS_MAX)), "4096");

    let unlimited = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().shares(2u64).build().unwrap())
        .build()
        .unwrap();
    let path = m.container_path("u1", "app", 1);
    m.create(&path, &unlimited).unwrap();
    assert_eq!(read(&path.join(FILE_CPU_MAX)), "max 100000");
    assert_eq!(read(&path.join(FILE_CPU_WEIGHT)), "1");
    assert!(!path.join(FILE_MEMORY_MAX).exists());

    m.add_process(&path, 4242).unwrap();
    assert_eq!(read(&path.join(FILE_PROCS)), "4242");
    assert_eq!(m.pids(&path).unwrap(), [4242]);
}

#[test]
fn oom_detection() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf());
    let dir = tmp.path();
    let events = dir.join(FILE_MEMORY_EVENTS);
    std::fs::write(
        &events,
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n",
    )
    .unwrap();
    assert!(!m.oom_killed(dir).unwrap());
    std::fs::write(
        &events,
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    assert!(m.oom_killed(dir).unwrap());
    std::fs::write(&events, "oom_kill 0\noom_group_kill 2\n").unwrap();
    assert!(m.oom_killed(dir).unwrap());
    std::fs::write(&events, "oom_kill x\n").unwrap();
    assert!(m
        .oom_killed(dir)
        .unwrap_err()
        .to_string()
        .contains("memory.events"));
    std::fs::remove_file(&events).unwrap();
    assert!(m.oom_killed(dir).is_err());
}

#[test]
fn kill_all_uses_cgroup_kill_or_empty_procs() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf());
    let path = tmp.path().join("c");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join(FILE_PROCS), "").unwrap();
    // No cgroup.kill (old kernel) and no processes: nothing to signal.
    m.kill_all(&path).unwrap();
    std::fs::write(path.join(FILE_KILL), "").unwrap();
    m.kill_all(&path).unwrap();
    assert_eq!(read(&path.join(FILE_KILL)), "1");
}

#[test]
fn remove_nested_and_missing() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf());
    let pod = m.create_pod("u1", PodResources::default()).unwrap();
    let res = LinuxResourcesBuilder::default().build().unwrap();
    m.create(&m.container_path("u1", "app", 0), &res).unwrap();
    m.create(&m.sandbox_path("u1"), &res).unwrap();
    std::fs::create_dir_all(pod.join("app-0/nested/deeper")).unwrap();
    m.remove(&pod).unwrap();
    assert!(!pod.exists());
    assert!(tmp.path().join("peapod").exists());
    m.remove(&pod).unwrap();

    // A directory with a non-cgroup file is never emptied.
    let odd = tmp.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    std::fs::write(odd.join("data.txt"), "keep").unwrap();
    assert!(m.remove(&odd).is_err());
    assert_eq!(read(&odd.join("data.txt")), "keep");
}

#[test]
fn detect_v2_and_hybrid() {
    let tmp = fake_root();
    assert_eq!(
        detect(tmp.path()),
        CgroupSupport::V2 {
            root: tmp.path().to_path_buf()
        }
    );
    std::fs::write(tmp.path().join(FILE_CONTROLLERS), "hugetlb\n").unwrap();
    let CgroupSupport::DevicesOnly { root, reason } = detect(tmp.path()) else {
        panic!("expected a cgroup2 hierarchy without controllers")
    };
    assert_eq!(root, tmp.path());
    assert!(reason.contains("cpu/memory/pids"), "{reason}");

    // systemd's hybrid layout: v1 controllers, cgroup2 at <root>/unified.
    let hybrid = tempfile::tempdir().unwrap();
    let unified = hybrid.path().join(HYBRID_UNIFIED_DIR);
    std::fs::create_dir(&unified).unwrap();
    std::fs::write(unified.join(FILE_CONTROLLERS), "hugetlb\n").unwrap();
    let support = detect(hybrid.path());
    let CgroupSupport::DevicesOnly { root, .. } = &support else {
        panic!("expected the unified hierarchy: {support:?}")
    };
    assert_eq!(root, &unified);
    let manager = support.manager().unwrap();
    assert!(!manager.has_controllers());
    assert_eq!(manager.root(), unified);
    check_devices_supported(&support).unwrap();

    let empty = tempfile::tempdir().unwrap();
    let none = detect(empty.path());
    assert!(matches!(none, CgroupSupport::Unavailable { .. }));
    assert!(none.manager().is_none());
    let err = check_devices_supported(&none).unwrap_err().to_string();
    assert!(
        err.starts_with("containers cannot run on this host: this host has no cgroup v2 hierarchy"),
        "{err}"
    );
    assert!(
        err.contains("does not run containers with open device access"),
        "{err}"
    );
}

thread_local! {
    static ATTACHED: std::cell::RefCell<Vec<(PathBuf, DeviceRules)>> = Default::default();
}

fn record_attach(path: &Path, rules: &DeviceRules) -> Result<(), CgroupError> {
    ATTACHED.with(|a| a.borrow_mut().push((path.to_path_buf(), rules.clone())));
    Ok(())
}

fn deny_all_but_null() -> LinuxResources {
    let rules = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap(),
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1i64)
            .minor(3i64)
            .access("rwm")
            .build()
            .unwrap(),
    ];
    LinuxResourcesBuilder::default()
        .devices(rules)
        .pids(LinuxPidsBuilder::default().limit(4096i64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn create_attaches_the_device_rules_of_the_spec() {
    let tmp = fake_root();
    let m = CgroupManager::new(tmp.path().to_path_buf()).with_device_attacher(record_attach);
    let path = m.container_path("u1", "app", 0);
    m.create(&path, &deny_all_but_null()).unwrap();
    let attached = ATTACHED.with(|a| a.take());
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0].0, path);
    let rules = &attached[0].1;
    assert!(rules.allows(DeviceKind::Char, 1, 3, Access::ALL));
    assert!(!rules.allows(DeviceKind::Char, 1, 11, Access::READ));

    // The sandbox (no devices in its resources) gets no program.
    m.create(&m.sandbox_path("u1"), &Default::default())
        .unwrap();
    assert!(ATTACHED.with(|a| a.take()).is_empty());

    // An invalid rule is refused before the cgroup exists.
    let mut bad = deny_all_but_null();
    let mut list = bad.devices().clone().unwrap();
    list[1].set_access(Some("rwx".into()));
    bad.set_devices(Some(list));
    let other = m.container_path("u1", "app", 1);
    let err = m.create(&other, &bad).unwrap_err().to_string();
    assert!(
        err.starts_with("linux.resources.devices[1]: access \"rwx\""),
        "{err}"
    );
    assert!(!other.exists());
}

#[test]
fn without_controllers_only_devices_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(FILE_CONTROLLERS), "").unwrap();
    let m = CgroupManager::without_controllers(tmp.path().to_path_buf())
        .with_device_attacher(record_attach);
    let pod = m.create_pod("u1", PodResources::default()).unwrap();
    assert!(pod.is_dir());
    assert!(!tmp.path().join(FILE_SUBTREE_CONTROL).exists());
    let path = m.container_path("u1", "app", 0);
    m.create(&path, &deny_all_but_null()).unwrap();
    assert!(!path.join(FILE_PIDS_MAX).exists());
    assert!(!path.join(FILE_MEMORY_OOM_GROUP).exists());
    assert_eq!(ATTACHED.with(|a| a.take()).len(), 1);
    assert!(!m.oom_killed(&path).unwrap());

    // A limit is refused, never dropped.
    let mut limited = deny_all_but_null();
    limited.set_memory(Some(
        LinuxMemoryBuilder::default()
            .limit(1i64 << 20)
            .build()
            .unwrap(),
    ));
    let err = m
        .create(&m.container_path("u1", "app", 1), &limited)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.memory.limit: the limit cannot be enforced"),
        "{err}"
    );
    let limits = PodResources {
        cpu_weight: Some(3),
        cpu_limit_millis: Some(100),
        memory_limit_bytes: None,
    };
    assert!(m.create_pod("u2", limits).is_err());
    let weight_only = PodResources {
        cpu_weight: Some(3),
        ..Default::default()
    };
    assert!(
        m.create_pod("u3", weight_only).is_ok(),
        "a weight has nowhere to go: skipped"
    );
    m.remove(&pod).unwrap();
    assert!(!pod.exists());
}

#[test]
fn limits_refused_without_cgroup_v2() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "b", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}
        ]}
    }))
    .unwrap();
    let unavailable = CgroupSupport::Unavailable {
        reason: "this host has no cgroup v2 cpu/memory controller(s)".into(),
    };
    let err = check_limits_supported(&pod, &unavailable).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.containers[1].resources.limits.memory: the limit cannot be enforced: this host has no cgroup v2 cpu/memory controller(s)"
    );
    check_limits_supported(&pod, &CgroupSupport::V2 { root: "/x".into() }).unwrap();
    let hybrid = CgroupSupport::DevicesOnly {
        root: "/x/unified".into(),
        reason: "no controllers".into(),
    };
    assert!(check_limits_supported(&pod, &hybrid).is_err());
    let no_limits: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "x"}]}
    }))
    .unwrap();
    check_limits_supported(&no_limits, &unavailable).unwrap();
}
