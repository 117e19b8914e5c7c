//! The one paging helper of every list (members, API keys; agents and runs use
//! it too): `limit` (1 to [`PAGE_MAX_LIMIT`], default [`PAGE_DEFAULT_LIMIT`];
//! outside the range a 400 naming `limit`) and an opaque `cursor`.
//!
//! Invariants: lists are ordered by `(created_at, id)`, both immutable, so a
//! walk from the first page following `next_cursor` lists every item that
//! existed when it began and still exists exactly once, whatever is added or
//! removed meanwhile. The cursor is base64url of `v1:<created_at>:<id>`; the
//! version tag lets its format change without old cursors being misread, and a
//! cursor that does not decode is a 400 naming `cursor`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use byollm_api::types::{PAGE_DEFAULT_LIMIT, PAGE_MAX_LIMIT};

use crate::validate::{self, FieldError};

/// The version tag inside a cursor.
const CURSOR_VERSION: &str = "v1";

/// Where a page starts: after the item with this `(created_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last listed item's creation time, Unix seconds.
    pub created_at: i64,
    /// The last listed item's id (or uid).
    pub id: String,
}

impl Cursor {
    /// The opaque wire form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}:{}:{}", self.created_at, self.id))
    }

    /// The cursor a wire form names, or a 400 naming `cursor`.
    pub fn decode(text: &str) -> Result<Cursor, FieldError> {
        let bad = || {
            FieldError::new(
                "cursor",
                "not a cursor of this API; pass a `next_cursor` from a previous page unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ':');
        let (Some(CURSOR_VERSION), Some(created_at), Some(id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let created_at = created_at.parse::<i64>().map_err(|_| bad())?;
        validate::uid("cursor", id).map_err(|_| bad())?;
        Ok(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// A parsed page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Most items on the page.
    pub limit: u32,
    /// Where it starts (`None`: the first page).
    pub cursor: Option<Cursor>,
}

impl Page {
    /// The page a query asks for, or a 400 naming `limit` or `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Page, FieldError> {
        let limit = match limit {
            None => PAGE_DEFAULT_LIMIT,
            Some(l) if (1..=PAGE_MAX_LIMIT).contains(&l) => l,
            Some(l) => {
                return Err(FieldError::new(
                    "limit",
                    format!("{l} is out of range; expected 1 to {PAGE_MAX_LIMIT}"),
                ));
            }
        };
        let cursor = cursor.map(Cursor::decode).transpose()?;
        Ok(Page { limit, cursor })
    }

    /// How many rows to fetch: one more than the page shows, to know whether
    /// there is a next page.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`], in order) to the page and
    /// returns the next page's cursor, if there is a next page; `key` gives a
    /// row's `(created_at, id)`.
    pub fn finish<T>(
        &self,
        rows: &mut Vec<T>,
        key: impl Fn(&T) -> (i64, String),
    ) -> Option<String> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() <= limit {
            return None;
        }
        rows.truncate(limit);
        rows.last().map(|last| {
            let (created_at, id) = key(last);
            Cursor { created_at, id }.encode()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_checked_and_round_trip() {
        assert_eq!(Page::parse(None, None).unwrap().limit, PAGE_DEFAULT_LIMIT);
        assert_eq!(Page::parse(Some(0), None).unwrap_err().field, "limit");
        assert_eq!(Page::parse(Some(1_001), None).unwrap_err().field, "limit");
        assert_eq!(Page::parse(None, Some("nope")).unwrap_err().field, "cursor");
        for bad in [
            "",
            "!!",
            "djE6eDp1c2VfYQ", // v1:x:use_a (time not a number)
            &URL_SAFE_NO_PAD.encode("v2:1:use_a"),
            &URL_SAFE_NO_PAD.encode("v1:1:USE A"),
            &URL_SAFE_NO_PAD.encode("v1:1"),
        ] {
            assert_eq!(Cursor::decode(bad).unwrap_err().field, "cursor", "{bad}");
        }
        let c = Cursor {
            created_at: 1_800_000_000,
            id: "key_abc".into(),
        };
        let p = Page::parse(Some(2), Some(&c.encode())).unwrap();
        assert_eq!(p.cursor, Some(c));
        let mut rows = vec![1, 2, 3];
        let next = p.finish(&mut rows, |r| (i64::from(*r), format!("id{r}")));
        assert_eq!(rows, [1, 2]);
        let next = Cursor::decode(&next.unwrap()).unwrap();
        assert_eq!((next.created_at, next.id.as_str()), (2, "id2"));
        let mut last = vec![1, 2];
        assert_eq!(
            p.finish(&mut last, |r| (i64::from(*r), String::new())),
            None
        );
    }
}
