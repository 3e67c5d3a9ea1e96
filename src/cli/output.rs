//! How objects are printed by `get`, `create`, `run`: kubectl's `-o` formats and their
//! printers (cli-runtime pkg/printers, kubectl pkg/cmd/get/customcolumn.go and sorter.go):
//! JSON and YAML as kubectl writes them, `name`, `jsonpath=` / `jsonpath-file=` /
//! `jsonpath-as-json=` ([`super::jsonpath`]), `go-template=` / `template` / `--template`
//! ([`super::gotemplate`]), `custom-columns=` / `custom-columns-file=`, and `--sort-by`.
//! One object prints as itself; several (or a listing) as a `kind: List`.

use std::cmp::Ordering;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::format::tabwrite;
use super::gotemplate::{self, GoTemplate};
use super::jsonpath::{self, Template};

/// `-o` of `get`, `create` and `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Wide,
    Json,
    Yaml,
    Name,
    /// `jsonpath[=TEMPLATE]`, the template from `--template` when not given.
    JsonPath(Option<String>),
    JsonPathFile(String),
    /// `jsonpath-as-json[=TEMPLATE]`
    JsonPathAsJson(Option<String>),
    /// `go-template[=TEMPLATE]` and `template[=TEMPLATE]`
    GoTemplate(Option<String>),
    /// `go-template-file=FILE` and `templatefile=FILE`
    GoTemplateFile(String),
    CustomColumns(String),
    CustomColumnsFile(String),
}

/// The formats `get` takes, sorted, as kubectl lists them in its refusal.
const FORMATS: &str = "custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml";

/// Parses `-o`.
pub fn parse_output(s: &str) -> Result<Output, String> {
    let (format, arg) = match s.split_once('=') {
        Some((f, a)) => (f, Some(a.to_string())),
        None => (s, None),
    };
    let file = |arg: Option<String>| arg.unwrap_or_default();
    Ok(match (format, arg) {
        ("wide", None) => Output::Wide,
        ("json", None) => Output::Json,
        ("yaml", None) => Output::Yaml,
        ("name", None) => Output::Name,
        ("jsonpath", arg) => Output::JsonPath(arg),
        ("jsonpath-as-json", arg) => Output::JsonPathAsJson(arg),
        ("jsonpath-file", arg) => Output::JsonPathFile(file(arg)),
        ("go-template" | "template", arg) => Output::GoTemplate(arg),
        ("go-template-file" | "templatefile", arg) => Output::GoTemplateFile(file(arg)),
        ("custom-columns", arg) => Output::CustomColumns(file(arg)),
        ("custom-columns-file", arg) => Output::CustomColumnsFile(file(arg)),
        _ => {
            return Err(format!(
                "unable to match a printer suitable for the output format {s:?}, allowed formats are: {FORMATS}"
            ))
        }
    })
}

/// One column of `-o custom-columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub header: String,
    pub template: Template,
}

/// A printer made from `-o` and `--template`.
#[derive(Debug, Clone)]
pub enum Printer {
    /// The human-readable tables.
    Table {
        wide: bool,
    },
    Json,
    Yaml,
    Name,
    JsonPath {
        raw: String,
        template: Template,
        as_json: bool,
    },
    GoTemplate {
        raw: String,
        template: GoTemplate,
    },
    CustomColumns(Vec<Column>),
}

const NO_TEMPLATE: &str = "template format specified but no template given";

fn read_template(file: &str) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| anyhow!("error reading --template {file}, {e}"))
}

fn jsonpath_printer(raw: String, as_json: bool) -> Result<Printer> {
    let template =
        jsonpath::parse(&raw).map_err(|e| anyhow!("error parsing jsonpath {raw}, {e}"))?;
    Ok(Printer::JsonPath {
        raw,
        template,
        as_json,
    })
}

