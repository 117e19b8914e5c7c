//! Usage: the caller's credits in the three buckets (a member sees their own,
//! an admin the team's, as the API decides), the three buckets per UTC day
//! (inference from the gateway requests, platform and compute from the
//! report's run days; an SVG stacked bar chart with the same numbers as a
//! text table beside it), per model and route, and per member and agent, a
//! page of requests with their routes (paged with the API's cursors), and
//! every request as a CSV download. The overview shows the buckets and the
//! days of this calendar month (UTC).
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

use byollm_api::types::{RunCreditsDay, USAGE_MAX_LIMIT, UsageQuery, UsageRequest};

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

/// One UTC day's credits: its requests and inference credits, its runs and
/// their platform and compute credits.
#[derive(Debug, Default, Clone, Copy)]
struct Day {
    requests: u64,
    inference: f64,
    runs: u64,
    platform: f64,
    compute: f64,
}

impl Day {
    fn total(&self) -> f64 {
        self.inference + self.platform + self.compute
    }
}

/// The days of `requests` and `runs` whose date starts with `prefix` (`""`:
/// every day), oldest first.
fn days(requests: &[UsageRequest], runs: &[RunCreditsDay], prefix: &str) -> BTreeMap<String, Day> {
    let mut out: BTreeMap<String, Day> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.created_at.starts_with(prefix)) {
        let d = out
            .entry(r.created_at.get(..10).unwrap_or_default().to_owned())
            .or_default();
        d.requests += 1;
        d.inference += r.credits;
    }
    for r in runs.iter().filter(|r| r.day.starts_with(prefix)) {
        let d = out.entry(r.day.clone()).or_default();
        d.runs += r.runs;
        d.platform += r.platform;
        d.compute += r.compute;
    }
    out
}

fn days_table(id: &str, caption: &str, days: &BTreeMap<String, Day>) -> String {
    let body: String = days
        .iter()
        .map(|(k, d)| {
            format!(
                r#"<tr><th scope="row"><code>{}</code></th><td>{}</td><td>{:.4}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>"#,
                esc(k),
                d.requests,
                d.inference,
                d.runs,
                d.platform,
                d.compute
            )
        })
        .collect();
    format!(
        r#"<table id="{id}"><caption>{caption}</caption><thead><tr><th scope="col">Day (UTC)</th><th scope="col">Requests</th><th scope="col">Inference credits</th><th scope="col">Runs</th><th scope="col">Platform credits</th><th scope="col">Compute credits</th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

/// The chart's key: a swatch per bucket (the caption's words say the same).
const LEGEND: &str = r#"<svg aria-hidden="true" focusable="false" width="270" height="14" viewBox="0 0 270 14"><rect x="0" y="2" width="10" height="10" class="bar"></rect><text x="14" y="11">inference</text><rect x="90" y="2" width="10" height="10" class="bar platform"></rect><text x="104" y="11">platform</text><rect x="176" y="2" width="10" height="10" class="bar compute"></rect><text x="190" y="11">compute</text></svg>"#;

/// Credits per day, one bar per day stacked by bucket (inference, platform,
/// compute); `aria-hidden`: the table with it says the same to a screen
/// reader.
fn chart(days: &BTreeMap<String, Day>) -> String {
    if days.is_empty() {
        return String::new();
    }
    let max = days.values().map(Day::total).fold(0.0_f64, f64::max);
    let (bar, gap, height) = (24.0_f64, 8.0_f64, 120.0_f64);
    let scale = |c: f64| if max > 0.0 { (c / max) * height } else { 0.0 };
    let bars: String = days
        .iter()
        .enumerate()
        .map(|(i, (day, d))| {
            #[expect(
                clippy::cast_precision_loss,
                reason = "a bar's position: at most SUMMARY_PAGES * 1000 days, far below 2^52"
            )]
            let x = i as f64 * (bar + gap);
            let mut top = height;
            let mut out = String::new();
            for (class, name, c) in [
                ("bar", "inference", d.inference),
                ("bar platform", "platform", d.platform),
                ("bar compute", "compute", d.compute),
            ] {
                let h = scale(c);
                if h <= 0.0 {
                    continue;
                }
                top -= h;
                out.push_str(&format!(
                    r#"<rect x="{x:.1}" y="{top:.1}" width="{bar}" height="{h:.1}" class="{class}"><title>{day}: {name} {c:.4}</title></rect>"#,
                    day = esc(day),
                ));
            }
            out
        })
        .collect();
    #[expect(
        clippy::cast_precision_loss,
        reason = "the chart's width: a count of days"
    )]
    let width = days.len() as f64 * (bar + gap);
    format!(
        r#"<figure class="chart"><svg id="usage-chart" aria-hidden="true" focusable="false" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">{bars}</svg><figcaption>{LEGEND} Credits per day, stacked (the numbers are in the table)</figcaption></figure>"#
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
    let days = days(&all, &report.run_days, "");
    let summaries = if days.is_empty() {
        String::new()
    } else {
        format!(
            r#"<h2>Over time</h2><div class="chart-and-table">{chart}{days}</div>
{models}{who}{more}"#,
            chart = chart(&days),
            days = days_table("usage-days", "Credits per day", &days),
            models = if all.is_empty() {
                String::new()
            } else {
                format!(
                    "<h2>Per model and route</h2>{}",
                    summary_table(
                        "usage-models",
                        "Per model and route",
                        "Model / route",
                        &by(&all, |r| format!("{} / {}", r.model, r.route)),
                    )
                )
            },
            who = if all.is_empty() {
                String::new()
            } else {
                format!(
                    "<h2>Per member and agent</h2>{}",
                    summary_table(
                        "usage-principals",
                        "Per member and agent",
                        "Member or agent",
                        &by(&all, |r| r.principal.clone()),
                    )
                )
            },
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

/// The overview's credits: the three buckets for this calendar month (UTC)
/// — inference from the month's requests, platform and compute from the runs
/// that started in it —, the month's credits per day (chart and table) and
/// the last requests with their routes.
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
    let days = days(&all, &report.run_days, &month);
    let sum = |f: fn(&Day) -> f64| days.values().map(f).sum::<f64>();
    let (i, p, c) = (
        sum(|d| d.inference),
        sum(|d| d.platform),
        sum(|d| d.compute),
    );
    let over_time = if days.is_empty() {
        "<p>No requests or runs this month yet.</p>".to_owned()
    } else {
        format!(
            r#"<div class="chart-and-table">{}{}</div>"#,
            chart(&days),
            days_table(
                "overview-days",
                &format!("Credits per day, {month} (UTC)"),
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
    Ok(format!(
        r#"<section aria-labelledby="credits-h"><h2 id="credits-h">Credits this month</h2>
<table id="overview-buckets"><caption>Credits by bucket this month, {month} (UTC; every request and run you can see)</caption><thead><tr><th scope="col">Inference</th><th scope="col">Platform</th><th scope="col">Compute</th></tr></thead><tbody><tr><td id="month-inference">{i:.4}</td><td id="month-platform">{p:.4}</td><td id="month-compute">{c:.4}</td></tr></tbody></table>
{over_time}{last}<p><a href="{USAGE}">All usage</a></p></section>"#,
    ))
}
