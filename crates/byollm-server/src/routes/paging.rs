//! The `limit` and `cursor` query of a paged list; anything else in the query
//! is a 400 naming it (the domain checks the values, [`byollm_core::service::page`]).

use byollm_api::types::PageQuery;

use crate::error::ApiError;
use crate::extract::query_pairs;

/// Parses a paged list's raw query string.
pub fn page_query(raw: Option<&str>) -> Result<PageQuery, ApiError> {
    let mut query = PageQuery::default();
    for (k, v) in query_pairs(raw)? {
        let v = (!v.is_empty()).then_some(v);
        match k.as_str() {
            "cursor" => query.cursor = v,
            "limit" => {
                let limit =
                    v.as_deref().unwrap_or("").parse::<u32>().map_err(|_| {
                        ApiError::invalid("limit", "expected a whole number per page")
                    })?;
                query.limit = Some(limit);
            }
            _ => {
                return Err(ApiError::invalid(
                    k,
                    "unknown query parameter; expected limit or cursor",
                ));
            }
        }
    }
    Ok(query)
}