fn go_template_printer(raw: String) -> Result<Printer> {
    let template =
        gotemplate::parse(&raw).map_err(|e| anyhow!("error parsing template {raw}, {e}"))?;
    Ok(Printer::GoTemplate { raw, template })
}

impl Printer {
    /// kubectl's PrintFlags.ToPrinter: `--template` alone means go-template; `-o jsonpath` or
    /// `-o go-template` take their template from `--template`.
    pub fn from_flags(output: Option<&Output>, template: Option<&str>) -> Result<Printer> {
        let from_flag = |given: &Option<String>| -> Result<String> {
            match given.clone().or_else(|| template.map(String::from)) {
                Some(t) if !t.is_empty() => Ok(t),
                _ => bail!(NO_TEMPLATE),
            }
        };
        Ok(match output {
            None if template.is_some() => go_template_printer(from_flag(&None)?)?,
            None => Printer::Table { wide: false },
            Some(Output::Wide) => Printer::Table { wide: true },
            Some(Output::Json) => Printer::Json,
            Some(Output::Yaml) => Printer::Yaml,
            Some(Output::Name) => Printer::Name,
            Some(Output::JsonPath(t)) => jsonpath_printer(from_flag(t)?, false)?,
            Some(Output::JsonPathAsJson(t)) => jsonpath_printer(from_flag(t)?, true)?,
            Some(Output::JsonPathFile(f)) => jsonpath_printer(read_template(f)?, false)?,
            Some(Output::GoTemplate(t)) => go_template_printer(from_flag(t)?)?,
            Some(Output::GoTemplateFile(f)) => go_template_printer(read_template(f)?)?,
            Some(Output::CustomColumns(spec)) => Printer::CustomColumns(columns_from_spec(spec)?),
            Some(Output::CustomColumnsFile(f)) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| anyhow!("error reading template {f}, {e}"))?;
                Printer::CustomColumns(columns_from_file(&text)?)
            }
        })
    }

    /// Prints `objects`: the one object as itself when `single`, else a `kind: List`; custom
    /// columns and names print a row each.
    pub fn render(&self, objects: Vec<Value>, single: bool, no_headers: bool) -> Result<String> {
        match self {
            Printer::Name | Printer::Table { .. } => Ok(objects
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}\n",
                        o["kind"].as_str().unwrap_or_default().to_lowercase(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect()),
            Printer::CustomColumns(columns) => custom_columns(columns, &objects, no_headers),
            _ => {
                let value = if single && objects.len() == 1 {
                    objects.into_iter().next().unwrap_or_default()
                } else {
                    list_object(objects)
                };
                self.render_one(&value)
            }
        }
    }

    fn render_one(&self, value: &Value) -> Result<String> {
        Ok(match self {
            Printer::Yaml => go_yaml_quotes(&serde_norway::to_string(value)?),
            Printer::JsonPath {
                raw,
                template,
                as_json,
            } => {
                let run = if *as_json {
                    template.groups(value).map(|groups| {
                        groups
                            .into_iter()
                            .map(|g| to_json(&Value::Array(g)).unwrap_or_default())
                            .collect()
                    })
                } else {
                    template.execute(value)
                };
                run.map_err(|e| anyhow!("error executing jsonpath {raw:?}: Error executing template: {e}. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{raw}\n\tobject given to jsonpath engine was:\n\t\t{value}\n\n"))?
            }
            Printer::GoTemplate { raw, template } => template
                .execute(value)
                .map_err(|e| anyhow!("error executing template {raw:?}: {e}"))?,
            _ => to_json(value)?,
        })
    }
}

/// NewCustomColumnsPrinterFromSpec: `HEADER:path,HEADER:path`.
pub fn columns_from_spec(spec: &str) -> Result<Vec<Column>> {
    if spec.is_empty() {
        bail!("custom-columns format specified but no custom columns given");
    }
    spec.split(',')
        .map(|part| {
            let Some((header, path)) = part.split_once(':') else {
                bail!("unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>");
            };
            column(header, path)
        })
        .collect()
}

