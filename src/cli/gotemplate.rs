//! A subset of Go's text/template for `--template` / `-o go-template=` (kubectl's
//! GoTemplatePrinter, cli-runtime printers/template.go), evaluated on the object as JSON:
//!
//! - text, `{{.a.b}}`, `{{.}}`, `{{$}}`, `{{$var.a}}`, string, number and bool literals,
//!   `{{- ` / ` -}}` whitespace trimming, `{{/* comments */}}`;
//! - `{{range PIPELINE}}...{{else}}...{{end}}` over lists and maps (keys in order), with
//!   `$v :=` or `$k, $v :=`; `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`; `{{with}}`;
//!   `{{$x := PIPELINE}}`;
//! - pipelines with `|` and the functions `index`, `len`, `printf` (`%s %d %v %q %%`), `print`,
//!   `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `not`, `and`, `or`, and kubectl's
//!   `base64decode` and `exists`.
//!
//! Values print as Go's fmt prints decoded JSON: `map[k:v]`, `[a b]`, and `<no value>` for a
//! missing key (kubectl allows missing keys).

use std::collections::BTreeMap;

use serde_json::Value;

use super::jsonpath::go_float;

/// What Go prints for a missing map key.
const NO_VALUE: &str = "<no value>";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template: output:{0}")]
    Parse(String),
    #[error("template: output: executing \"output\": {0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, TemplateError>;

fn parse_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(TemplateError::Parse(msg.into()))
}

