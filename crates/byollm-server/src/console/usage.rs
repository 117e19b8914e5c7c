//! Usage: the caller's credits in the three buckets (a member sees their own,
//! an admin the team's, as the API decides), the gateway requests' inference
//! credits per day (an SVG bar chart with the same numbers as a text table
//! beside it), per model and route, and per member and agent, a page of
//! requests with their routes (paged with the API's cursors), and every
//! request as a CSV download.
//!
//! Invariants: every number comes from the API's `usage` operation (the same
//! visibility rules); the summaries read at most [`SUMMARY_PAGES`] pages of
//! [`USAGE_MAX_LIMIT`] requests and say so when there were more; the chart
//! is drawn with SVG attributes (no inline style, which the CSP forbids).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use byollm_api::types::{USAGE_MAX_LIMIT, UsageQuery, UsageRequest};

use super::html::{self, esc};
use super::session::Session;
use super::{USAGE, USAGE_CSV};
use crate::app::AppState;

/// Most pages of requests the summaries and the CSV read.
pub const SUMMARY_PAGES: usize = 100;

/// Every request the filters match (up to [`SUMMARY_PAGES`] pages), and
/// whether there were more.
async fn all_requests(
    state: &AppState,
    s: &Session,
    base: &UsageQuery,
) -> Result<(Vec<UsageRequest>, bool), Response> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..SUMMARY_PAGES {
        let q = UsageQuery {
            limit: Some(USAGE_MAX_LIMIT),
            cursor: cursor.take(),
            ..base.clone()
        };
        let page = state
            .core
            .usage(&s.principal, q)
            .await
            .map_err(|e| html::core_error(e, Some(s)))?;
        out.extend(page.requests);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((out, false)),
        }
    }
    Ok((out, true))
}

fn filters(q: Option<&str>) -> UsageQuery {
    UsageQuery {
        member_uid: html::query_value(q, "member_uid"),
        agent_uid: html::query_value(q, "agent_uid"),
        ..UsageQuery::default()
    }
}

/// Sums credits and counts requests by a key.
fn by<F: Fn(&UsageRequest) -> String>(
    requests: &[UsageRequest],
    key: F,
) -> BTreeMap<String, (u64, f64)> {
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for r in requests {
        let e = out.entry(key(r)).or_default();
        e.0 += 1;
        e.1 += r.credits;
    }
    out
}

fn summary_table(
    id: &str,
    caption: &str,
    head: &str,
    rows: &BTreeMap<String, (u64, f64)>,
) -> String {
    let body: String = rows
        .iter()
        .map(|(k, (n, c))| {
            format!(
                r#"<tr><th scope="row"><code>{}</code></th><td>{n}</td><td>{c:.4}</td></tr>"#,
                esc(k)
            )
        })
        .collect();
    format!(
        r#"<table id="{id}"><caption>{caption}</caption><thead><tr><th scope="col">{head}</th><th scope="col">Requests</th><th scope="col">Inference credits</th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

/// Inference credits per day: SVG bars (`aria-hidden`: the table with it
/// says the same to a screen reader).
fn chart(days: &BTreeMap<String, (u64, f64)>) -> String {
    if days.is_empty() {
        return String::new();
    }
    let max = days.values().map(|(_, c)| *c).fold(0.0_f64, f64::max);
    let (bar, gap, height) = (24.0_f64, 8.0_f64, 120.0_f64);
    let bars: String = days
        .iter()
        .enumerate()
        .map(|(i, (day, (_, c)))| {
            let h = if max > 0.0 { (c / max) * height } else { 0.0 };
            #[expect(
                clippy::cast_precision_loss,
                reason = "a bar's position: at most SUMMARY_PAGES * 1000 days, far below 2^52"
            )]
            let x = i as f64 * (bar + gap);
            format!(
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar}" height="{h:.1}" class="bar"><title>{day}: {c:.4}</title></rect>"#,
                y = height - h,
                day = esc(day),
            )
        })
        .collect();
    #[expect(
        clippy::cast_precision_loss,
        reason = "the chart's width: a count of days"
    )]
    let width = days.len() as f64 * (bar + gap);
    format!(
        r#"<figure class="chart"><svg id="usage-chart" aria-hidden="true" focusable="false" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">{bars}</svg><figcaption>Inference credits per day (the numbers are in the table)</figcaption></figure>"#
    )
}