/// NewCustomColumnsPrinterFromTemplate: a line of headers, a line of paths.
pub fn columns_from_file(text: &str) -> Result<Vec<Column>> {
    const FORMAT: &str = "Expected format is one line of space separated headers, one line of space separated column specs.";
    let mut lines = text.lines();
    let headers: Vec<&str> = lines
        .next()
        .with_context(|| format!("invalid template, missing header line. {FORMAT}"))?
        .split_whitespace()
        .collect();
    let specs: Vec<&str> = lines
        .next()
        .with_context(|| format!("invalid template, missing spec line. {FORMAT}"))?
        .split_whitespace()
        .collect();
    if headers.len() != specs.len() {
        bail!(
            "number of headers ({}) and field specifications ({}) don't match",
            headers.len(),
            specs.len()
        );
    }
    headers
        .iter()
        .zip(specs)
        .map(|(h, s)| column(h, s))
        .collect()
}

fn column(header: &str, path: &str) -> Result<Column> {
    let expr = jsonpath::relaxed(path).map_err(|e| anyhow!(e))?;
    let template = jsonpath::parse(&expr).map_err(|e| anyhow!("{e}"))?;
    Ok(Column {
        header: header.to_string(),
        template,
    })
}

/// The rows of custom columns: `<none>` for nothing found, several values joined by `,`, each
/// as Go's fmt.Sprint prints it.
fn custom_columns(columns: &[Column], objects: &[Value], no_headers: bool) -> Result<String> {
    let mut lines = Vec::new();
    if !no_headers {
        lines.push(
            columns
                .iter()
                .map(|c| c.header.clone())
                .collect::<Vec<_>>()
                .join("\t"),
        );
    }
    for object in objects {
        let mut cells = Vec::new();
        for c in columns {
            let values = c.template.find(object).map_err(|e| anyhow!("{e}"))?;
            cells.push(if values.is_empty() {
                "<none>".to_string()
            } else {
                values
                    .iter()
                    .map(gotemplate::go_print)
                    .collect::<Vec<_>>()
                    .join(",")
            });
        }
        lines.push(cells.join("\t"));
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(tabwrite(&lines.join("\n"), 6, 3) + "\n")
}

/// sortorder.NaturalLess: runs of digits compare as numbers, the rest byte by byte.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let chunks = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let order = if x.0 && y.0 {
            let (tx, ty) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            tx.len()
                .cmp(&ty.len())
                .then(tx.cmp(ty))
                .then(x.1.len().cmp(&y.1.len()))
        } else {
            x.1.cmp(&y.1)
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ca.len().cmp(&cb.len())
}

/// kubectl's isLess on decoded JSON: numbers numerically, two quantities as quantities,
/// other strings naturally; a missing value sorts first.
fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => {
            match (
                crate::manifest::parse_quantity(x),
                crate::manifest::parse_quantity(y),
            ) {
                (Ok(qx), Ok(qy)) => qx.cmp_value(&qy),
                _ => natural_cmp(x, y),
            }
        }
        (Some(x), Some(y)) => natural_cmp(&x.to_string(), &y.to_string()),
    }
}

/// `--sort-by`: `items` sorted (stably) by the first value the (relaxed) JSONPath finds in
/// each; refused when no object has the field.
pub fn sort_by<T>(items: Vec<T>, expr: &str, object: impl Fn(&T) -> &Value) -> Result<Vec<T>> {
    let field = jsonpath::relaxed(expr).unwrap_or_else(|_| expr.to_string());
    let template = jsonpath::parse(&field).map_err(|e| anyhow!("sorting error: {e}"))?;
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        let key = template.find(object(&item)).map_err(|e| anyhow!("{e}"))?;
        keyed.push((key.into_iter().next(), item));
    }
    if !keyed.is_empty() && keyed.iter().all(|(k, _)| k.is_none()) {
        bail!("couldn't find any field with path {field:?} in the list of objects");
    }
    keyed.sort_by(|a, b| sort_cmp(a.0.as_ref(), b.0.as_ref()));
    Ok(keyed.into_iter().map(|(_, item)| item).collect())
}