fn exec_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(TemplateError::Exec(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.a.b` (base None: the dot), `$.a`, `$x.a`.
    Field(Option<String>, Vec<String>),
    Literal(Value),
    Func(String),
}

/// Commands separated by `|`; each command's result is the last argument of the next.
type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Print {
        vars: Vec<String>,
        pipe: Pipeline,
    },
    Range {
        vars: Vec<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        other: Vec<Node>,
    },
    If {
        pipe: Pipeline,
        body: Vec<Node>,
        other: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        other: Vec<Node>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct GoTemplate {
    nodes: Vec<Node>,
}

/// Splits the text into text pieces and actions, applying trim markers.
fn lex(text: &str) -> Result<Vec<(bool, String)>> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(open) = rest.find("{{") {
        let mut before = rest[..open].to_string();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return parse_err(format!("{line}: unclosed action"));
        };
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix("- ") {
            before = before.trim_end().to_string();
            action = a;
        }
        let trim_right = action.ends_with(" -");
        if trim_right {
            action = &action[..action.len() - 2];
        }
        line += rest[..open + 2 + close].matches('\n').count();
        if !before.is_empty() {
            out.push((false, before));
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            out.push((true, action.to_string()));
        }
        rest = &after[close + 2..];
        if trim_right {
            rest = rest.trim_start();
        }
    }
    if !rest.is_empty() {
        out.push((false, rest.to_string()));
    }
    Ok(out)
}

/// Splits an action into words, keeping quoted strings whole.
fn words(action: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '`' {
            word.push(chars.next().unwrap_or(c));
            let mut escaped = false;
            loop {
                let Some(d) = chars.next() else {
                    return parse_err(": unterminated quoted string");
                };
                word.push(d);
                if escaped {
                    escaped = false;
                } else if d == '\\' && c == '"' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
        } else if c == '|' || c == ',' {
            word.push(c);
            chars.next();
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() || d == '|' || d == ',' {
                    break;
                }
                word.push(d);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

fn parse_arg(word: &str) -> Result<Arg> {
    if word.starts_with('"') {
        return serde_json::from_str::<String>(word)
            .map(|s| Arg::Literal(Value::String(s)))
            .or_else(|_| parse_err(format!(": invalid syntax {word}")));
    }
    if let Some(raw) = word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
        return Ok(Arg::Literal(Value::String(raw.to_string())));
    }
    if word.starts_with('.') || word.starts_with('$') {
        let (base, path) = match word.find('.') {
            Some(0) => (None, &word[1..]),
            Some(i) => (Some(word[..i].to_string()), &word[i + 1..]),
            None => (Some(word.to_string()), ""),
        };
        let path = path
            .split('.')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        return Ok(Arg::Field(base, path));
    }
    match word {
        "true" => return Ok(Arg::Literal(Value::Bool(true))),
        "false" => return Ok(Arg::Literal(Value::Bool(false))),
        "nil" => return Ok(Arg::Literal(Value::Null)),
        _ => {}
    }
    if let Ok(i) = word.parse::<i64>() {
        return Ok(Arg::Literal(Value::from(i)));
    }
    if let Ok(f) = word.parse::<f64>() {
        return Ok(Arg::Literal(Value::from(f)));
    }
    if FUNCTIONS.contains(&word) {
        return Ok(Arg::Func(word.to_string()));
    }
    parse_err(format!(": function {word:?} not defined"))
}

/// `[$k, $v :=] command | command ...`
fn parse_pipeline(action: &str) -> Result<(Vec<String>, Pipeline)> {
    let mut words = words(action)?;
    let mut vars = Vec::new();
    if let Some(pos) = words.iter().position(|w| w == ":=" || w == "=") {
        vars = words[..pos]
            .iter()
            .filter(|w| *w != ",")
            .map(|w| w.trim_end_matches(',').to_string())
            .collect();
        words.drain(..=pos);
    }
    let mut pipe = vec![Vec::new()];
    for w in words {
        if w == "|" {
            pipe.push(Vec::new());
        } else if let Some(cmd) = pipe.last_mut() {
            cmd.push(parse_arg(&w)?);
        }
    }
    if pipe.iter().any(Vec::is_empty) {
        return parse_err(": missing value for command");
    }
    Ok((vars, pipe))
}

/// Builds the tree until `{{end}}` (or `{{else}}`, returned as the stop word).
fn build(tokens: &[(bool, String)], pos: &mut usize, nested: bool) -> Result<(Vec<Node>, String)> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let (is_action, text) = &tokens[*pos];
        *pos += 1;
        if !is_action {
            nodes.push(Node::Text(text.clone()));
            continue;
        }
        let (keyword, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        match keyword {
            "end" | "else" if nested => return Ok((nodes, text.clone())),
            "end" | "else" => return parse_err(format!(": unexpected {{{{{keyword}}}}}")),
            "range" | "if" | "with" => {
                let (vars, pipe) = parse_pipeline(rest)?;
                let (body, stop) = build(tokens, pos, true)?;
                let other = else_branch(tokens, pos, &stop)?;
                nodes.push(match keyword {
                    "range" => Node::Range {
                        vars,
                        pipe,
                        body,
                        other,
                    },
                    "if" => Node::If { pipe, body, other },
                    _ => Node::With { pipe, body, other },
                });
            }
            _ => {
                let (vars, pipe) = parse_pipeline(text)?;
                nodes.push(Node::Print { vars, pipe });
            }
        }
    }
    if nested {
        return parse_err(": unexpected EOF");
    }
    Ok((nodes, String::new()))
}

/// After a body that stopped at `stop`: the else branch (`else if` nests an If).
fn else_branch(tokens: &[(bool, String)], pos: &mut usize, stop: &str) -> Result<Vec<Node>> {
    if stop == "end" {
        return Ok(Vec::new());
    }
    if let Some(cond) = stop.strip_prefix("else if ") {
        let (_, pipe) = parse_pipeline(cond)?;
        let (body, stop) = build(tokens, pos, true)?;
        let other = else_branch(tokens, pos, &stop)?;
        return Ok(vec![Node::If { pipe, body, other }]);
    }
    let (other, stop) = build(tokens, pos, true)?;
    if stop != "end" {
        return parse_err(format!(": expected end; found {{{{{stop}}}}}"));
    }
    Ok(other)
}

/// Parses a template.
pub fn parse(text: &str) -> Result<GoTemplate> {
    let tokens = lex(text)?;
    let mut pos = 0;
    let (nodes, _) = build(&tokens, &mut pos, false)?;
    Ok(GoTemplate { nodes })
}

const FUNCTIONS: &[&str] = &[
    "index",
    "len",
    "printf",
    "print",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "not",
    "and",
    "or",
    "base64decode",
    "exists",
];

/// The state of one execution: the root (`$`) and the variables.
struct Exec<'a> {
    root: &'a Value,
    vars: BTreeMap<String, Value>,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Go's fmt of a decoded JSON value.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => NO_VALUE.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => i.to_string(),
            _ => go_float(n.as_f64().unwrap_or_default()),
        },
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

