//! Evaluation of parsed JSONPath steps, after client-go's jsonpath.go (evalField,
//! evalWildcard, evalRecursive, evalArray, evalUnion, evalFilter) and its messages.

use serde_json::Value;

use super::{exec_err, to_text, Filter, Result, Slice, Step};

/// The values `steps` select from `input`.
pub(super) fn eval(steps: &[Step], input: Vec<Value>) -> Result<Vec<Value>> {
    let mut current = input;
    for step in steps {
        current = eval_step(step, current)?;
    }
    Ok(current)
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Object(m) => m.values().cloned().collect(),
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    }
}

fn eval_step(step: &Step, input: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    match step {
        Step::Field(name) => {
            for v in &input {
                if let Some(f) = v.get(name.as_str()) {
                    out.push(f.clone());
                }
            }
        }
        Step::Wildcard => input.iter().for_each(|v| out.extend(children(v))),
        Step::Recursive => {
            for v in input {
                let kids = children(&v);
                if !kids.is_empty() {
                    out.push(v);
                    out.extend(eval_step(step, kids)?);
                }
            }
        }
        Step::Slice(s) => {
            for v in input {
                match v {
                    Value::Null => {}
                    Value::Array(items) => out.extend(slice(&items, *s)?),
                    other => return exec_err(format!("{} is not array or slice", go_type(&other))),
                }
            }
        }
        Step::Union(parts) => {
            for part in parts {
                out.extend(eval(part, input.clone())?);
            }
        }
        Step::Filter(f) => {
            for v in input {
                let Value::Array(items) = v else {
                    return exec_err(format!(
                        "{} is not array or slice and cannot be filtered",
                        to_text(&v)
                    ));
                };
                for item in items {
                    if filter_passes(f, &item)? {
                        out.push(item);
                    }
                }
            }
        }
        Step::Literal(l) => out = input.iter().map(|_| l.clone()).collect(),
    }
    Ok(out)
}

fn slice(items: &[Value], s: Slice) -> Result<Vec<Value>> {
    let len = items.len() as i64;
    let mut start = s.start.unwrap_or(0);
    if start < 0 {
        start += len;
    }
    let mut end = match (s.end, s.single) {
        (_, true) => start + 1,
        (Some(e), _) => e,
        (None, _) => len,
    };
    if end < 0 {
        end += len;
    }
    if end == start {
        return Ok(Vec::new());
    }
    if start >= len || start < 0 {
        return exec_err(format!(
            "array index out of bounds: index {start}, length {len}"
        ));
    }
    if end > len || end < 0 {
        return exec_err(format!(
            "array index out of bounds: index {}, length {len}",
            end - 1
        ));
    }
    if start > end {
        return exec_err(format!(
            "starting index {start} is greater than ending index {end}"
        ));
    }
    let step = s.step.unwrap_or(1);
    if step <= 0 {
        return exec_err("step must be > 0");
    }
    Ok(items[start as usize..end as usize]
        .iter()
        .step_by(step as usize)
        .cloned()
        .collect())
}

fn filter_passes(f: &Filter, item: &Value) -> Result<bool> {
    let lefts = eval(&f.left, vec![item.clone()])?;
    let Some(op) = f.op else {
        return Ok(!lefts.is_empty());
    };
    let left = match lefts.as_slice() {
        [] => return Ok(false),
        [one] => one,
        _ => return exec_err("can only compare one element at a time"),
    };
    let rights = eval(&f.right, vec![item.clone()])?;
    let [right] = rights.as_slice() else {
        return exec_err("can only compare one element at a time");
    };
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, "==" | "!=") => Some(a.cmp(b)),
        _ => return exec_err("incompatible types for comparison"),
    };
    let Some(order) = order else {
        return Ok(false);
    };
    use std::cmp::Ordering::*;
    Ok(match op {
        "==" => order == Equal,
        "!=" => order != Equal,
        "<" => order == Less,
        ">" => order == Greater,
        "<=" => order != Greater,
        _ => order != Less,
    })
}

/// Go's name of a decoded JSON value's type, for messages.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        _ => "int64",
    }
}
