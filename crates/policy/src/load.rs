//! Reading a policy file: TOML syntax, the file's shape, unknown keys, then the
//! rules in [`crate::validate`]. Every problem becomes a [`Diagnostic`] that
//! points at `file:line:column`.

use std::fmt;
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::model::Policy;
use crate::validate;

/// One step in the path to a value in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where in the policy a value lives, e.g. `purposes.analytics.categories[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The whole file.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path, one key deeper.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path, one array element deeper.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if k.contains('.') || k.is_empty() => write!(f, "{}\"{k}\"", if i > 0 { "." } else { "" })?,
                Seg::Key(k) => write!(f, "{}{k}", if i > 0 { "." } else { "" })?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem in a policy file, with its location and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error: {}", self.file, self.line, self.column, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// All the problems found in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<Diagnostic>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} in the policy", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for PolicyErrors {}

/// A policy that parsed and passed every rule.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: Policy,
    /// SHA-256 of the file's bytes, hex: what the audit chain records.
    pub sha256: String,
    /// Names of the fields declared `type = "password"` (validation makes a name a
    /// password at every point or at none), worked out once for every read.
    pub password_fields: std::collections::BTreeSet<String>,
}

impl LoadedPolicy {
    /// Whether field `name` is a password, kept only as a hash.
    pub fn is_password(&self, name: &str) -> bool {
        self.password_fields.contains(name)
    }

    /// Whether any collection point declares a field named `name`.
    pub fn declares_field(&self, name: &str) -> bool {
        self.policy.collection_points.values().any(|p| p.fields.contains_key(name))
    }
}

/// Collects diagnostics, turning paths and byte offsets into lines and columns.
pub(crate) struct Reporter<'a> {
    file: &'a str,
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
    pub(crate) found: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Self { file, text, doc: None, found: Vec::new() }
    }

    /// Reports a problem at a byte range.
    pub(crate) fn at_span(&mut self, span: Option<Range<usize>>, message: String, help: Option<String>) {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.found.push(Diagnostic { file: self.file.to_owned(), line, column, message, help });
    }

    /// Reports a problem at the value (or key) a path names.
    pub(crate) fn at(&mut self, path: &Path, message: impl Into<String>, help: impl Into<String>) {
        let span = self.locate(path, false);
        self.push(span, message.into(), help.into());
    }

    /// Reports a problem at the key a path ends with (for keys that should not be there).
    pub(crate) fn at_key(&mut self, path: &Path, message: impl Into<String>, help: impl Into<String>) {
        let span = self.locate(path, true);
        self.push(span, message.into(), help.into());
    }

    fn push(&mut self, span: Option<Range<usize>>, message: String, help: String) {
        self.at_span(span, message, (!help.is_empty()).then_some(help));
    }

    /// The deepest byte range the document knows on the way to `path`.
    fn locate(&self, path: &Path, key_only: bool) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        match (key_only, path.0.split_last()) {
            (true, Some((Seg::Key(last), parent))) => {
                locate_key(doc.as_table(), parent, last).or_else(|| locate_table(doc.as_table(), &path.0, None))
            }
            _ => locate_table(doc.as_table(), &path.0, None),
        }
    }
}

/// The span of key `last` inside the table or inline table at `parent`.
fn locate_key(root: &toml_edit::Table, parent: &[Seg], last: &str) -> Option<Range<usize>> {
    let mut item: &toml_edit::Item = root.get(match parent.first() {
        Some(Seg::Key(k)) => k,
        _ => return root.get_key_value(last).and_then(|(k, _)| k.span()),
    })?;
    let mut value: Option<&toml_edit::Value> = None;
    for seg in &parent[1..] {
        match (value, item, seg) {
            (None, toml_edit::Item::Table(t), Seg::Key(k)) => item = t.get(k)?,
            (None, toml_edit::Item::ArrayOfTables(a), Seg::Index(i)) => {
                return a.get(*i).and_then(|t| t.get_key_value(last)).and_then(|(k, _)| k.span());
            }
            (None, toml_edit::Item::Value(v), _) | (Some(v), _, _) => {
                value = Some(match (v, seg) {
                    (toml_edit::Value::InlineTable(t), Seg::Key(k)) => t.get(k)?,
                    (toml_edit::Value::Array(a), Seg::Index(i)) => a.get(*i)?,
                    _ => return None,
                });
            }
            _ => return None,
        }
    }
    match (value, item) {
        (Some(toml_edit::Value::InlineTable(t)), _)
        | (None, toml_edit::Item::Value(toml_edit::Value::InlineTable(t))) => {
            t.key(last).and_then(toml_edit::Key::span)
        }
        (None, toml_edit::Item::Table(t)) => t.key(last).and_then(toml_edit::Key::span),
        _ => None,
    }
}

