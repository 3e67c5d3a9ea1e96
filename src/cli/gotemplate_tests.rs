use super::*;
use serde_json::json;

fn pods() -> Value {
    json!({
        "kind": "List",
        "items": [
            {"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}, "status": {"phase": "Running"},
             "spec": {"containers": [{"name": "c1", "image": "busybox"}, {"name": "c2", "image": "nginx"}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending"}, "spec": {"containers": []}},
        ],
        "data": {"password": "aHVudGVyMg=="}
    })
}

#[test]
fn fields_range_and_literals() {
    let v = pods();
    assert_eq!(render("{{.kind}}", &v).unwrap(), "List");
    assert_eq!(
        render("{{range .items}}{{.metadata.name}}{{\"\\n\"}}{{end}}", &v).unwrap(),
        "a\nb\n"
    );
    assert_eq!(
        render("{{range .items}}{{.metadata.name}}:{{range .spec.containers}} {{.image}}{{end}};{{end}}", &v).unwrap(),
        "a: busybox nginx;b:;"
    );
    assert_eq!(
        render(
            "{{range $i, $p := .items}}{{$i}}={{$p.metadata.name}} {{end}}",
            &v
        )
        .unwrap(),
        "0=a 1=b "
    );
    // Parenthesized pipelines are not in the subset.
    assert!(render(
        "{{range $k, $v := (index .items 0).metadata.labels}}{{end}}",
        &v
    )
    .is_err());
    assert_eq!(
        render("{{range .items}}{{else}}none{{end}}", &json!({"items": []})).unwrap(),
        "none"
    );
    assert_eq!(render("{{with $x := 1}}{{end}}x", &v).unwrap(), "x");
}

#[test]
fn index_missing_keys_and_values_as_go_prints_them() {
    let v = pods();
    let first = &v["items"][0];
    assert_eq!(
        render("{{index .metadata.labels \"app\"}}", first).unwrap(),
        "web"
    );
    assert_eq!(
        render("{{index .metadata.labels \"nope\"}}", first).unwrap(),
        "<no value>"
    );
    assert_eq!(
        render("{{.metadata.missing}}", first).unwrap(),
        "<no value>"
    );
    assert_eq!(
        render("{{.metadata.labels}}", first).unwrap(),
        "map[app:web tier:front]"
    );
    assert_eq!(
        render("{{range .spec.containers}}{{.name}} {{end}}", first).unwrap(),
        "c1 c2 "
    );
    assert_eq!(render("{{len .spec.containers}}", first).unwrap(), "2");
    assert_eq!(
        render("{{.data.password | base64decode}}", &v).unwrap(),
        "hunter2"
    );
    assert_eq!(
        render("{{printf \"%s-%d\" .kind 3}}", &v).unwrap(),
        "List-3"
    );
}

#[test]
fn conditions_and_trimming() {
    let v = pods();
    let t = "{{range .items}}{{if eq .status.phase \"Running\"}}{{.metadata.name}} up{{else}}{{.metadata.name}} down{{end}}\n{{end}}";
    assert_eq!(render(t, &v).unwrap(), "a up\nb down\n");
    let t = "{{range .items -}}\n  {{ .metadata.name }}\n{{- end}}";
    assert_eq!(render(t, &v).unwrap(), "ab");
    assert_eq!(
        render("{{if .nope}}x{{else if .kind}}k{{end}}", &v).unwrap(),
        "k"
    );
    assert_eq!(render("{{/* note */}}x", &v).unwrap(), "x");
    assert_eq!(
        render("{{if exists . \"data\" \"password\"}}yes{{end}}", &v).unwrap(),
        "yes"
    );
}

#[test]
fn errors() {
    let v = pods();
    assert_eq!(
        render("{{.kind", &v).unwrap_err().to_string(),
        "template: output:1: unclosed action"
    );
    assert!(render("{{range .items}}", &v).is_err());
    assert!(render("{{nosuch .x}}", &v).is_err());
    assert!(render("{{end}}", &v).is_err());
}
