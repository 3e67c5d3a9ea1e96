//! The walkthroughs' kubectl verbs on the real binary, without root: selectors and printers of
//! `get`/`delete` on ConfigMaps, `run --dry-run`, `apply -f DIR [-R]`, `apply -f http://...`
//! from a server on loopback, `delete --all`, `completion`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::cli::{ages, Peapod};

fn config_map(name: &str, labels: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\ndata: {{{data}}}\n"
    )
}

/// Three ConfigMaps: web (app=web, tier=front), db (app=db), bare (no labels).
fn three(p: &Peapod) {
    let text = [
        config_map("web", "app: web, tier: front", "a: '1'"),
        config_map("db", "app: db", "a: '1', b: '2'"),
        config_map("bare", "", ""),
    ]
    .join("---\n");
    let file = p.write("three.yaml", &text);
    p.ok(
        &["apply", "-f", &file],
        "configmap/web created\nconfigmap/db created\nconfigmap/bare created\n",
    );
}

#[test]
fn label_and_field_selectors_on_configmaps() {
    let p = Peapod::new();
    three(&p);
    let get = |args: &[&str]| {
        let r = p.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        ages(&r.stdout)
    };
    assert_eq!(
        get(&["get", "cm", "-l", "app=web", "-o", "name"]),
        "configmap/web\n"
    );
    assert_eq!(
        get(&["get", "cm", "-l", "app in (web,db)", "-o", "name"]),
        "configmap/db\nconfigmap/web\n"
    );
    assert_eq!(
        get(&["get", "cm", "-l", "app!=web", "-o", "name"]),
        "configmap/bare\nconfigmap/db\n"
    );
    assert_eq!(
        get(&["get", "cm", "-l", "!app", "-o", "name"]),
        "configmap/bare\n"
    );
    assert_eq!(
        get(&["get", "cm", "-l", "app,tier in (front)", "-o", "name"]),
        "configmap/web\n"
    );
    // notin, like !=, also selects the objects without the key.
    assert_eq!(
        get(&["get", "cm", "-l", "tier notin (back)", "-o", "name"]),
        "configmap/bare\nconfigmap/db\nconfigmap/web\n"
    );
    assert_eq!(
        get(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name!=db",
            "-o",
            "name"
        ]),
        "configmap/bare\nconfigmap/web\n"
    );
    p.none_found(&["get", "cm", "-l", "app=nothing"]);
    p.fails(
        &["get", "cm", "-l", "app in web"],
        "Error from server (BadRequest): Unable to find \"/v1, Resource=configmaps\" that match label selector \"app in web\", field selector \"\": unable to parse requirement: found 'web' expected: '('\n",
    );
    p.fails(
        &["get", "cm", "--field-selector", "data=1"],
        "Error from server (BadRequest): Unable to find \"/v1, Resource=configmaps\" that match label selector \"\", field selector \"data=1\": \"data\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"\n",
    );
    p.fails(
        &["get", "cm", "web", "-l", "app=web"],
        "error: name cannot be provided when a selector is specified\n",
    );
}

