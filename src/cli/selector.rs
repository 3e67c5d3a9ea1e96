//! Label selectors of `get` and `delete` (`-l`), parsed, checked and matched as the API server
//! does: the grammar and messages of apimachinery's `labels.Parse` (labels/selector.go: a lexer
//! over bytes, `in`/`notin` sets, `!key`, `=`/`==`/`!=`, `>`/`<`). [`Selectors`] joins them with
//! the field selectors of [`super::field_selector`]; a refusal reads as kubectl prints the API
//! server's BadRequest (cli-runtime resource/selector.go).

use std::collections::BTreeMap;

use serde_json::Value;

use super::field_selector::{parse_fields, selectable_fields, FieldSelector};
use super::kinds::Kind;
use crate::manifest::names::messages;

/// The API server's words for a selector it cannot use on `kind`, as kubectl prints them.
pub fn bad_request(kind: Kind, labels: &str, fields: &str, why: &str) -> String {
    format!(
        "Error from server (BadRequest): Unable to find \"/v1, Resource={}\" that match label \
         selector \"{labels}\", field selector \"{fields}\": {why}",
        kind.resource()
    )
}

/// A label selector operator [apimachinery/pkg/selection].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// The operators a key may be followed by, as `parseOperator` lists them.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// One requirement: key, operator and values (sorted, as a Go string set lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let has = |v: &String| self.values.contains(v);
        match self.op {
            Op::In | Op::Equals | Op::DoubleEquals => value.is_some_and(has),
            Op::NotIn | Op::NotEquals => !value.is_some_and(has),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(Ok(have)), [want]) = (value.map(|v| v.parse::<i64>()), &self.values[..])
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed `-l` selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// The lexer's tokens [labels/selector.go Token].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Error(String),
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier(String),
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

impl Token {
    /// The literal the parser's messages quote.
    fn literal(&self) -> &str {
        match self {
            Token::Error(s) | Token::Identifier(s) => s,
            Token::End => "",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::DoesNotExist => "!",
            Token::DoubleEquals => "==",
            Token::Equals => "=",
            Token::GreaterThan => ">",
            Token::In => "in",
            Token::LessThan => "<",
            Token::NotEquals => "!=",
            Token::NotIn => "notin",
            Token::OpenPar => "(",
        }
    }

    fn symbol(s: &[u8]) -> Option<Token> {
        Some(match s {
            b")" => Token::ClosedPar,
            b"," => Token::Comma,
            b"!" => Token::DoesNotExist,
            b"==" => Token::DoubleEquals,
            b"=" => Token::Equals,
            b">" => Token::GreaterThan,
            b"<" => Token::LessThan,
            b"!=" => Token::NotEquals,
            b"(" => Token::OpenPar,
            _ => return None,
        })
    }

    /// In a list of values, `in` and `notin` are plain words.
    fn into_value(self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal().to_string()),
            other => other,
        }
    }
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits a selector into tokens, ending with [`Token::End`].
fn lex(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push(Token::End);
            return out;
        }
        if is_special(b[pos]) {
            // The longest run of symbols that is still an operator.
            let start = pos;
            let mut best: Option<(Token, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                match Token::symbol(&b[start..pos]) {
                    Some(t) => best = Some((t, pos)),
                    None if best.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match best {
                Some((token, end)) => {
                    pos = end;
                    out.push(token);
                }
                None => out.push(Token::Error(format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&b[start..pos])
                ))),
            }
            continue;
        }
        let start = pos;
        while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
            pos += 1;
        }
        let word = String::from_utf8_lossy(&b[start..pos]).into_owned();
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
    }
}