impl Exec<'_> {
    fn arg(&self, arg: &Arg, dot: &Value) -> Result<Value> {
        match arg {
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Func(f) => exec_err(format!("can't give argument to non-function {f}")),
            Arg::Field(base, path) => {
                let mut v = match base.as_deref() {
                    None => dot.clone(),
                    Some("$") => self.root.clone(),
                    Some(var) => match self.vars.get(var) {
                        Some(v) => v.clone(),
                        None => return exec_err(format!("undefined variable: {var}")),
                    },
                };
                for name in path {
                    v = match &v {
                        Value::Object(m) => m.get(name).cloned().unwrap_or(Value::Null),
                        Value::Null => Value::Null,
                        other => {
                            return exec_err(format!(
                                "can't evaluate field {name} in type {}",
                                go_type(other)
                            ))
                        }
                    };
                }
                Ok(v)
            }
        }
    }

    fn pipeline(&self, pipe: &Pipeline, dot: &Value) -> Result<Value> {
        let mut last: Option<Value> = None;
        for cmd in pipe {
            let mut args = Vec::new();
            for a in cmd.iter().skip(1) {
                args.push(self.arg(a, dot)?);
            }
            args.extend(last.take());
            last = Some(match &cmd[0] {
                Arg::Func(f) => call(f, &args)?,
                first if args.is_empty() => self.arg(first, dot)?,
                _ => return exec_err("can't give argument to non-function"),
            });
        }
        Ok(last.unwrap_or(Value::Null))
    }

    fn run(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Print { vars, pipe } => {
                    let v = self.pipeline(pipe, dot)?;
                    match vars.first() {
                        Some(var) => {
                            self.vars.insert(var.clone(), v);
                        }
                        None => out.push_str(&go_print(&v)),
                    }
                }
                Node::If { pipe, body, other } => {
                    let branch = if truthy(&self.pipeline(pipe, dot)?) {
                        body
                    } else {
                        other
                    };
                    self.run(branch, dot, out)?;
                }
                Node::With { pipe, body, other } => {
                    let v = self.pipeline(pipe, dot)?;
                    if truthy(&v) {
                        self.run(body, &v, out)?;
                    } else {
                        self.run(other, dot, out)?;
                    }
                }
                Node::Range {
                    vars,
                    pipe,
                    body,
                    other,
                } => {
                    let entries: Vec<(Value, Value)> = match self.pipeline(pipe, dot)? {
                        Value::Array(a) => a
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::from(i), v))
                            .collect(),
                        Value::Object(m) => {
                            m.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
                        }
                        Value::Null => Vec::new(),
                        other => {
                            return exec_err(format!(
                                "range can't iterate over {}",
                                go_print(&other)
                            ))
                        }
                    };
                    if entries.is_empty() {
                        self.run(other, dot, out)?;
                    }
                    for (key, value) in entries {
                        match vars.as_slice() {
                            [v] => {
                                self.vars.insert(v.clone(), value.clone());
                            }
                            [k, v] => {
                                self.vars.insert(k.clone(), key);
                                self.vars.insert(v.clone(), value.clone());
                            }
                            _ => {}
                        }
                        self.run(body, &value, out)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int64",
        Value::Array(_) => "[]interface {}",
        _ => "interface {}",
    }
}

impl GoTemplate {
    /// Runs the template on `root`.
    pub fn execute(&self, root: &Value) -> Result<String> {
        let mut exec = Exec {
            root,
            vars: BTreeMap::new(),
        };
        let mut out = String::new();
        exec.run(&self.nodes, root, &mut out)?;
        Ok(out)
    }
}

/// Parses and runs `template` on `root`.
#[cfg(test)]
pub fn render(template: &str, root: &Value) -> Result<String> {
    parse(template)?.execute(root)
}

#[path = "gotemplate_funcs.rs"]
mod funcs;
use funcs::call;

#[cfg(test)]
#[path = "gotemplate_tests.rs"]
mod tests;