#[test]
fn label_columns_sorting_and_printers() {
    let p = Peapod::new();
    three(&p);
    let r = p.run(&["get", "cm", "--show-labels"]);
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "DATA", "AGE", "LABELS"]);
    assert_eq!((rows[1][0], rows[1][3]), ("bare", "<none>"));
    assert_eq!((rows[3][0], rows[3][3]), ("web", "app=web,tier=front"));
    let r = p.run(&[
        "get",
        "cm",
        "-L",
        "app",
        "--no-headers",
        "--sort-by",
        ".metadata.labels.app",
    ]);
    let names: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["bare", "db", "web"], "{}", r.stdout);
    assert!(
        r.stdout.lines().nth(2).unwrap().trim_end().ends_with("web"),
        "{}",
        r.stdout
    );
    p.ok(
        &[
            "get",
            "cm",
            "-o",
            "custom-columns=NAME:.metadata.name,APP:.metadata.labels.app",
            "--sort-by={.metadata.name}",
        ],
        "NAME   APP\nbare   <none>\ndb     db\nweb    web\n",
    );
    let columns = p.write("cols.txt", "NAME DATA\n.metadata.name .data.a\n");
    p.ok(
        &["get", "cm", "-o", &format!("custom-columns-file={columns}")],
        "NAME   DATA\nbare   <none>\ndb     1\nweb    1\n",
    );
    p.ok(
        &[
            "get",
            "cm",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.data.a}{\"\\n\"}{end}",
        ],
        "bare=\ndb=1\nweb=1\n",
    );
    p.ok(
        &[
            "get",
            "cm",
            "-o",
            "jsonpath={.items[?(@.metadata.labels.app==\"db\")].metadata.name}",
        ],
        "db",
    );
    p.ok(
        &["get", "cm", "web", "-o", "jsonpath={.metadata.labels}"],
        "{\"app\":\"web\",\"tier\":\"front\"}",
    );
    p.ok(
        &[
            "get",
            "cm",
            "--template",
            "{{range .items}}{{.metadata.name}} {{index .metadata.labels \"app\"}}\n{{end}}",
        ],
        "bare <no value>\ndb db\nweb web\n",
    );
    p.ok(&["get", "cm", "web", "-o", "go-template={{.data.a}}"], "1");
    p.fails(
        &["get", "cm", "--show-labels", "-o", "json"],
        "error: --show-labels option cannot be used with json printer\n",
    );
    p.fails(
        &["get", "cm", "--sort-by", ".spec.nothing"],
        "error: couldn't find any field with path \"{.spec.nothing}\" in the list of objects\n",
    );
}

#[test]
fn delete_by_selector_and_all() {
    let p = Peapod::new();
    three(&p);
    p.ok(
        &["delete", "cm", "-l", "app=db"],
        "configmap \"db\" deleted from default namespace\n",
    );
    p.ok(&["delete", "cm", "-l", "app=db"], "No resources found\n");
    p.fails(
        &["delete", "cm", "--all", "-l", "app=web"],
        "error: cannot set --all and --selector at the same time\n",
    );
    p.ok(
        &["delete", "cm", "--all"],
        "configmap \"bare\" deleted from default namespace\nconfigmap \"web\" deleted from default namespace\n",
    );
    p.none_found(&["get", "cm"]);
}