/// The recursive-descent parser of labels.Parse, position over the scanned tokens.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        self.tokens
            .get(self.pos)
            .cloned()
            .unwrap_or(Token::End)
            .into_value()
    }

    fn next_raw(&mut self) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        self.pos += 1;
        t
    }

    fn next(&mut self) -> Token {
        self.next_raw().into_value()
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    match self.next() {
                        Token::End => return Ok(out),
                        Token::Comma => match self.peek() {
                            Token::Identifier(_) | Token::DoesNotExist => {}
                            t => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ))
                            }
                        },
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ))
                        }
                    }
                }
                Token::End => return Ok(out),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut op = None;
        let mut token = self.next();
        if token == Token::DoesNotExist {
            op = Some(Op::DoesNotExist);
            token = self.next();
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        key_errors(&key)?;
        if matches!(self.peek(), Token::End | Token::Comma) {
            return new_requirement(key, op.unwrap_or(Op::Exists), Vec::new());
        }
        if let Some(op) = op {
            return new_requirement(key, op, Vec::new());
        }
        let op = match self.next_raw() {
            Token::In => Op::In,
            Token::Equals => Op::Equals,
            Token::DoubleEquals => Op::DoubleEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            t => {
                return Err(format!(
                    "found '{}', expected: {BINARY_OPERATORS}",
                    t.literal()
                ))
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, op, values)
    }

    /// `(a,b,c)`, empty entries allowed.
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let t = self.next();
        if t != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        let lookahead = self.peek();
        match lookahead {
            Token::Identifier(_) | Token::Comma => {
                let set = self.identifiers()?;
                if self.next() != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", lookahead.literal()));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.next();
                Ok(vec![String::new()])
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            match self.next() {
                Token::Identifier(v) => {
                    set.insert(v);
                    match self.peek() {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set.into_iter().collect()),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.peek() {
                        Token::ClosedPar => {
                            set.insert(String::new());
                            return Ok(set.into_iter().collect());
                        }
                        Token::Comma => {
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next() {
            Token::Identifier(v) => Ok(vec![v]),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

/// validateLabelKey with no field path: `<nil>: Invalid value: "k": ...`.
fn key_errors(key: &str) -> Result<(), String> {
    let errs = messages::qualified_name(key);
    if errs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "<nil>: Invalid value: {}: {}",
        crate::manifest::go_quote(key),
        errs.join("; ")
    ))
}

/// NewRequirement's checks of the values, aggregated as Go's errors.NewAggregate prints them.
fn new_requirement(key: String, op: Op, values: Vec<String>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    let mut push = |e: String| {
        if !errs.contains(&e) {
            errs.push(e);
        }
    };
    // The parser never hands an empty set to `in`/`notin` (`()` is one empty value).
    if matches!(op, Op::GreaterThan | Op::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if v.parse::<i64>().is_err() {
                push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        crate::manifest::go_quote(v)
                    ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let bad = messages::label_value(v);
        if !bad.is_empty() {
            push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                crate::manifest::go_quote(v),
                bad.join("; ")
            ));
        }
    }
    match errs.len() {
        0 => Ok(Requirement { key, op, values }),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// `labels.Parse`: the selector or the API server's message.
pub fn parse_labels(s: &str) -> Result<LabelSelector, String> {
    let mut parser = Parser {
        tokens: lex(s),
        pos: 0,
    };
    let mut requirements = parser.parse()?;
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector { requirements })
}

/// The labels of an API object (its `metadata.labels`).
pub fn object_labels(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

/// `-l` and `--field-selector` as given (flags of `get` and `delete`): parsed per kind when a
/// listing is made, as the API server parses them per request.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Selectors {
    /// Label selector: `a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-joined.
    #[arg(short = 'l', long = "selector")]
    pub labels: Option<String>,
    /// Field selector: `metadata.name=x`, `status.phase!=Running`, ...
    #[arg(long = "field-selector")]
    pub fields: Option<String>,
}

/// A kind's parsed selectors.
pub struct KindSelectors {
    labels: LabelSelector,
    fields: FieldSelector,
    node: String,
    kind: Kind,
}

impl Selectors {
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Parses both for `kind`, or the BadRequest line the API server would answer.
    pub fn for_kind(&self, kind: Kind, node: &str) -> Result<KindSelectors, String> {
        let (label_text, field_text) = (
            self.labels.as_deref().unwrap_or_default(),
            self.fields.as_deref().unwrap_or_default(),
        );
        let bad = |why: String| bad_request(kind, label_text, field_text, &why);
        let labels = parse_labels(label_text).map_err(bad)?;
        let fields = parse_fields(field_text)
            .and_then(|f| f.for_kind(kind))
            .map_err(bad)?;
        Ok(KindSelectors {
            labels,
            fields,
            node: node.to_string(),
            kind,
        })
    }
}

impl KindSelectors {
    /// True when the object (as the API returns it) is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(&object_labels(object))
            && self
                .fields
                .matches(&selectable_fields(self.kind, object, &self.node))
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
