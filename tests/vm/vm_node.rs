//! The node agent: static pods from a manifest directory, as the kubelet's staticPodPath, and its
//! zygote, which forks the keepers of the host's pods. The agent (`peapod node --manifests DIR`)
//! runs in the background of each test; pods are checked through the CLI. Runs only in the test
//! VM (`scripts/test`).

use crate::common;

use common::accounting::comm;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the agent may take to notice a change (inotify; the rescan is 20 s).
const NOTICE: Duration = Duration::from_secs(60);

fn node_name() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_lowercase()
}

fn manifest(name: &str, cmd: &str) -> String {
    pod_yaml(name, "Always", "", cmd)
}

/// The agent, stopped (SIGTERM) when the test ends.
struct Agent(Child);

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        let child = Command::new(peapod_bin())
            .args(["node", "--manifests"])
            .arg(dir)
            .env(AGENT_EXEC_MARK, "1")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.with_extension("log"))
                    .expect("cannot create the agent log"),
            )
            .spawn()
            .expect("cannot start peapod node");
        Agent(child)
    }
}

impl Agent {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Not one the test killed and collected already (its pid may be another's now).
        if let Ok(None) = self.0.try_wait() {
            kill(self.pid(), "TERM");
            let _ = self.0.wait();
        }
    }
}

fn uid(pod: &str) -> String {
    try_pod_json(pod)
        .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn static_pods_follow_their_files() {
    require_vm();
    let dir = std::path::PathBuf::from("/tmp/static-manifests");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sleep = "trap 'exit 0' TERM; while true; do sleep 1; done";
    std::fs::write(dir.join("web.yaml"), manifest("web", sleep)).unwrap();
    let agent = Agent::start(&dir);
    let pod = format!("web-{}", node_name());
    let _guard = PodGuard(pod.clone());
    wait_until(
        &pod,
        "the static pod Running",
        || phase(&pod) == "Running",
        NOTICE,
    );
    let json = pod_json(&pod);
    assert_eq!(
        json["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    let first = uid(&pod);
    assert_eq!(
        json["metadata"]["annotations"]["kubernetes.io/config.hash"],
        first.as_str()
    );
    assert_eq!(first.len(), 32, "the kubelet's static pod UID is a hash");

    // An invalid file is reported and leaves the others alone.
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
    )
    .unwrap();
    // A changed file replaces the pod.
    std::fs::write(
        dir.join("web.yaml"),
        manifest("web", &format!("echo v2; {sleep}")),
    )
    .unwrap();
    wait_until(
        &pod,
        "a new pod for the changed file",
        || {
            let u = uid(&pod);
            !u.is_empty() && u != first && phase(&pod) == "Running"
        },
        NOTICE,
    );
    let second = uid(&pod);
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
    assert!(
        log.contains("broken.yaml"),
        "the invalid file is not reported:\n{log}"
    );

    // Deleted by hand, it comes back while its file exists.
    let out = peapod(&["delete", "pod", &pod, "--grace-period=0", "--force"]);
    assert!(stderr(&out).contains("is a static pod"), "{}", stderr(&out));
    wait_until(
        &pod,
        "the static pod back",
        || phase(&pod) == "Running",
        NOTICE,
    );
    assert_eq!(uid(&pod), second, "the same file gives the same UID");

    // Its file removed, it goes.
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    wait_until(
        &pod,
        "the pod deleted",
        || try_pod_json(&pod).is_none(),
        NOTICE,
    );
    drop(agent);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn stopping_the_agent_leaves_its_pods_running_and_once_reports_bad_files() {
    require_vm();
    let dir = std::path::PathBuf::from("/tmp/static-manifests-2");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keep.yaml"),
        manifest("keep", "trap 'exit 0' TERM; while true; do sleep 1; done"),
    )
    .unwrap();
    std::fs::write(dir.join("bad.yaml"), "kind: Deployment\n").unwrap();
    let out = peapod(&["node", "--once", "--manifests", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a bad file makes --once fail");
    assert!(stderr(&out).contains("bad.yaml"), "{}", stderr(&out));
    let pod = format!("keep-{}", node_name());
    let _guard = PodGuard(pod.clone());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("static pod default/{pod} created"))
    );
    wait_running(&pod);
    let agent = Agent::start(&dir);
    std::thread::sleep(Duration::from_secs(2));
    drop(agent);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        phase(&pod),
        "Running",
        "stopping the agent must not stop its pods"
    );
}

/// A variable only the agent's environment has (not `PEAPOD_*`: the zygote serves only CLIs
/// whose `PEAPOD_*` environment is its own).
const AGENT_EXEC_MARK: &str = "VM_NODE_AGENT_EXEC";

/// Whether process `pid` comes from the agent's exec: `/proc/PID/environ` shows the environment
/// of the execve a process comes from, which forks keep, so the agent, its zygote and what the
/// zygote forks show the agent's mark and the processes of another exec do not. (Not the
/// binary's load address: the test VM runs without ASLR.)
fn of_agent_exec(pid: i32) -> bool {
    of_marked_exec(pid, AGENT_EXEC_MARK)
}

/// Whether process `pid` comes from an exec whose environment held `mark=1`.
fn of_marked_exec(pid: i32, mark: &str) -> bool {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/environ: {e}"));
    let mark = format!("{mark}=1");
    environ.split(|b| *b == 0).any(|v| v == mark.as_bytes())
}

/// The CLIs' zygotes serving this lane's state directory (the default one when the test runs
/// outside a lane, without `PEAPOD_LIB_DIR`).
fn cli_zygotes() -> Vec<i32> {
    let lib = format!("PEAPOD_LIB_DIR={}", lib_dir().display());
    let default = lib_dir() == std::path::Path::new(LIB_DIR);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| comm(p) == "peapod-zygote" && !gone(p))
        .filter(|&p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                match env
                    .split(|b| *b == 0)
                    .find(|v| v.starts_with(b"PEAPOD_LIB_DIR="))
                {
                    Some(v) => v == lib.as_bytes(),
                    None => default,
                }
            })
        })
        .collect()
}

fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    after
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The pids from `pid`'s parent up to pid 1.
fn ancestors(mut pid: i32) -> Vec<i32> {
    let mut chain = Vec::new();
    while pid > 1 {
        pid = ppid(pid);
        chain.push(pid);
    }
    chain
}

/// Whether `pid` is gone (or a zombie).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn keeper_pid(pod: &str) -> i32 {
    pod_state(pod)["keeper"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no keeper for {pod}")) as i32
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn the_agents_zygote_forks_the_keepers_of_every_cli_and_outlives_nothing() {
    require_vm();
    let dir = std::path::PathBuf::from("/tmp/static-manifests-3");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = std::path::PathBuf::from(
        std::env::var("PEAPOD_RUN_DIR").unwrap_or_else(|_| RUN_DIR.into()),
    );
    let socket = run.join("spawner.sock");
    let agent = Agent::start(&dir);
    assert!(
        wait_for(|| socket.exists(), Duration::from_secs(30)),
        "the zygote's socket {} never appeared",
        socket.display()
    );
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid())).unwrap();
    let zygote: i32 = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|&p| comm(p) == "peapod-zygote")
        .unwrap_or_else(|| panic!("no peapod-zygote among the agent's children {children}"));
    assert!(of_agent_exec(agent.pid()) && of_agent_exec(zygote));
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let sleep = "trap 'exit 0' TERM; while true; do sleep 1; done";
    let names = ["zy-a", "zy-b", "zy-c", "zy-d"];
    let _guards: Vec<PodGuard> = names.iter().map(|n| PodGuard(n.to_string())).collect();
    // Pods applied by separate CLI calls: each keeper and supervisor is of the agent's exec,
    // and neither the agent, the zygote nor the (gone) CLI is above the keeper.
    for name in &names[..2] {
        apply_ok(&pod_yaml(name, "Always", "", sleep));
        wait_running(name);
        let keeper = keeper_pid(name);
        assert!(of_agent_exec(keeper), "{name}'s keeper is not the zygote's");
        let supervisor = pod_state(name)["supervisor"]["pid"].as_i64().unwrap() as i32;
        assert!(
            of_agent_exec(supervisor),
            "{name}'s supervisor is not the zygote's"
        );
        let chain = ancestors(keeper);
        assert!(
            !chain.contains(&agent.pid()) && !chain.contains(&zygote),
            "{name}'s keeper {keeper} is under the agent or the zygote: {chain:?}"
        );
    }

    // A CLI with another configuration (the same directory, spelled otherwise) forks its own.
    let lib = lib_dir();
    let file = dir.with_extension("zy-c.yaml");
    std::fs::write(&file, pod_yaml("zy-c", "Always", "", sleep)).unwrap();
    let out = peapod_env(
        &["apply", "-f", file.to_str().unwrap()],
        &[("PEAPOD_LIB_DIR", lib.join("."))],
    );
    expect_ok(&["apply"], out);
    wait_running("zy-c");
    assert!(
        !of_agent_exec(keeper_pid("zy-c")),
        "a CLI of another configuration was served by the zygote"
    );

    // kill -9 of the agent: the zygote exits and removes its socket; the pods run on.
    let mut agent = agent;
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(agent.pid(), libc::SIGKILL) };
    let _ = agent.0.wait();
    assert!(
        wait_for(|| gone(zygote), Duration::from_secs(10)),
        "the zygote outlived its agent"
    );
    assert!(
        wait_for(|| !socket.exists(), Duration::from_secs(10)),
        "the zygote's socket outlived it"
    );
    std::thread::sleep(Duration::from_secs(1));
    for name in &names[..3] {
        assert_eq!(phase(name), "Running", "{name} did not survive the agent");
    }
    // Without an agent, a CLI forks its own keepers.
    apply_ok(&pod_yaml("zy-d", "Always", "", sleep));
    wait_running("zy-d");
    assert!(
        !of_agent_exec(keeper_pid("zy-d")),
        "without the agent, a CLI's keeper is of the agent's exec"
    );
    for name in names {
        let keeper = keeper_pid(name);
        expect_ok(&["delete"], delete(name));
        assert!(try_pod_json(name).is_none(), "{name} still listed");
        assert!(
            wait_for(|| gone(keeper), Duration::from_secs(10)),
            "{name}'s keeper {keeper} outlived its pod"
        );
    }
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(agent);
}

