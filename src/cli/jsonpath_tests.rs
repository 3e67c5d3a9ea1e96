use super::*;
use serde_json::json;

fn list() -> Value {
    json!({
        "kind": "List",
        "items": [
            {"metadata": {"name": "a", "labels": {"app": "web", "app.kubernetes.io/name": "x"}},
             "status": {"phase": "Running", "restarts": 2}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending", "restarts": 0}},
            {"metadata": {"name": "c", "labels": {"app": "db"}}, "status": {"phase": "Running", "restarts": 5}},
        ]
    })
}

#[test]
fn fields_indexes_wildcards_and_literals() {
    let v = json!({
        "status": {"podIP": "10.88.0.2", "containerStatuses": [{"restartCount": 2}, {"restartCount": 0}]},
        "items": [{"n": "a"}, {"n": "b"}]
    });
    assert_eq!(render("{.status.podIP}", &v).unwrap(), "10.88.0.2");
    assert_eq!(
        render("ip={.status.podIP}{\"\\n\"}", &v).unwrap(),
        "ip=10.88.0.2\n"
    );
    assert_eq!(
        render("{.status.containerStatuses[0].restartCount}", &v).unwrap(),
        "2"
    );
    assert_eq!(render("{.items[*].n}", &v).unwrap(), "a b");
    assert_eq!(render("{.items[-1].n}", &v).unwrap(), "b");
    assert_eq!(render("{$.items[0].n}", &v).unwrap(), "a");
    assert_eq!(render("{.missing}", &v).unwrap(), "");
    assert_eq!(render("{.missing.deeper[0]}", &v).unwrap(), "");
    assert!(render("{.status", &v).is_err());
    // Text outside actions is literal, as in client-go.
    assert_eq!(render("a\\nb", &v).unwrap(), "a\\nb");
}

#[test]
fn whole_objects_print_as_compact_json() {
    let v = json!({"b": 1, "a": {"x": "<y>"}, "l": [1, "two"]});
    assert_eq!(
        render("{@}", &v).unwrap(),
        r#"{"a":{"x":"\u003cy\u003e"},"b":1,"l":[1,"two"]}"#
    );
    assert_eq!(render("{.l}", &v).unwrap(), r#"[1,"two"]"#);
    assert_eq!(render("{.a}", &v).unwrap(), r#"{"x":"\u003cy\u003e"}"#);
    assert_eq!(render("{$}", &json!("s")).unwrap(), "s");
}

#[test]
fn range_and_filters() {
    let v = list();
    assert_eq!(
        render(
            "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
            &v
        )
        .unwrap(),
        "a\tRunning\nb\tPending\nc\tRunning\n"
    );
    assert_eq!(
        render("{range .items[*]}[{.metadata.name}]{end} done", &v).unwrap(),
        "[a][b][c] done"
    );
    assert_eq!(
        render("{.items[?(@.status.phase==\"Running\")].metadata.name}", &v).unwrap(),
        "a c"
    );
    assert_eq!(
        render("{.items[?(@.status.phase!='Running')].metadata.name}", &v).unwrap(),
        "b"
    );
    assert_eq!(
        render("{.items[?(@.status.restarts>1)].metadata.name}", &v).unwrap(),
        "a c"
    );
    assert_eq!(
        render("{.items[?(@.status.restarts<=2)].metadata.name}", &v).unwrap(),
        "a b"
    );
    assert_eq!(
        render("{.items[?(@.metadata.labels)].metadata.name}", &v).unwrap(),
        "a c"
    );
    assert_eq!(
        render(
            "{.items[?(@.metadata.labels.app==\"db\")].metadata.name}",
            &v
        )
        .unwrap(),
        "c"
    );
    assert_eq!(
        render(
            "{range .items[?(@.status.phase==\"Pending\")]}{.metadata.name}{end}",
            &v
        )
        .unwrap(),
        "b"
    );
    assert_eq!(
        render("{range .items[5:]}{.x}{end}", &v).unwrap_err(),
        JsonPathError::Exec("array index out of bounds: index 5, length 3".into())
    );
}

#[test]
fn slices_unions_keys_and_recursion() {
    let v = list();
    assert_eq!(render("{.items[0:2].metadata.name}", &v).unwrap(), "a b");
    assert_eq!(render("{.items[::2].metadata.name}", &v).unwrap(), "a c");
    assert_eq!(render("{.items[0,2].metadata.name}", &v).unwrap(), "a c");
    assert_eq!(render("{.items[0].metadata['name']}", &v).unwrap(), "a");
    assert_eq!(
        render("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", &v).unwrap(),
        "x"
    );
    assert_eq!(
        render(
            "{.items[0].metadata.labels['app\\.kubernetes\\.io/name']}",
            &v
        )
        .unwrap(),
        "x"
    );
    assert_eq!(render("{.items[0]['metadata.name']}", &v).unwrap(), "a");
    assert_eq!(render("{..name}", &v).unwrap(), "a b c");
    assert_eq!(
        render("{.items[5].x}", &v).unwrap_err().to_string(),
        "array index out of bounds: index 5, length 3"
    );
    assert_eq!(
        render("{.items[0].metadata[0]}", &v)
            .unwrap_err()
            .to_string(),
        "map[string]interface {} is not array or slice"
    );
    assert_eq!(
        render("{end}", &v).unwrap_err().to_string(),
        "not in range, nothing to end"
    );
    assert_eq!(
        render("{metadata}", &v).unwrap_err().to_string(),
        "unrecognized identifier metadata"
    );
}

#[test]
fn numbers_print_as_go_prints_them() {
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(123456.0), "123456");
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(1234567.0), "1.234567e+06");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(to_text(&json!(7)), "7");
    assert_eq!(to_text(&json!(true)), "true");
}

#[test]
fn relaxed_expressions() {
    for e in [
        "metadata.name",
        ".metadata.name",
        "{metadata.name}",
        "{.metadata.name}",
    ] {
        assert_eq!(relaxed(e).unwrap(), "{.metadata.name}", "{e}");
    }
    assert!(relaxed("{.a}{.b}").is_err());
    let t = parse(&relaxed(".items[*].n").unwrap()).unwrap();
    assert_eq!(
        t.find(&json!({"items": [{"n": 1}]})).unwrap(),
        vec![json!(1)]
    );
}