/// `GET /console/usage[?member_uid=…|agent_uid=…][&cursor=…]`.
pub async fn show(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let base = filters(q.as_deref());
    let page_query = UsageQuery {
        cursor: html::query_value(q.as_deref(), "cursor"),
        ..base.clone()
    };
    let report = match state.core.usage(&s.principal, page_query).await {
        Ok(r) => r,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let (all, more) = match all_requests(&state, &s, &base).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let b = report.buckets;
    let rows: String = report
        .requests
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{at}</td><td><code>{who}</code></td><td>{model}</td><td>{route}</td>\
                 <td>{input}</td><td>{output}</td><td>{credits:.4}</td></tr>",
                at = esc(&r.created_at),
                who = esc(&r.principal),
                model = esc(&r.model),
                route = esc(&r.route),
                input = r.input_tokens,
                output = r.output_tokens,
                credits = r.credits,
            )
        })
        .collect();
    let requests = if report.requests.is_empty() {
        "<p>No requests yet.</p>".to_owned()
    } else {
        format!(
            r#"<table><caption>Requests</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Model</th><th scope="col">Route</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">Credits</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let keep = [
        ("member_uid", base.member_uid.clone()),
        ("agent_uid", base.agent_uid.clone()),
    ];
    let next = html::next_page(USAGE, &keep, report.next_cursor.as_deref());
    let days = by(&all, |r| {
        r.created_at.get(..10).unwrap_or_default().to_owned()
    });
    let summaries = if all.is_empty() {
        String::new()
    } else {
        format!(
            r#"<h2>Over time</h2><div class="chart-and-table">{chart}{days}</div>
<h2>Per model and route</h2>{models}
<h2>Per member and agent</h2>{who}{more}"#,
            chart = chart(&days),
            days = summary_table("usage-days", "Inference credits per day", "Day", &days),
            models = summary_table(
                "usage-models",
                "Per model and route",
                "Model / route",
                &by(&all, |r| format!("{} / {}", r.model, r.route)),
            ),
            who = summary_table(
                "usage-principals",
                "Per member and agent",
                "Member or agent",
                &by(&all, |r| r.principal.clone()),
            ),
            more = if more {
                r#"<p class="hint">These summaries cover the first 100 pages of requests.</p>"#
            } else {
                ""
            },
        )
    };
    let csv_query: String = keep
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|v| {
                let v =
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
                format!("{k}={}&amp;", esc(&v.to_string()))
            })
        })
        .collect();
    let scope = if s.principal.is_admin() {
        "the team's"
    } else {
        "your"
    };
    let body = format!(
        r#"<table><caption>Credits ({scope})</caption><thead><tr><th scope="col">Bucket</th><th scope="col">Credits</th></tr></thead><tbody>
<tr><th scope="row">Inference (direct APIs; Bedrock is billed by AWS)</th><td id="credits-inference">{inference:.4}</td></tr>
<tr><th scope="row">Platform (per cloud run)</th><td id="credits-platform">{platform:.4}</td></tr>
<tr><th scope="row">Compute (per started minute of a cloud run)</th><td id="credits-compute">{compute:.4}</td></tr>
</tbody></table>{summaries}<h2>Requests</h2><p><a href="{USAGE_CSV}?{csv_query}" download="usage.csv" id="usage-csv">Download every request as CSV</a></p>{requests}{next}"#,
        inference = b.inference,
        platform = b.platform,
        compute = b.compute,
    );
    html::page(StatusCode::OK, "Usage", Some(&s), &body)
}

/// A CSV field: quoted when it holds a comma, a quote or a line break, and
/// prefixed with `'` when a spreadsheet would read it as a formula.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// `GET /console/usage/requests.csv`: every request the filters match, as
/// `text/csv`, an attachment.
pub async fn csv(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let (all, _) = match all_requests(&state, &s, &filters(q.as_deref())).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let mut out = String::from(
        "id,created_at,principal,run_id,model,route,input_tokens,output_tokens,credits\r\n",
    );
    for r in &all {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.6}\r\n",
            csv_field(&r.id),
            csv_field(&r.created_at),
            csv_field(&r.principal),
            csv_field(r.run_id.as_deref().unwrap_or("")),
            csv_field(&r.model),
            csv_field(&r.route),
            r.input_tokens,
            r.output_tokens,
            r.credits,
        ));
    }
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"usage.csv\""),
        ],
        out,
    )
        .into_response()
}

/// The overview's credits: the three buckets (as the API totals them, for
/// every request and run the caller may see), this month's inference credits
/// per day (chart and table) and the last requests with their routes.
pub async fn overview_section(state: &AppState, s: &Session) -> Result<String, Response> {
    let report = state
        .core
        .usage(&s.principal, UsageQuery::default())
        .await
        .map_err(|e| html::core_error(e, Some(s)))?;
    let (all, _) = all_requests(state, s, &UsageQuery::default()).await?;
    let month = byollm_api::clock::rfc3339(state.core.clock().now())
        .get(..7)
        .unwrap_or_default()
        .to_owned();
    let this_month: Vec<UsageRequest> = all
        .iter()
        .filter(|r| r.created_at.starts_with(&month))
        .cloned()
        .collect();
    let days = by(&this_month, |r| {
        r.created_at.get(..10).unwrap_or_default().to_owned()
    });
    let over_time = if days.is_empty() {
        "<p>No requests this month yet.</p>".to_owned()
    } else {
        format!(
            r#"<div class="chart-and-table">{}{}</div>"#,
            chart(&days),
            summary_table(
                "overview-days",
                &format!("Inference credits per day, {month}"),
                "Day",
                &days
            )
        )
    };
    let last: String = all
        .iter()
        .rev()
        .take(5)
        .map(|r| {
            format!(
                "<tr><td>{at}</td><td>{model}</td><td><code>{route}</code></td><td>{credits:.4}</td></tr>",
                at = esc(&r.created_at),
                model = esc(&r.model),
                route = esc(&r.route),
                credits = r.credits,
            )
        })
        .collect();
    let last = if last.is_empty() {
        String::new()
    } else {
        format!(
            r#"<table id="overview-last"><caption>The last requests and their routes</caption><thead><tr><th scope="col">When</th><th scope="col">Model</th><th scope="col">Route</th><th scope="col">Credits</th></tr></thead><tbody>{last}</tbody></table>"#
        )
    };
    let b = report.buckets;
    Ok(format!(
        r#"<section aria-labelledby="credits-h"><h2 id="credits-h">Credits</h2>
<table id="overview-buckets"><caption>Credits by bucket (every request and run you can see)</caption><thead><tr><th scope="col">Inference</th><th scope="col">Platform</th><th scope="col">Compute</th></tr></thead><tbody><tr><td>{i:.4}</td><td>{p:.4}</td><td>{c:.4}</td></tr></tbody></table>
{over_time}{last}<p><a href="{USAGE}">All usage</a></p></section>"#,
        i = b.inference,
        p = b.platform,
        c = b.compute,
    ))
}
