//! Wildcard patterns and policy variables.
//!
//! IAM wildcards are `*` (any run of characters, possibly empty) and `?` (exactly
//! one character). In `StringLike`, `Action` and non-ARN resources they cross `/`
//! and `:`; in `ArnLike`/`ArnEquals` and ARN resources each of the six
//! colon-separated ARN components is matched on its own, so a wildcard never
//! crosses the first five colons (aws-facts §3.3). Matching is linear-time
//! greedy-with-backtrack over characters, so no pattern can blow up.
//!
//! Policy variables (`${aws:username}`, `${key, 'default'}`, and the escapes `${*}`,
//! `${?}`, `${$}`) are recognised only under `Version 2012-10-17`; a substituted
//! value and an escape are always literal text, never wildcards.

use std::borrow::Cow;

use crate::eval::Context;

/// One position of a compiled wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PChar {
    /// This exact character.
    Lit(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
}

/// Compiles literal text where `*` and `?` are wildcards.
pub(crate) fn compile_glob(text: &str, out: &mut Vec<PChar>) {
    out.extend(text.chars().map(|c| match c {
        '*' => PChar::Star,
        '?' => PChar::One,
        c => PChar::Lit(c),
    }));
}

/// Whether `text` matches `pat`, wildcards crossing every character.
pub(crate) fn glob(pat: &[PChar], text: &str) -> bool {
    let mut p = 0usize;
    let mut i = 0usize;
    // Where the last `*` was and how far into the text it has reached.
    let mut star: Option<(usize, usize)> = None;
    while i < text.len() {
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        match pat.get(p) {
            Some(PChar::One) => {
                p += 1;
                i += c.len_utf8();
                continue;
            }
            Some(PChar::Lit(l)) if *l == c => {
                p += 1;
                i += c.len_utf8();
                continue;
            }
            Some(PChar::Star) => {
                star = Some((p, i));
                p += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, si)) => {
                let Some(sc) = text[si..].chars().next() else {
                    return false;
                };
                let next = si + sc.len_utf8();
                star = Some((sp, next));
                p = sp + 1;
                i = next;
            }
            None => return false,
        }
    }
    pat[p.min(pat.len())..].iter().all(|c| *c == PChar::Star)
}

/// Whether an ARN matches an ARN pattern component by component (the sixth
/// component, the resource, keeps any further colons). A pattern with fewer than
/// six components matches only when it is all `*`.
pub(crate) fn arn_like(pat: &[PChar], text: &str) -> bool {
    let mut pat_parts: [&[PChar]; 6] = [&[]; 6];
    let mut start = 0usize;
    let mut n = 0usize;
    for (idx, c) in pat.iter().enumerate() {
        if n == 5 {
            break;
        }
        if *c == PChar::Lit(':') {
            pat_parts[n] = &pat[start..idx];
            start = idx + 1;
            n += 1;
        }
    }
    if n < 5 {
        return pat.iter().all(|c| *c == PChar::Star);
    }
    pat_parts[5] = &pat[start..];
    let mut text_parts = text.splitn(6, ':');
    pat_parts.iter().all(|part| match text_parts.next() {
        Some(t) => glob(part, t),
        None => false,
    })
}

/// A compiled wildcard pattern (for actions: lower-cased by the parser).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    chars: Vec<PChar>,
    /// The text when it has no wildcard, for a plain comparison.
    literal: Option<String>,
}

impl Pattern {
    /// Compiles `text`, `*` and `?` being wildcards.
    pub(crate) fn new(text: &str) -> Self {
        let mut chars = Vec::with_capacity(text.len());
        compile_glob(text, &mut chars);
        let literal = (!text.contains(['*', '?'])).then(|| text.to_owned());
        Pattern { chars, literal }
    }

    /// Whether `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.literal {
            Some(l) => l == text,
            None => glob(&self.chars, text),
        }
    }
}

/// One piece of a value that may hold policy variables.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Text as written; `*` and `?` in it are wildcards for the like operators.
    Text(String),
    /// `${*}`, `${?}` or `${$}`: a literal character.
    Escaped(char),
    /// `${key}` or `${key, 'default'}`.
    Var {
        key_lower: String,
        default: Option<String>,
    },
}

/// A string value from a policy (`Resource`, or a string/ARN condition value),
/// with its policy variables parsed when the version has them.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    raw: String,
    /// `None` when the value has no variables or escapes: it is `raw` itself.
    segments: Option<Vec<Segment>>,
    /// The wildcard pattern of `raw` when `segments` is `None`.
    plain: Vec<PChar>,
}

impl Template {
    /// Parses `raw`; `${…}` is a variable only when `variables` is true.
    pub(crate) fn new(raw: &str, variables: bool) -> Self {
        let segments = if variables && raw.contains("${") {
            Some(parse_segments(raw))
        } else {
            None
        };
        let mut plain = Vec::new();
        if segments.is_none() {
            compile_glob(raw, &mut plain);
        }
        Template {
            raw: raw.to_owned(),
            segments,
            plain,
        }
    }

    /// A value as a `2012-10-17` policy holds it (`${…}` are variables).
    pub fn parse(raw: &str) -> Self {
        Template::new(raw, true)
    }

