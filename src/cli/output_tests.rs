use super::*;

#[test]
fn yaml_quotes_as_go() {
    let value = serde_json::json!({
        "data": {"a": "1", "b": "true", "c": "", "e": "x: y", "f": "it's",
                 "conf": "when: 2024-01-01\nn: 1\n", "3": "x"},
        "metadata": {"creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "7"},
        "spec": {"replicas": 1, "ok": true, "list": ["1", "a"]},
    });
    let text = Printer::Yaml.render(vec![value], true, false).unwrap();
    assert_eq!(
            text,
            "data:\n  \"3\": x\n  a: \"1\"\n  b: \"true\"\n  c: \"\"\n  conf: |\n    when: 2024-01-01\n    n: 1\n  e: 'x: y'\n  f: it's\nmetadata:\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n  resourceVersion: \"7\"\nspec:\n  list:\n  - \"1\"\n  - a\n  ok: true\n  replicas: 1\n"
        );
}
