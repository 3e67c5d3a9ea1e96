//! kubectl's JSONPath templates (`-o jsonpath=`, `--sort-by`, custom columns, `wait
//! --for=jsonpath`), after client-go's util/jsonpath: literal text around `{...}` actions;
//! fields (`.a.b`, `['a.b']`, `a\.b`), `@`/`$`, `..` recursive descent, `*` wildcards, indexes
//! and slices (`[0]`, `[-1]`, `[1:3]`, `[::2]`), unions (`[0,2]`, `['a','b']`), filters
//! (`[?(@.x=="y")]`, `<`, `>`, `<=`, `>=`, `!=`, `[?(@.x)]`), `{range ...}...{end}` and
//! quoted literals (`{"\n"}`). Missing keys give nothing (kubectl's
//! `--allow-missing-template-keys=true`); maps and lists print as compact JSON, other values as
//! Go's `fmt.Print` does.

use serde_json::Value;

/// Why a template cannot be parsed or run; the messages are client-go's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, JsonPathError>;

fn parse_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(JsonPathError::Parse(msg.into()))
}

fn exec_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(JsonPathError::Exec(msg.into()))
}

/// One element of a template.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Text(String),
    Expr(Vec<Step>),
    /// `{range EXPR}` BODY `{end}`: the body once per value, relative to it.
    Range(Vec<Step>, Vec<Item>),
}

/// One step of an expression, applied to every current value.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Recursive,
    Wildcard,
    Slice(Slice),
    Union(Vec<Vec<Step>>),
    Filter(Box<Filter>),
    /// A literal in a filter: `'x'`, `3`, `1.5`, `true`.
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    /// `[i]`: the end is derived from the start.
    single: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// None: `[?(@.x)]`, the element has the field.
    op: Option<&'static str>,
    right: Vec<Step>,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    items: Vec<Item>,
}

/// Parses `template`.
pub fn parse(template: &str) -> Result<Template> {
    let mut stack: Vec<(Vec<Step>, Vec<Item>)> = Vec::new();
    let mut items = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            items.push(Item::Text(rest[..open].to_string()));
        }
        let Some(len) = action_len(&rest[open..]) else {
            return parse_err("unclosed action");
        };
        let action = rest[open + 1..open + len].trim();
        rest = &rest[open + len + 1..];
        if let Some(lit) = quoted(action) {
            items.push(Item::Text(lit?));
        } else if action == "end" {
            let Some((expr, outer)) = stack.pop() else {
                return exec_err("not in range, nothing to end");
            };
            let body = std::mem::replace(&mut items, outer);
            items.push(Item::Range(expr, body));
        } else if let Some(expr) = action.strip_prefix("range").filter(|r| r.starts_with(' ')) {
            let expr = parse_expr(expr.trim())?;
            stack.push((expr, std::mem::take(&mut items)));
        } else {
            items.push(Item::Expr(parse_expr(action)?));
        }
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    if !stack.is_empty() {
        return parse_err("unclosed range");
    }
    Ok(Template { items })
}

/// The length up to the `}` closing the action at the start of `s`, quotes and brackets
/// skipped.
fn action_len(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut depth = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth -= 1,
            (None, '}') if depth <= 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// A `"..."` literal, unescaped as Go's strconv.Unquote does.
fn quoted(s: &str) -> Option<Result<String>> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    Some(
        serde_json::from_str::<String>(&format!("\"{inner}\""))
            .or_else(|_| parse_err(format!("invalid syntax {s}"))),
    )
}

fn is_terminator(c: char) -> bool {
    matches!(c, ' ' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
}

/// Parses the steps of one expression (`.items[*].metadata.name`).
fn parse_expr(s: &str) -> Result<Vec<Step>> {
    let chars: Vec<char> = s.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            ' ' | '@' | '$' => i += 1,
            '.' if chars.get(i + 1) == Some(&'.') => {
                steps.push(Step::Recursive);
                i += 1;
            }
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && !is_terminator(chars[j]) {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                let j = j.min(chars.len());
                let name: String = chars[start..j].iter().filter(|c| **c != '\\').collect();
                match name.as_str() {
                    "" => {}
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
                i = j;
            }
            '[' => {
                let rest: String = chars[i..].iter().collect();
                let Some(len) = bracket_len(&rest) else {
                    return parse_err("unterminated array");
                };
                steps.push(parse_bracket(&rest[1..len])?);
                i += rest[..=len].chars().count();
            }
            '\'' | '"' => {
                let rest: String = chars[i..].iter().collect();
                let end = rest[1..].find(chars[i]).map(|e| e + 1);
                let Some(end) = end else {
                    return parse_err("unterminated quoted string");
                };
                steps.push(Step::Literal(Value::String(rest[1..end].to_string())));
                i += rest[..=end].chars().count();
            }
            c if c.is_ascii_digit() || c == '-' => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | '+'))
                    .collect();
                i += word.chars().count();
                let number = word
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| word.parse::<f64>().map(Value::from));
                match number {
                    Ok(n) => steps.push(Step::Literal(n)),
                    Err(_) => return parse_err(format!("cannot parse number {word}")),
                }
            }
            _ => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| !is_terminator(**c))
                    .collect();
                i += word.chars().count();
                match word.as_str() {
                    "true" => steps.push(Step::Literal(Value::Bool(true))),
                    "false" => steps.push(Step::Literal(Value::Bool(false))),
                    other => return exec_err(format!("unrecognized identifier {other}")),
                }
            }
        }
    }
    Ok(steps)
}