fn locate_table(t: &toml_edit::Table, rest: &[Seg], best: Option<Range<usize>>) -> Option<Range<usize>> {
    let Some((Seg::Key(k), tail)) = rest.split_first() else { return best.or(t.span()) };
    match t.get_key_value(k) {
        Some((key, item)) => locate_item(item, tail, key.span().or(best)),
        None => best.or(t.span()),
    }
}

fn locate_item(item: &toml_edit::Item, rest: &[Seg], best: Option<Range<usize>>) -> Option<Range<usize>> {
    match item {
        toml_edit::Item::Table(t) => locate_table(t, rest, best),
        toml_edit::Item::Value(v) => locate_value(v, rest, best),
        toml_edit::Item::ArrayOfTables(a) => match rest.split_first() {
            Some((Seg::Index(i), tail)) => match a.get(*i) {
                Some(t) => locate_table(t, tail, t.span().or(best)),
                None => best,
            },
            _ => best,
        },
        toml_edit::Item::None => best,
    }
}

fn locate_value(v: &toml_edit::Value, rest: &[Seg], best: Option<Range<usize>>) -> Option<Range<usize>> {
    let here = v.span().or(best);
    let Some((first, tail)) = rest.split_first() else { return here };
    match (v, first) {
        (toml_edit::Value::Array(a), Seg::Index(i)) => match a.get(*i) {
            Some(inner) => locate_value(inner, tail, here),
            None => here,
        },
        (toml_edit::Value::InlineTable(t), Seg::Key(k)) => match t.get_key_value(k) {
            Some((key, inner)) => locate_item(inner, tail, key.span().or(here)),
            None => here,
        },
        _ => here,
    }
}

fn ignored_path(path: &serde_ignored::Path<'_>, out: &mut Path) {
    use serde_ignored::Path as P;
    match path {
        P::Root => {}
        P::Seq { parent, index } => {
            ignored_path(parent, out);
            out.0.push(Seg::Index(*index));
        }
        P::Map { parent, key } => {
            ignored_path(parent, out);
            out.0.push(Seg::Key(key.clone()));
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => ignored_path(parent, out),
    }
}

/// Parses and validates a policy. `file` names it in diagnostics.
pub fn load(file: &str, text: &str) -> Result<LoadedPolicy, PolicyErrors> {
    let mut rep = Reporter::new(file, text);

    // Syntax, including duplicate keys and tables, which TOML itself forbids.
    match toml_edit::ImDocument::parse(text) {
        Ok(doc) => rep.doc = Some(doc),
        Err(e) => {
            let message = e.message().trim().to_owned();
            let help = if message.contains("duplicate") {
                "each key may appear once per table: remove or rename the second one"
            } else {
                "fix the TOML syntax at this position"
            };
            rep.at_span(e.span(), message, Some(help.to_owned()));
            return Err(PolicyErrors(rep.found));
        }
    }

    // Shape, collecting every unknown key on the way.
    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let parsed: Result<Policy, toml::de::Error> = serde_ignored::deserialize(de, |p| {
        let mut path = Path::root();
        ignored_path(&p, &mut path);
        unknown.push(path);
    });
    for path in &unknown {
        let key = match path.0.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => path.to_string(),
        };
        rep.at_key(
            path,
            format!("unknown key `{key}` at `{path}`"),
            "remove it, or check its spelling against `charter policy schema`",
        );
    }
    let policy = match parsed {
        Ok(p) => p,
        Err(e) => {
            rep.at_span(
                e.span(),
                e.message().trim().to_owned(),
                Some("see `charter policy schema` for the expected form".to_owned()),
            );
            return Err(PolicyErrors(rep.found));
        }
    };

    validate::check(&policy, &mut rep);
    if rep.found.is_empty() {
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let password_fields = policy
            .collection_points
            .values()
            .flat_map(|p| p.fields.iter())
            .filter(|(_, f)| f.kind == crate::model::FieldType::Password)
            .map(|(name, _)| name.clone())
            .collect();
        Ok(LoadedPolicy { policy, sha256, password_fields })
    } else {
        rep.found.sort_by_key(|d| (d.line, d.column));
        Err(PolicyErrors(rep.found))
    }
}
