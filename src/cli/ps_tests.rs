use super::*;
use crate::cli::status::tests::{pod, running, status, ts, with_restarts};
use crate::pod::record::{ContainerState, PodState, ProcessRef, SandboxState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn me() -> ProcessRef {
    ProcessRef::of(std::process::id() as i32).unwrap()
}

fn gone() -> ProcessRef {
    let mut p = me();
    p.start_time += 1;
    p
}

/// A pod whose container `a` crashed once and runs again, in its second sandbox.
fn record() -> PodRecord {
    let mut p = pod(&["a"], &[]);
    p.metadata.uid = Some("uid-1".into());
    p.metadata.creation_timestamp = Some(Time(ts("2024-01-01T00:00:00Z")));
    let mut cs = with_restarts(running("a", true), 1, "2024-01-01T00:00:05Z");
    cs.image = "busybox:1.36".into();
    if let Some(t) = cs.last_state.as_mut().and_then(|s| s.terminated.as_mut()) {
        t.container_id = Some(format!("{CONTAINER_ID_SCHEME}{}", "0".repeat(64)));
        t.started_at = Some(Time(ts("2023-12-31T23:59:00Z")));
    }
    let mut state = PodState {
        uid: "uid-1".into(),
        namespace: "default".into(),
        name: "web".into(),
        sandbox: SandboxState {
            process: Some(me()),
            attempt: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    state.containers.insert(
        "a".into(),
        ContainerState {
            id: "f".repeat(64),
            restart_count: 1,
            process: Some(me()),
            ..Default::default()
        },
    );
    PodRecord {
        pod: p,
        status: Some(status("Running", vec![], vec![cs])),
        state: Some(state),
        events: vec![],
        deleting: None,
    }
}

#[test]
fn containers_as_crictl_lists_them() {
    let rows = container_rows(&record());
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].state, rows[0].attempt), ("Running", 1));
    assert_eq!((rows[1].state, rows[1].attempt), ("Exited", 0));
    assert_eq!(rows[1].id, "0".repeat(64));
    assert_eq!(rows[0].kubelet_name, "k8s_a_web_default_uid-1_1");
    let now = ts("2024-01-01T00:03:00Z");
    let all = PsArgs {
        all: true,
        ..Default::default()
    };
    let text = containers_table(rows.clone(), &all, now);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD                 NAMESPACE"
    );
    assert!(lines[1].starts_with("fffffffffffff       busybox:1.36        3 minutes ago       Running             a                   1                   "), "{text}");
    assert!(lines[2].starts_with("0000000000000       busybox:1.36        4 minutes ago       Exited              a                   0"), "{text}");
    assert!(lines[1].ends_with("web                 default"), "{text}");
    let wide = PsArgs {
        output: Some("wide".into()),
        ..Default::default()
    };
    assert!(containers_table(rows.clone(), &wide, now)
        .lines()
        .nth(1)
        .unwrap()
        .ends_with("k8s_a_web_default_uid-1_1"));
    let quiet = PsArgs {
        quiet: true,
        ..Default::default()
    };
    assert_eq!(
        containers_table(rows, &quiet, now),
        format!("{}\n{}\n", "f".repeat(64), "0".repeat(64))
    );
}

#[test]
fn sandboxes_as_crictl_lists_them() {
    let mut rec = record();
    let row = sandbox_row(&rec);
    assert_eq!((row.state, row.attempt), ("Ready", 1));
    assert_eq!(row.kubelet_name, "k8s_POD_web_default_uid-1_1");
    assert_eq!(row.id, container_id("k8s_POD_web_default_uid-1_1", "uid-1"));
    let text = sandboxes_table(vec![row], &PsArgs::default(), ts("2024-01-01T00:00:30Z"));
    assert_eq!(
        text,
        format!(
            "POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n\
             {}       30 seconds ago      Ready               web                 default             1                   (default)\n",
            &container_id("k8s_POD_web_default_uid-1_1", "uid-1")[..13]
        )
    );
    if let Some(s) = rec.state.as_mut() {
        s.sandbox.process = Some(gone());
    }
    assert_eq!(sandbox_row(&rec).state, "NotReady");
}