/// A variable only the first CLI's environment has (not `PEAPOD_*`, which the zygote compares).
const CLI_EXEC_MARK: &str = "VM_NODE_FIRST_CLI_EXEC";

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn without_an_agent_the_first_clis_spawner_serves_later_clis_until_the_last_pod_goes() {
    require_vm();
    let run = std::path::PathBuf::from(
        std::env::var("PEAPOD_RUN_DIR").unwrap_or_else(|_| RUN_DIR.into()),
    );
    let socket = run.join("cli-spawner.sock");
    assert!(
        cli_zygotes().is_empty() && !socket.exists(),
        "a CLIs' zygote runs before any pod of this test: {:?}",
        cli_zygotes()
    );
    let sleep = "trap 'exit 0' TERM; while true; do sleep 1; done";
    let names = ["cz-a", "cz-b", "cz-c"];
    let _guards: Vec<PodGuard> = names.iter().map(|n| PodGuard(n.to_string())).collect();
    let apply_with = |name: &str, env: &[(&str, std::path::PathBuf)]| {
        let file = std::env::temp_dir().join(format!("{name}.yaml"));
        std::fs::write(&file, pod_yaml(name, "Always", "", sleep)).unwrap();
        expect_ok(
            &["apply"],
            peapod_env(&["apply", "-f", file.to_str().unwrap()], env),
        );
        wait_running(name);
    };

    // The first CLI's spawner stays on: the zygote comes from that exec.
    apply_with("cz-a", &[(CLI_EXEC_MARK, "1".into())]);
    assert!(of_marked_exec(keeper_pid("cz-a"), CLI_EXEC_MARK));
    assert!(
        wait_for(
            || cli_zygotes().len() == 1 && socket.exists(),
            Duration::from_secs(10)
        ),
        "no CLIs' zygote after the first apply: {:?}",
        cli_zygotes()
    );
    let zygote = cli_zygotes()[0];
    assert!(of_marked_exec(zygote, CLI_EXEC_MARK));
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // A later CLI's pod is forked by it: of the first exec, under neither the zygote nor a CLI.
    apply_with("cz-b", &[]);
    let keeper = keeper_pid("cz-b");
    assert!(
        of_marked_exec(keeper, CLI_EXEC_MARK),
        "cz-b's keeper is not the CLIs' zygote's"
    );
    let supervisor = pod_state("cz-b")["supervisor"]["pid"].as_i64().unwrap() as i32;
    assert!(of_marked_exec(supervisor, CLI_EXEC_MARK));
    assert!(
        !ancestors(keeper).contains(&zygote),
        "cz-b's keeper {keeper} is under the zygote"
    );

    // A CLI of another configuration forks its own, and its spawner leaves (one zygote).
    apply_with("cz-c", &[("PEAPOD_LIB_DIR", lib_dir().join("."))]);
    assert!(!of_marked_exec(keeper_pid("cz-c"), CLI_EXEC_MARK));

    // The zygote lives while a pod is on record, and is gone when the delete of the last returns.
    for name in ["cz-a", "cz-c"] {
        expect_ok(&["delete"], delete(name));
    }
    assert!(!gone(zygote), "the zygote left while cz-b was on record");
    let keeper = keeper_pid("cz-b");
    expect_ok(&["delete"], delete("cz-b"));
    // The delete waits for the zygote's exit, for a bounded time (3 s): a loaded emulated VM
    // can take longer, so the test allows more, then checks nothing of it is left.
    assert!(
        wait_for(|| gone(zygote), Duration::from_secs(15)),
        "the zygote outlived the delete of the last pod"
    );
    assert!(!socket.exists(), "the zygote's socket outlived it");
    assert!(cli_zygotes().is_empty(), "{:?}", cli_zygotes());
    assert!(wait_for(|| gone(keeper), Duration::from_secs(10)));
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
