//! Debian control data: deb822 stanzas (`Packages`, `Release`, a package's
//! `control`), dependency fields and dpkg's version ordering.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One stanza: field name (as written) → value (continuation lines joined
/// with `\n`).
/// A dependency field that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("bad relation `{op}` in `{alternative}`")]
    BadRelation { op: String, alternative: String },
    #[error("bad version constraint `{alternative}`")]
    BadConstraint { alternative: String },
    #[error("empty package name in `{group}`")]
    EmptyName { group: String },
}

pub type Stanza = BTreeMap<String, String>;

/// Splits deb822 text into stanzas.
pub fn stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut current = Stanza::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            last = None;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(field) = &last {
                let value = current.entry(field.clone()).or_default();
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A version relation in a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// `name (op version)`, one alternative of a dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub version: Option<(Relation, String)>,
}

impl std::fmt::Display for Alternative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some((rel, v)) = &self.version {
            let op = match rel {
                Relation::Lt => "<<",
                Relation::Le => "<=",
                Relation::Eq => "=",
                Relation::Ge => ">=",
                Relation::Gt => ">>",
            };
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// Parses a `Depends`-style field: groups separated by `,`, alternatives by
/// `|`. Architecture qualifiers (`:any`) and restrictions (`[…]`, `<…>`)
/// are dropped.
pub fn dependencies(field: &str) -> Result<Vec<Vec<Alternative>>, ControlError> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let mut alternatives = Vec::new();
        for alt in group.split('|') {
            // Drop `[arch]` and `<profile>` restrictions (outside the version's parentheses).
            let mut kept = String::new();
            let (mut depth, mut skip) = (0, None::<char>);
            for c in alt.chars() {
                match (skip, c) {
                    (Some(end), c) if c == end => skip = None,
                    (Some(_), _) => {}
                    (None, '(') => {
                        depth += 1;
                        kept.push(c);
                    }
                    (None, ')') => {
                        depth -= 1;
                        kept.push(c);
                    }
                    (None, '[') if depth == 0 => skip = Some(']'),
                    (None, '<') if depth == 0 => skip = Some('>'),
                    (None, c) => kept.push(c),
                }
            }
            let alt = kept.trim();
            let (name, version) = match alt.split_once('(') {
                Some((name, rest)) => {
                    let inner = rest.trim_end().trim_end_matches(')').trim();
                    let (op, v) = inner
                        .find(|c: char| !"<>=".contains(c))
                        .map(|i| inner.split_at(i))
                        .ok_or_else(|| ControlError::BadConstraint {
                            alternative: alt.to_string(),
                        })?;
                    let rel = match op {
                        "<<" | "<" => Relation::Lt,
                        "<=" => Relation::Le,
                        "=" => Relation::Eq,
                        ">=" => Relation::Ge,
                        ">>" | ">" => Relation::Gt,
                        _ => {
                            return Err(ControlError::BadRelation {
                                op: op.to_string(),
                                alternative: alt.to_string(),
                            })
                        }
                    };
                    (name.trim(), Some((rel, v.trim().to_string())))
                }
                None => (alt, None),
            };
            let name = name.split(':').next().unwrap_or(name).trim();
            if name.is_empty() {
                return Err(ControlError::EmptyName {
                    group: group.to_string(),
                });
            }
            alternatives.push(Alternative {
                name: name.to_string(),
                version,
            });
        }
        groups.push(alternatives);
    }
    Ok(groups)
}

/// True when `version` satisfies `relation target`.
pub fn satisfies(version: &str, relation: Relation, target: &str) -> bool {
    let c = compare_versions(version, target);
    match relation {
        Relation::Lt => c == Ordering::Less,
        Relation::Le => c != Ordering::Greater,
        Relation::Eq => c == Ordering::Equal,
        Relation::Ge => c != Ordering::Less,
        Relation::Gt => c == Ordering::Greater,
    }
}

/// dpkg's ordering of versions: `[epoch:]upstream[-revision]`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u.to_string(), r.to_string()),
            None => (rest.to_string(), String::new()),
        };
        (epoch, upstream, revision)
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(&ua, &ub))
        .then_with(|| compare_part(&ra, &rb))
}

fn order(c: Option<char>) -> i32 {
    match c {
        None => 0,
        Some('~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// The string/number alternation of dpkg's `verrevcmp`.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).filter(|c| !c.is_ascii_digit()).map(|&c| c as char));
            let bc = order(b.get(j).filter(|c| !c.is_ascii_digit()).map(|&c| c as char));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == 0 {
                first_diff = a[i] as i32 - b[j] as i32;
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_like_dpkg() {
        let less = [
            ("1.0", "1.1"),
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-2"),
            ("1:0.9", "2:0.1"),
            ("0.9", "1:0.1"),
            ("2.36-9", "2.36-9+deb12u4"),
            ("1.22.1-9", "1.22.1-9+deb12u1"),
            ("1.9", "1.10"),
            ("1.0a", "1.0b"),
            ("1.0~~", "1.0~"),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
        ];
        for (a, b) in less {
            assert_eq!(compare_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare_versions(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare_versions("1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(compare_versions("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.01", "1.1"), Ordering::Equal);
    }

    #[test]
    fn dependencies_parse_groups_alternatives_and_constraints() {
        let d = dependencies(
            "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, libfoo [amd64] <!nocheck>, x (<< 2)",
        )
        .unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(d[4][0].version, Some((Relation::Lt, "2".into())));
        assert_eq!(d[0][0].version, Some((Relation::Ge, "2.34".into())));
        assert_eq!(d[1].len(), 2);
        assert_eq!(d[1][1].name, "debconf-2.0");
        assert_eq!(d[2][0].name, "perl");
        assert_eq!(d[3][0].name, "libfoo");
        assert_eq!(d[0][0].to_string(), "libc6 (>= 2.34)");
        assert!(satisfies("2.36-9", Relation::Ge, "2.34"));
        assert!(!satisfies("2.36-9", Relation::Lt, "2.34"));
    }

    #[test]
    fn stanzas_split_on_blank_lines_and_join_continuations() {
        let s = stanzas("Package: a\nDescription: x\n more\n\nPackage: b\nVersion: 1\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["Description"], "x\nmore");
        assert_eq!(s[1]["Version"], "1");
    }
}
