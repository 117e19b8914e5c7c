//! The `limit` and `cursor` query of a paged list; anything else in the query
//! is a 400 naming it (the domain checks the values, [`byollm_core::service::page`]).

use byollm_api::types::PageQuery;

use crate::error::ApiError;

/// Parses a paged list's raw query string.
pub fn page_query(raw: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut query = PageQuery::default();
    for pair in raw.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = (!v.is_empty()).then(|| v.to_owned());
        match k {
            "cursor" => query.cursor = v,
            "limit" => {
                let limit =
                    v.as_deref().unwrap_or("").parse::<u32>().map_err(|_| {
                        ApiError::invalid("limit", "expected a whole number per page")
                    })?;
                query.limit = Some(limit);
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter; expected limit or cursor",
                ));
            }
        }
    }
    Ok(query)
}