#[test]
fn run_dry_run_prints_the_pod_kubectl_makes() {
    let p = Peapod::new();
    p.ok(
        &["run", "nginx", "--image=nginx", "--dry-run=client", "-o", "yaml"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    run: nginx\n  name: nginx\nspec:\n  containers:\n  - image: nginx\n    name: nginx\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Always\nstatus: {}\n",
    );
    p.ok(
        &["run", "nginx", "--image=nginx", "--dry-run=client"],
        "pod/nginx created (dry run)\n",
    );
    let r = p.run(&[
        "run",
        "job",
        "--image=busybox",
        "--restart=Never",
        "--labels=app=job",
        "--dry-run=client",
        "-o",
        "json",
        "--command",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    let pod: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        serde_json::json!(["sh", "-c", "echo hi"])
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["labels"], serde_json::json!({"app": "job"}));
    p.fails(
        &["run", "x", "--image=x", "--restart=Sometimes"],
        "error: invalid restart policy: Sometimes\n",
    );
    p.fails(&["run", "x"], "error: required flag(s) \"image\" not set\n");
}

#[test]
fn apply_and_create_dry_runs_take_kubectls_values_and_store_nothing() {
    let p = Peapod::new();
    let file = p.write("cm.yaml", &config_map("dry", "", ""));
    for verb in ["apply", "create"] {
        p.ok(
            &[verb, "-f", &file, "--dry-run=client"],
            "configmap/dry created (dry run)\n",
        );
        p.ok(
            &[verb, "-f", &file, "--dry-run"],
            "configmap/dry created (dry run)\n",
        );
        p.ok(
            &[verb, "-f", &file, "--dry-run=server"],
            "configmap/dry created (server dry run)\n",
        );
        p.fails(
            &[verb, "-f", &file, "--dry-run=bogus"],
            "error: Invalid dry-run value (bogus). Must be \"none\", \"server\", or \"client\".\n",
        );
    }
    p.none_found(&["get", "cm"]);
    p.ok(
        &["apply", "-f", &file, "--dry-run=none"],
        "configmap/dry created\n",
    );
    // Against a stored object: apply's dry runs read it [kubectl apply.go], create's client
    // dry run asks nothing, its server dry run is refused as the create would be.
    for dry_run in ["--dry-run=client", "--dry-run=server"] {
        let suffix = if dry_run.ends_with("client") {
            "(dry run)"
        } else {
            "(server dry run)"
        };
        p.ok(
            &["apply", "-f", &file, dry_run],
            &format!("configmap/dry unchanged {suffix}\n"),
        );
    }
    let changed = p.write("changed.yaml", &config_map("dry", "", "k: v"));
    p.ok(
        &["apply", "-f", &changed, "--dry-run=server"],
        "configmap/dry configured (server dry run)\n",
    );
    p.ok(
        &["create", "-f", &file, "--dry-run=client"],
        "configmap/dry created (dry run)\n",
    );
    p.fails(
        &["create", "-f", &file, "--dry-run=server"],
        "Error from server (AlreadyExists): configmaps \"dry\" already exists\n",
    );
    let stored = p.run(&["get", "cm", "dry", "-o", "jsonpath={.data}"]);
    assert_eq!(stored.stdout, "{}", "a dry run stored its change");
    // delete's dry runs and `-o name` [kubectl delete.go PrintObj, Validate]: nothing goes.
    p.ok(
        &["delete", "cm", "dry", "--dry-run=client"],
        "configmap \"dry\" deleted from default namespace (dry run)\n",
    );
    p.ok(
        &["delete", "-f", &file, "--dry-run=server"],
        "configmap \"dry\" deleted from default namespace (server dry run)\n",
    );
    p.ok(
        &["delete", "cm", "dry", "--dry-run", "-o", "name"],
        "configmap/dry\n",
    );
    p.fails(
        &["delete", "cm", "dry", "-o", "yaml"],
        "error: unexpected -o output mode: yaml. We only support '-o name'\n",
    );
    p.fails(
        &["delete", "cm", "gone", "--dry-run=client"],
        "Error from server (NotFound): configmaps \"gone\" not found\n",
    );
    p.ok(&["delete", "cm", "dry", "-o", "name"], "configmap/dry\n");
    p.none_found(&["get", "cm"]);
}

/// `apply -o` and `create -f -o` print each object through kubectl's printers instead of its
/// outcome [kubectl apply.go PrintObj, cli-runtime NamePrintFlags: `-o name` drops the
/// operation]; flags before a generator's name are the generator's, as cobra reads them.
#[test]
fn apply_and_create_print_objects_through_o() {
    let p = Peapod::new();
    let text = [
        config_map("one", "app: x", "a: '1'"),
        config_map("two", "", ""),
    ]
    .join("---\n");
    let file = p.write("two.yaml", &text);
    p.ok(
        &["apply", "-f", &file, "-o", "name"],
        "configmap/one\nconfigmap/two\n",
    );
    p.ok(
        &["apply", "-f", &file, "-o", "name"],
        "configmap/one\nconfigmap/two\n",
    );
    p.ok(
        &[
            "apply",
            "-f",
            &file,
            "-o",
            "jsonpath={.metadata.name} {.data.a};",
        ],
        "one 1;two ;",
    );
    let yaml = p.run(&["apply", "-f", &file, "-o", "yaml"]);
    assert_eq!(yaml.code, 0, "{}", yaml.stderr);
    let docs: Vec<&str> = yaml.stdout.split("---\n").collect();
    assert_eq!(docs.len(), 2, "{}", yaml.stdout);
    assert!(
        docs[0].contains("name: one") && docs[0].contains("uid: "),
        "{}",
        docs[0]
    );
    assert!(docs[1].contains("name: two"), "{}", docs[1]);
    p.fails(
        &["create", "-f", &file, "-o", "name"],
        "Error from server (AlreadyExists): configmaps \"one\" already exists\nError from server (AlreadyExists): configmaps \"two\" already exists\n",
    );
    p.fails(
        &["apply", "-f", &file, "-o", "wide"],
        "error: unable to match a printer suitable for the output format \"wide\", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,yaml\n",
    );
    let fresh = p.write("three.yaml", &config_map("three", "", ""));
    p.ok(
        &["apply", "-f", &fresh, "--dry-run=client", "-o", "name"],
        "configmap/three\n",
    );
    // Before the generator's name: still a dry run, nothing stored.
    p.ok(
        &[
            "create",
            "--dry-run=client",
            "configmap",
            "four",
            "--from-literal=k=v",
        ],
        "configmap/four created (dry run)\n",
    );
    p.ok(
        &[
            "create",
            "-o",
            "name",
            "configmap",
            "five",
            "--from-literal=k=v",
        ],
        "configmap/five\n",
    );
    let names = p.run(&["get", "cm", "-o", "name"]);
    assert_eq!(
        names.stdout, "configmap/five\nconfigmap/one\nconfigmap/two\n",
        "{}",
        names.stderr
    );
}

#[test]
fn apply_a_directory_with_and_without_recursion() {
    let p = Peapod::new();
    std::fs::create_dir_all(p.path("dir/sub")).expect("mkdir");
    p.write("dir/a.yaml", &config_map("a", "", ""));
    p.write(
        "dir/b.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}"#,
    );
    p.write("dir/notes.txt", "not a manifest");
    p.write("dir/sub/c.yml", &config_map("c", "", ""));
    let dir = p.path("dir");
    p.ok(
        &["apply", "-f", &dir],
        "configmap/a created\nconfigmap/b created\n",
    );
    p.ok(
        &["apply", "-f", &dir, "-R"],
        "configmap/a unchanged\nconfigmap/b unchanged\nconfigmap/c created\n",
    );
    p.ok(
        &["delete", "-f", &dir, "--recursive"],
        "configmap \"a\" deleted from default namespace\nconfigmap \"b\" deleted from default namespace\nconfigmap \"c\" deleted from default namespace\n",
    );
    std::fs::create_dir_all(p.path("empty")).expect("mkdir");
    p.fails(
        &["apply", "-f", &p.path("empty")],
        "error: no objects passed to apply\n",
    );
    let missing = p.path("missing");
    p.fails(
        &["apply", "-f", &missing],
        &format!("error: the path \"{missing}\" does not exist\n"),
    );
}

/// Serves `body` for `/cm.yaml` and 404 for anything else, for `requests` requests.
fn serve(body: String, requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply = if request.starts_with("GET /cm.yaml ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (port, handle)
}

#[test]
fn apply_from_a_url() {
    let p = Peapod::new();
    let (port, server) = serve(config_map("remote", "app: web", "k: v"), 2);
    p.ok(
        &["apply", "-f", &format!("http://127.0.0.1:{port}/cm.yaml")],
        "configmap/remote created\n",
    );
    let missing = format!("http://127.0.0.1:{port}/nope.yaml");
    p.fails(
        &["apply", "-f", &missing],
        &format!("error: unable to read URL \"{missing}\", server reported 404 Not Found, status code=404\n"),
    );
    server.join().expect("server");
    p.ok(
        &["get", "cm", "-l", "app=web", "-o", "name"],
        "configmap/remote\n",
    );
    // Nothing listens any more: three attempts a second apart, then Go's words.
    let gone = format!("http://127.0.0.1:{port}/cm.yaml");
    p.fails(
        &["apply", "-f", &gone],
        &format!("error: Get \"{gone}\": dial tcp 127.0.0.1:{port}: connect: connection refused\n"),
    );
}

#[test]
fn completion_scripts_come_from_the_commands() {
    let p = Peapod::new();
    for (shell, marker) in [
        ("bash", "_peapod()"),
        ("zsh", "#compdef peapod"),
        ("fish", "complete -c peapod"),
    ] {
        let r = p.run(&["completion", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(marker), "{shell}");
        for verb in ["run", "ps", "top", "apply", "field-selector", "show-labels"] {
            assert!(r.stdout.contains(verb), "{shell} completion lacks {verb}");
        }
    }
}
