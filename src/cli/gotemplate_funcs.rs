//! The functions of the template subset: text/template's builtins (funcs.go: `index`, `len`,
//! `printf`, `print`, `println`, comparisons, `not`, `and`, `or`) and kubectl's additions
//! (cli-runtime printers/template.go: `base64decode`, `exists`).

use base64::Engine;
use serde_json::Value;

use super::{exec_err, go_print, truthy, Result};

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => exec_err("incompatible types for comparison"),
    }
}

pub(super) fn call(f: &str, args: &[Value]) -> Result<Value> {
    use std::cmp::Ordering::*;
    let two = || match args {
        [a, b, ..] => Ok((a, b)),
        _ => exec_err(format!(
            "wrong number of args for {f}: want 2 got {}",
            args.len()
        )),
    };
    Ok(match f {
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return exec_err("wrong number of args for index: want at least 1 got 0");
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Object(m), Value::String(k)) => {
                        m.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(i)) => {
                        match i.as_u64().and_then(|i| a.get(i as usize)) {
                            Some(x) => x.clone(),
                            None => {
                                return exec_err(format!(
                                    "error calling index: index out of range: {i}"
                                ))
                            }
                        }
                    }
                    (Value::Null, _) => Value::Null,
                    _ => return exec_err("error calling index: cannot index"),
                };
            }
            v
        }
        "len" => match args.first() {
            Some(Value::Array(a)) => Value::from(a.len()),
            Some(Value::Object(m)) => Value::from(m.len()),
            Some(Value::String(s)) => Value::from(s.len()),
            _ => return exec_err("error calling len: len of type"),
        },
        "printf" => {
            let Some((Value::String(format), rest)) = args.split_first() else {
                return exec_err("wrong type for value; expected string");
            };
            Value::String(sprintf(format, rest))
        }
        "print" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().concat()),
        "println" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().join(" ") + "\n"),
        "eq" => Value::Bool(compare(two()?.0, two()?.1)? == Equal),
        "ne" => Value::Bool(compare(two()?.0, two()?.1)? != Equal),
        "lt" => Value::Bool(compare(two()?.0, two()?.1)? == Less),
        "le" => Value::Bool(compare(two()?.0, two()?.1)? != Greater),
        "gt" => Value::Bool(compare(two()?.0, two()?.1)? == Greater),
        "ge" => Value::Bool(compare(two()?.0, two()?.1)? != Less),
        "not" => Value::Bool(!args.first().is_some_and(truthy)),
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "base64decode" => {
            let Some(Value::String(s)) = args.first() else {
                return exec_err("error calling base64decode: expected a string");
            };
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => return exec_err(format!("error calling base64decode: {e}")),
            }
        }
        // exists ITEM KEY...: the keys lead somewhere (cli-runtime printers/template.go).
        _ => {
            let Some((first, keys)) = args.split_first() else {
                return Ok(Value::Bool(false));
            };
            let mut v = first;
            for k in keys {
                let next = match (v, k) {
                    (Value::Object(m), Value::String(k)) => m.get(k),
                    (Value::Array(a), Value::Number(i)) => {
                        i.as_u64().and_then(|i| a.get(i as usize))
                    }
                    _ => None,
                };
                match next {
                    Some(n) => v = n,
                    None => return Ok(Value::Bool(false)),
                }
            }
            Value::Bool(!v.is_null())
        }
    })
}

/// Go's Sprintf for the verbs templates use: `%s`, `%d`, `%v`, `%q`, `%%`.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb) => match (verb, args.next()) {
                ('q', Some(Value::String(s))) => out.push_str(&crate::manifest::go_quote(s)),
                (_, Some(v)) => out.push_str(&go_print(v)),
                (_, None) => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}