/// Several objects as kubectl's `printGeneric` wraps them.
pub fn list_object(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": { "resourceVersion": "" },
    })
}

/// JSON as kubectl prints it: keys sorted (the object went through a map), four-space indent
/// [cli-runtime printers/json.go MarshalIndent], a final newline.
pub fn to_json(value: &Value) -> Result<String> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8(buf)?)
}

/// True for a string Go's YAML encoder (yaml.v2, behind kubectl's `-o yaml`) would read back
/// as something else: empty, null, a bool, a number or a timestamp.
fn yaml_ambiguous(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN",
    ];
    let digits = s.replace('_', "");
    let b = s.as_bytes();
    let timestamp = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    WORDS.contains(&s)
        || digits.parse::<i64>().is_ok()
        || (digits.parse::<f64>().is_ok() && !digits.contains(['i', 'I', 'n', 'N']))
        || digits
            .strip_prefix("0x")
            .is_some_and(|h| i64::from_str_radix(h, 16).is_ok())
        || timestamp
}

/// Re-quotes scalars the way yaml.v2 does where serde_norway differs: a string that would
/// read back as another type is double-quoted (`"1"`, `"true"`, `""`, timestamps), not
/// single-quoted or plain. Strings single-quoted for their characters stay as they are.
fn go_yaml_quotes(text: &str) -> String {
    let requote = |scalar: &str| -> Option<String> {
        if let Some(inner) = scalar.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            let simple = !inner.contains(['\'', '"', '\\']);
            return (simple && yaml_ambiguous(inner)).then(|| format!("\"{inner}\""));
        }
        let plain = !scalar.starts_with(['"', '|', '>', '[', '{', '&', '*', '!']);
        (plain && !scalar.is_empty() && yaml_ambiguous(scalar)).then(|| format!("\"{scalar}\""))
    };
    let mut out = String::with_capacity(text.len());
    // Inside a `|` or `>` block (deeper than the line that opened it), lines are data.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let spaces = body.len() - body.trim_start_matches(' ').len();
        if let Some(opened) = block {
            if body.trim().is_empty() || spaces > opened {
                out.push_str(line);
                continue;
            }
            block = None;
        }
        if body.ends_with(['|', '>', '-', '+']) && body.contains([':', '-']) {
            let tail = body.rsplit(' ').next().unwrap_or_default();
            if tail.starts_with(['|', '>']) {
                block = Some(spaces);
            }
        }
        let indent = body.len() - body.trim_start_matches([' ', '-']).len();
        let (lead, rest) = body.split_at(indent);
        // `key: value`, or a bare list item.
        let fixed = match rest.split_once(": ") {
            Some((key, value)) if !key.starts_with('"') => {
                let key = match key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                    Some(k) if yaml_ambiguous(k) && !k.contains(['\'', '"', '\\']) => {
                        format!("\"{k}\"")
                    }
                    _ => key.to_string(),
                };
                // A value that is a number or bool stays as serde wrote it: only strings
                // are quoted by serde_norway, so plain ambiguous values are real numbers,
                // except timestamps, which serde leaves plain.
                let value = match requote(value) {
                    Some(v)
                        if value.starts_with('\'')
                            || value.parse::<f64>().is_err()
                                && !matches!(value, "true" | "false" | "null") =>
                    {
                        v
                    }
                    _ => value.to_string(),
                };
                Some(format!("{lead}{key}: {value}"))
            }
            None if lead.ends_with("- ") => requote(rest)
                .filter(|_| rest.starts_with('\''))
                .map(|v| format!("{lead}{v}")),
            _ => None,
        };
        match fixed {
            Some(f) => {
                out.push_str(&f);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
