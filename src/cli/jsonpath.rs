//! A small subset of kubectl's JSONPath templates for `-o jsonpath=...`: literal text around
//! `{.field.sub[0].x}` expressions, `{.items[*].x}` wildcards and `{"\n"}` style literals.

use anyhow::{bail, Result};
use serde_json::Value;

/// Renders `template` against `root`.
pub fn render(template: &str, root: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&unescape(&rest[..open]));
        let Some(close) = rest[open..].find('}') else {
            bail!("unclosed action in jsonpath template {template:?}");
        };
        let expr = rest[open + 1..open + close].trim();
        rest = &rest[open + close + 1..];
        if let Some(lit) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
            out.push_str(&unescape(lit));
            continue;
        }
        let values = eval(expr, root)?;
        let texts: Vec<String> = values.iter().map(text).collect();
        out.push_str(&texts.join(" "));
    }
    out.push_str(&unescape(rest));
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Evaluates `.a.b[0].c` / `.items[*].x` to the matching values.
fn eval(expr: &str, root: &Value) -> Result<Vec<Value>> {
    let expr = expr.strip_prefix('$').unwrap_or(expr);
    let mut current = vec![root.clone()];
    for segment in expr.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.find('[') {
            Some(i) => {
                let Some(idx) = segment[i + 1..].strip_suffix(']') else {
                    bail!("bad index in jsonpath segment {segment:?}");
                };
                (&segment[..i], Some(idx))
            }
            None => (segment, None),
        };
        let mut next = Vec::new();
        for v in current {
            let v = if name.is_empty() {
                Some(v)
            } else {
                v.get(name).cloned()
            };
            let Some(v) = v else { continue };
            match index {
                None => next.push(v),
                Some("*") => {
                    if let Value::Array(items) = v {
                        next.extend(items);
                    }
                }
                Some(i) => {
                    let i: usize = i
                        .parse()
                        .map_err(|_| anyhow::anyhow!("bad index {i:?} in jsonpath"))?;
                    if let Some(item) = v.get(i) {
                        next.push(item.clone());
                    }
                }
            }
        }
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_indexes_wildcards_and_literals() {
        let v = serde_json::json!({
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
        assert_eq!(render("{.missing}", &v).unwrap(), "");
        assert!(render("{.status", &v).is_err());
    }
}
