//! Volume manifests as a user sees them: defaults, the API server's messages and field paths.

use super::*;

/// GOOD with `mounts` in its container and `volumes` in its spec.
fn with(volumes: &str, mounts: &str) -> String {
    GOOD.replace(
        "    ports:",
        &format!("    volumeMounts:\n{mounts}    ports:"),
    ) + "  volumes:\n"
        + volumes
}

const DATA: &str = "  - name: data\n    emptyDir: {}\n";

#[test]
fn a_volume_without_a_source_is_an_empty_dir() {
    let pod = one(&with(
        "  - name: www\n",
        "    - {name: www, mountPath: /www}\n",
    ));
    let v = &pod.spec.unwrap().volumes.unwrap()[0];
    assert_eq!(v.empty_dir, Some(Default::default()));
}

#[test]
fn empty_dir_mode_is_octal_as_kubectl_reads_it() {
    let pod = one(&with("  - name: t\n    emptyDir:\n      mode: 01777\n", ""));
    let ed = pod.spec.unwrap().volumes.unwrap()[0]
        .empty_dir
        .clone()
        .unwrap();
    assert_eq!(ed.mode, Some(0o1777));
    let err = errors(&with("  - name: t\n    emptyDir: {mode: 4096}\n", ""));
    assert!(
        err.contains("spec.volumes[0].emptyDir.mode: Invalid value: 4096: must be a number between 0 and 01777 (octal), both inclusive"),
        "{err}"
    );
    let err = errors(&with("  - name: t\n    emptyDir: {sizeLimit: -1Mi}\n", ""));
    assert!(
        err.contains("spec.volumes[0].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity"),
        "{err}"
    );
    let err = errors(&with(
        "  - name: t\n    emptyDir: {medium: HugePages-2Mi}\n",
        "",
    ));
    assert!(
        err.contains("not supported: spec.volumes[0].emptyDir.medium (medium \"HugePages-2Mi\": hugepages-backed emptyDir volumes)"),
        "{err}"
    );
}

#[test]
fn host_path_messages() {
    let err = errors(&with(
        "  - name: h\n    hostPath: {path: /srv/../etc, type: Dir}\n",
        "",
    ));
    assert!(
        err.contains(
            "spec.volumes[0].hostPath.path: Invalid value: \"/srv/../etc\": must not contain '..'"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""),
        "{err}"
    );
}

#[test]
fn sub_paths_are_relative_and_descending() {
    // The API server names these fields without the mount's index.
    let err = errors(&with(
        DATA,
        "    - {name: data, mountPath: /a, subPath: /etc}\n    - {name: data, mountPath: /b, subPath: a/../..}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts.subPath: Invalid value: \"/etc\": must be a relative path"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].volumeMounts.subPath: Invalid value: \"a/../..\": must not contain '..'"),
        "{err}"
    );
    let err = errors(&with(
        DATA,
        "    - {name: data, mountPath: /a, subPath: x, subPathExpr: $(POD)}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts[0].subPathExpr: Invalid value: \"$(POD)\": subPathExpr and subPath are mutually exclusive"),
        "{err}"
    );
    one(&with(
        DATA,
        "    - {name: data, mountPath: /a, subPathExpr: $(POD)/logs}\n",
    ));
}

#[test]
fn propagation_and_recursive_read_only() {
    let err = errors(&with(
        DATA,
        "    - {name: data, mountPath: /a, mountPropagation: Bidirectional}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"),
        "{err}"
    );
    let privileged = with(
        DATA,
        "    - {name: data, mountPath: /a, mountPropagation: Bidirectional}\n",
    )
    .replace(
        "    ports:",
        "    securityContext: {privileged: true}\n    ports:",
    );
    one(&privileged);
    let err = errors(&with(
        DATA,
        "    - {name: data, mountPath: /a, mountPropagation: Both}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts.mountPropagation: Unsupported value: \"Both\": supported values: \"Bidirectional\", \"HostToContainer\", \"None\""),
        "{err}"
    );
    let err = errors(&with(
        DATA,
        "    - {name: data, mountPath: /a, recursiveReadOnly: Enabled, mountPropagation: HostToContainer}\n",
    ));
    assert!(
        err.contains("spec.containers[0].volumeMounts.recursiveReadOnly: Forbidden: may only be specified when readOnly is true"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].volumeMounts.recursiveReadOnly: Forbidden: may only be specified when mountPropagation is None or not specified"),
        "{err}"
    );
    one(&with(
        DATA,
        "    - {name: data, mountPath: /a, readOnly: true, recursiveReadOnly: IfPossible}\n",
    ));
}

#[test]
fn pod_security_context_for_volumes() {
    let sc = |body: &str| format!("{GOOD}  securityContext:\n{body}");
    one(&sc("    fsGroup: 2000\n    fsGroupChangePolicy: OnRootMismatch\n    supplementalGroupsPolicy: Strict\n"));
    let err = errors(&sc(
        "    fsGroup: -1\n    supplementalGroups: [4000, 3000000000]\n    fsGroupChangePolicy: Sometimes\n    supplementalGroupsPolicy: Loose\n",
    ));
    for needle in [
        "spec.securityContext.fsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.supplementalGroups[1]: Invalid value: 3000000000: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.fsGroupChangePolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnRootMismatch\"",
        "spec.securityContext.supplementalGroupsPolicy: Unsupported value: \"Loose\": supported values: \"Merge\", \"Strict\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}