    /// The value as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether the value holds a policy variable or escape.
    pub fn has_variables(&self) -> bool {
        self.segments.is_some()
    }

    /// The literal value with variables substituted; `None` when a variable has
    /// no value in the request and no default (the value then matches nothing).
    pub(crate) fn literal<'a>(&'a self, ctx: &Context) -> Option<Cow<'a, str>> {
        let Some(segments) = &self.segments else {
            return Some(Cow::Borrowed(&self.raw));
        };
        let mut out = String::with_capacity(self.raw.len());
        for seg in segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Escaped(c) => out.push(*c),
                Segment::Var { key_lower, default } => {
                    out.push_str(lookup(ctx, key_lower, default)?)
                }
            }
        }
        Some(Cow::Owned(out))
    }

    /// The wildcard pattern with variables substituted as literal text; `None`
    /// as for [`Template::literal`].
    pub(crate) fn pattern<'a>(&'a self, ctx: &Context) -> Option<Cow<'a, [PChar]>> {
        let Some(segments) = &self.segments else {
            return Some(Cow::Borrowed(&self.plain));
        };
        let mut out = Vec::with_capacity(self.raw.len());
        for seg in segments {
            match seg {
                Segment::Text(t) => compile_glob(t, &mut out),
                Segment::Escaped(c) => out.push(PChar::Lit(*c)),
                Segment::Var { key_lower, default } => {
                    out.extend(lookup(ctx, key_lower, default)?.chars().map(PChar::Lit));
                }
            }
        }
        Some(Cow::Owned(out))
    }
}

fn lookup<'a>(ctx: &'a Context, key_lower: &str, default: &'a Option<String>) -> Option<&'a str> {
    ctx.get_lower(key_lower)
        .and_then(|v| v.first())
        .map(String::as_str)
        .or(default.as_deref())
}

fn parse_segments(raw: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        text.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + 2 + len];
        rest = &rest[start + 3 + len..];
        let seg = match inner {
            "*" => Segment::Escaped('*'),
            "?" => Segment::Escaped('?'),
            "$" => Segment::Escaped('$'),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((k, d)) => {
                        let d = d.trim();
                        let d = d
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(d);
                        (k.trim(), Some(d.to_owned()))
                    }
                    None => (inner.trim(), None),
                };
                Segment::Var {
                    key_lower: key.to_lowercase(),
                    default,
                }
            }
        };
        if !text.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut text)));
        }
        segments.push(seg);
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pat: &str, text: &str) -> bool {
        let mut p = Vec::new();
        compile_glob(pat, &mut p);
        glob(&p, text)
    }

    fn a(pat: &str, text: &str) -> bool {
        let mut p = Vec::new();
        compile_glob(pat, &mut p);
        arn_like(&p, text)
    }

    #[test]
    fn glob_basics() {
        assert!(g("*", ""));
        assert!(g("*", "anything/at:all"));
        assert!(g("a*c", "abbbc"));
        assert!(g("a*c", "ac"));
        assert!(!g("a*c", "acb"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("scoped_principal:t/*", "scoped_principal:t/user:u"));
        assert!(!g("scoped_principal:t/*", "scoped_principal:tx/user:u"));
        assert!(g("*é?", "aéb"));
        assert!(g("**a**", "xxaxx"));
        assert!(!g("", "a"));
        assert!(g("a*b*c*d", "aXbYcZd"));
    }

    #[test]
    fn arn_like_is_per_component() {
        assert!(a(
            "arn:aws:bedrock:*::foundation-model/*",
            "arn:aws:bedrock:us-east-1::foundation-model/x-v1:0"
        ));
        assert!(a(
            "arn:aws:bedrock:*::foundation-model/*",
            "arn:aws:bedrock:::foundation-model/x"
        ));
        // `*` in the region component does not swallow the account component.
        assert!(!a(
            "arn:aws:bedrock:*:foundation-model/*",
            "arn:aws:bedrock:us-east-1:123:foundation-model/x"
        ));
        assert!(!a("arn:aws:iam::*", "arn:aws:iam::123:role/x"));
        assert!(a("arn:aws:iam::*:role/x", "arn:aws:iam::123:role/x"));
        assert!(!a("arn:aws:iam::123:role/x", "arn:aws:iam:123:role/x"));
    }

    #[test]
    fn variables_and_escapes() {
        let mut ctx = Context::new();
        ctx.insert("aws:username", "alice");
        let t = Template::new("home/${aws:username}/${*}", true);
        assert_eq!(t.literal(&ctx).unwrap(), "home/alice/*");
        let p = t.pattern(&ctx).unwrap();
        assert!(glob(&p, "home/alice/*"));
        assert!(!glob(&p, "home/alice/x"));
        let missing = Template::new("${aws:userid}", true);
        assert!(missing.literal(&ctx).is_none());
        let dflt = Template::new("${aws:userid, 'nobody'}", true);
        assert_eq!(dflt.literal(&ctx).unwrap(), "nobody");
        let old = Template::new("home/${aws:username}", false);
        assert_eq!(old.literal(&ctx).unwrap(), "home/${aws:username}");
    }
}
