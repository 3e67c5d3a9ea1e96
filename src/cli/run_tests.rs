use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    run: RunArgs,
}

fn args(line: &[&str]) -> RunArgs {
    let mut argv = vec!["run"];
    argv.extend_from_slice(line);
    Cmd::try_parse_from(argv).unwrap().run
}

#[test]
fn the_pod_kubectl_run_makes() {
    let pod = generate(&args(&["nginx", "--image=nginx"])).unwrap();
    let yaml = Printer::Yaml.render(vec![pod], true, false).unwrap();
    assert_eq!(
        yaml,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    run: nginx\n  name: nginx\nspec:\n  containers:\n  - image: nginx\n    name: nginx\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Always\nstatus: {}\n"
    );
}

#[test]
fn flags_shape_the_container() {
    let pod = generate(&args(&[
        "web",
        "--image=busybox:1.36",
        "--restart=Never",
        "--env=A=1",
        "--env=B=x=y",
        "--port=8080",
        "--labels=app=web,tier=front",
        "--image-pull-policy=IfNotPresent",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]))
    .unwrap();
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["args"], json!(["sh", "-c", "echo hi"]));
    assert!(c.get("command").is_none());
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}])
    );
    assert_eq!(c["ports"], json!([{"containerPort": 8080}]));
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    let with_command = generate(&args(&[
        "x",
        "--image=busybox",
        "--command",
        "--",
        "sleep",
        "9",
    ]))
    .unwrap();
    assert_eq!(
        with_command["spec"]["containers"][0]["command"],
        json!(["sleep", "9"])
    );
    // What kubectl sends passes the API server's checks here too.
    assert!(crate::manifest::check_object_value(&with_command).is_ok());
}

#[test]
fn kubectls_refusals() {
    let err = |line: &[&str]| generate(&args(line)).unwrap_err().to_string();
    assert_eq!(err(&["--image=x"]), "NAME is required for run");
    assert_eq!(err(&["x"]), "required flag(s) \"image\" not set");
    assert_eq!(
        err(&["x", "--image=x", "--restart=Sometimes"]),
        "invalid restart policy: Sometimes"
    );
    assert_eq!(
        err(&["x", "--image=x", "--image-pull-policy=Maybe"]),
        "invalid image pull policy: Maybe"
    );
    assert_eq!(err(&["x", "--image=x", "--env=1A=b"]), "invalid env: 1A=b");
    assert_eq!(err(&["x", "--image=x", "--env=A"]), "invalid env: A");
    assert_eq!(
        err(&["x", "--image=x", "--labels=a"]),
        "unexpected label spec: a"
    );
    assert_eq!(
        err(&["x", "--image=x", "--port=http"]),
        "strconv.ParseUint: parsing \"http\": invalid syntax"
    );
    assert_eq!(
        err(&["x", "--image=Nginx"]),
        "Invalid image name \"Nginx\": invalid reference format"
    );
    assert_eq!(
        err(&["x", "--image=x", "-t"]),
        "-i/--stdin is required for containers with -t/--tty=true"
    );
    assert_eq!(
        err(&["x", "--image=busybox", "--rm"]),
        "--rm should only be used for attached containers"
    );
    assert_eq!(
        err(&["x", "--image=busybox", "-i", "--dry-run=client"]),
        "--dry-run=[server|client] can't be used with attached containers options (--attach, --stdin, or --tty)"
    );
}

#[test]
fn interactive_runs_get_stdin_stdin_once_tty_and_on_failure() {
    let pod = generate(&args(&["sh", "--image=busybox", "-i", "-t", "--rm"])).unwrap();
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        (&c["stdin"], &c["stdinOnce"], &c["tty"]),
        (&json!(true), &json!(true), &json!(true))
    );
    assert_eq!(pod["spec"]["restartPolicy"], "OnFailure");
    let pod = generate(&args(&[
        "sh",
        "--image=busybox",
        "-i",
        "--leave-stdin-open",
        "--restart=Never",
    ]))
    .unwrap();
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["stdin"], json!(true));
    assert!(c.get("stdinOnce").is_none() && c.get("tty").is_none());
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    // --attach alone attaches to a container without stdin.
    let pod = generate(&args(&["x", "--image=busybox", "--attach", "--rm"])).unwrap();
    assert!(pod["spec"]["containers"][0].get("stdin").is_none());
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
}
