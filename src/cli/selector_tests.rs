use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
    parse_labels(selector).unwrap().matches(&labels(pairs))
}

#[test]
fn equality_and_set_based_requirements() {
    let web = [("app", "web"), ("tier", "front")];
    assert!(selects("", &web));
    assert!(selects("app=web", &web));
    assert!(selects("app==web", &web));
    assert!(!selects("app!=web", &web));
    assert!(selects("app!=db", &web));
    assert!(selects("app!=db", &[]), "!= matches a missing key");
    assert!(selects("app in (db, web)", &web));
    assert!(!selects("app notin (db,web)", &web));
    assert!(selects("app notin (db)", &[]));
    assert!(selects("tier", &web));
    assert!(!selects("!tier", &web));
    assert!(selects("!other,app=web", &web));
    assert!(selects("  app = web , tier in (front) ", &web));
    assert!(!selects("app=web,tier=back", &web));
    assert!(
        selects("app in (in, notin, web)", &web),
        "keywords as values"
    );
    assert!(selects("n>3", &[("n", "4")]));
    assert!(!selects("n<3", &[("n", "4")]));
    assert!(!selects("n>3", &[("n", "x")]));
    assert!(selects("app=", &[("app", "")]));
    assert!(selects("app in ()", &[("app", "")]));
    assert!(selects("app in (,web)", &[("app", "")]));
}

#[test]
fn parse_errors_are_the_api_servers() {
    let err = |s: &str| parse_labels(s).unwrap_err();
    assert_eq!(
        err("app in web"),
        "unable to parse requirement: found 'web' expected: '('"
    );
    assert_eq!(
        err("app in (web"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(err("app=web,"), "found '', expected: identifier after ','");
    assert_eq!(
        err("app=web tier"),
        "found 'tier', expected: ',' or 'end of string'"
    );
    assert_eq!(
        err("=web"),
        "found '=', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        err("app web"),
        "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(
        err("!app=web"),
        "found '=', expected: ',' or 'end of string'"
    );
    assert_eq!(
        err("-x=1"),
        "unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    assert_eq!(
        err("app=-x"),
        "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(
        err("n>x"),
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
    assert!(err("a/b/c").contains("a qualified name must consist of"));
    assert!(err("Bad_/x").starts_with("unable to parse requirement: <nil>: Invalid value: \"Bad_/x\": prefix part a lowercase RFC 1123 subdomain"));
}

#[test]
fn field_selectors_per_kind() {
    let f = parse_fields("status.phase=Running,metadata.name!=b").unwrap();
    let f = f.for_kind(Kind::Pod).unwrap();
    let fields = |phase: &str, name: &str| {
        BTreeMap::from([
            ("status.phase".to_string(), phase.to_string()),
            ("metadata.name".to_string(), name.to_string()),
        ])
    };
    assert!(f.matches(&fields("Running", "a")));
    assert!(!f.matches(&fields("Running", "b")));
    assert!(!f.matches(&fields("Pending", "a")));
    assert_eq!(
        parse_fields("spec.foo=1")
            .unwrap()
            .for_kind(Kind::Pod)
            .unwrap_err(),
        "field label not supported: spec.foo"
    );
    assert_eq!(
        parse_fields("data=1")
            .unwrap()
            .for_kind(Kind::ConfigMap)
            .unwrap_err(),
        "\"data\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    assert!(parse_fields("type=Opaque")
        .unwrap()
        .for_kind(Kind::Secret)
        .is_ok());
    assert_eq!(
        parse_fields("a").unwrap_err(),
        "invalid selector: 'a'; can't understand 'a'"
    );
    assert_eq!(
        parse_fields("a=b,c").unwrap_err(),
        "invalid selector: 'a=b,c'; can't understand 'c'"
    );
    let host = parse_fields("spec.host=n1")
        .unwrap()
        .for_kind(Kind::Pod)
        .unwrap();
    assert!(host.matches(&BTreeMap::from([(
        "spec.nodeName".to_string(),
        "n1".to_string()
    )])));
}

#[test]
fn selectors_on_objects_and_the_bad_request_line() {
    let pod = serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}},
        "spec": {"restartPolicy": "Always"},
        "status": {"phase": "Running", "podIP": "10.88.0.2"},
    });
    let s = Selectors {
        labels: Some("run=web".into()),
        fields: Some(
            "spec.nodeName=host1,status.podIP=10.88.0.2,spec.schedulerName=default-scheduler,spec.serviceAccountName=default,spec.hostNetwork=false".into(),
        ),
    };
    assert!(s.for_kind(Kind::Pod, "host1").unwrap().matches(&pod));
    assert!(!s.for_kind(Kind::Pod, "other").unwrap().matches(&pod));
    let bad = Selectors {
        labels: None,
        fields: Some("spec.foo=bar".into()),
    };
    assert_eq!(
        bad.for_kind(Kind::Pod, "h").err().unwrap(),
        "Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label selector \"\", field selector \"spec.foo=bar\": field label not supported: spec.foo"
    );
}