/// The index of the `]` closing the `[` at the start of `s` (quotes and parentheses skipped).
fn bracket_len(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut parens = 0;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => parens += 1,
            (None, ')') => parens -= 1,
            (None, ']') if parens <= 0 => return Some(i),
            (None, '\n') => return None,
            _ => {}
        }
    }
    None
}

/// The text between `[` and `]`: a filter, a union, a quoted key or a slice.
fn parse_bracket(text: &str) -> Result<Step> {
    if let Some(filter) = text.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter);
    }
    let text = if text == "*" { ":" } else { text };
    let parts = split_outside_quotes(text, ',');
    if parts.len() > 1 {
        let mut union = Vec::new();
        for part in parts {
            union.push(vec![parse_bracket(part.trim())?]);
        }
        return Ok(Step::Union(union));
    }
    if let Some(key) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .filter(|k| !k.contains('\''))
    {
        // client-go parses `['k']` as the action `.k`: dots split fields unless escaped.
        return Ok(Step::Union(vec![parse_expr(&format!(".{key}"))?]));
    }
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() > 3 {
        return parse_err(format!("invalid array index {text}"));
    }
    let number = |s: &str| -> Result<Option<i64>> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .or_else(|_| parse_err(format!("invalid array index {text}")))
    };
    Ok(Step::Slice(Slice {
        start: number(fields[0])?,
        end: fields.get(1).map(|s| number(s)).transpose()?.flatten(),
        step: fields.get(2).map(|s| number(s)).transpose()?.flatten(),
        single: fields.len() == 1,
    }))
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c == sep => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

const FILTER_OPS: &[&str] = &["==", "!=", "<=", ">=", "<", ">"];

fn parse_filter(text: &str) -> Result<Step> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, _) => {
                if let Some(op) = FILTER_OPS.iter().find(|op| text[i..].starts_with(**op)) {
                    return Ok(Step::Filter(Box::new(Filter {
                        left: parse_expr(text[..i].trim())?,
                        op: Some(op),
                        right: parse_expr(text[i + op.len()..].trim())?,
                    })));
                }
            }
        }
    }
    Ok(Step::Filter(Box::new(Filter {
        left: parse_expr(text.trim())?,
        op: None,
        right: Vec::new(),
    })))
}

/// A value as kubectl's JSONPath printer writes it: maps and lists as compact JSON (Go's
/// json.Marshal, HTML characters escaped), strings raw, numbers and bools as Go prints them.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => match n.as_i64().or(n.as_u64().map(|u| u as i64)) {
            Some(i) if !n.is_f64() => i.to_string(),
            _ => go_float(n.as_f64().unwrap_or_default()),
        },
        Value::Bool(b) => b.to_string(),
        other => go_json(other),
    }
}

/// Go's json.Marshal: compact, keys sorted, `<`, `>`, `&` escaped.
pub fn go_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go's `%v` of a float64 (strconv 'g', shortest: an exponent below -4 or from 6 on):
/// `1.5`, `123456`, `1e+06`, `1.234567e+06`.
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        }
        .to_string();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

impl Template {
    /// Runs the template on `root`.
    pub fn execute(&self, root: &Value) -> Result<String> {
        let mut out = String::new();
        run_items(&self.items, root, &mut out)?;
        Ok(out)
    }

    /// Each printed group of values (`-o jsonpath-as-json`: a JSON array each).
    pub fn groups(&self, root: &Value) -> Result<Vec<Vec<Value>>> {
        let mut out = Vec::new();
        collect_groups(&self.items, root, &mut out)?;
        Ok(out)
    }

    /// The values the template's first expression selects (sorting and custom columns).
    pub fn find(&self, root: &Value) -> Result<Vec<Value>> {
        for item in &self.items {
            if let Item::Expr(steps) = item {
                return eval(steps, vec![root.clone()]);
            }
        }
        Ok(Vec::new())
    }
}

fn collect_groups(items: &[Item], current: &Value, out: &mut Vec<Vec<Value>>) -> Result<()> {
    for item in items {
        match item {
            Item::Text(t) => out.push(vec![Value::String(t.clone())]),
            Item::Expr(steps) => out.push(eval(steps, vec![current.clone()])?),
            Item::Range(steps, body) => {
                for v in eval(steps, vec![current.clone()])? {
                    collect_groups(body, &v, out)?;
                }
            }
        }
    }
    Ok(())
}

fn run_items(items: &[Item], current: &Value, out: &mut String) -> Result<()> {
    for item in items {
        match item {
            Item::Text(t) => out.push_str(t),
            Item::Expr(steps) => {
                let values = eval(steps, vec![current.clone()])?;
                let texts: Vec<String> = values.iter().map(to_text).collect();
                out.push_str(&texts.join(" "));
            }
            Item::Range(steps, body) => {
                for v in eval(steps, vec![current.clone()])? {
                    run_items(body, &v, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Parses and runs `template` on `root`.
pub fn render(template: &str, root: &Value) -> Result<String> {
    parse(template)?.execute(root)
}

/// kubectl's RelaxedJSONPathExpression: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean
/// `{.a.b}` (custom columns, `--sort-by`).
pub fn relaxed(expr: &str) -> std::result::Result<String, String> {
    if expr.is_empty() {
        return Ok(String::new());
    }
    let inner = expr
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(expr);
    let inner = inner.strip_prefix('.').unwrap_or(inner);
    if inner.is_empty() || inner.contains(['{', '}']) {
        return Err("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'".to_string());
    }
    Ok(format!("{{.{inner}}}"))
}

#[path = "jsonpath_eval.rs"]
mod evaluate;
use evaluate::eval;

#[cfg(test)]
#[path = "jsonpath_tests.rs"]
mod tests;
