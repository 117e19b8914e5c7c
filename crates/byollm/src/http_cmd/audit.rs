//! `byollm audit`: the team's admin audit trail (admins), every page oldest
//! first, or one page with `--limit`/`--cursor`; a table, or the server's JSON
//! with `--json`.

use byollm_api::client::Client;
use byollm_api::types::AuditQuery;
use clap::Args;

use super::table::Table;
use crate::out;

/// `byollm audit` filters.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// One action, e.g. `member.create`, `settings.update`.
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// One actor (member or agent uid).
    #[arg(long, value_name = "UID")]
    actor: Option<String>,
    /// One target, e.g. `member:<uid>`, `agent:<uid>`, `team`.
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Show one page of at most N events (1 to 1000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Show the page starting at this cursor (a previous page's `next_cursor`).
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

/// Prints the events.
pub async fn run(c: &Client, json: bool, a: AuditArgs) -> anyhow::Result<()> {
    let one_page = a.limit.is_some() || a.cursor.is_some();
    let q = AuditQuery {
        action: a.action,
        actor: a.actor,
        target: a.target,
        since: a.since,
        until: a.until,
        limit: a.limit,
        cursor: a.cursor,
    };
    let page = if one_page {
        c.audit(&q).await?
    } else {
        c.audit_all(&q).await?
    };
    if json {
        return out::json(&page);
    }
    let mut t = Table::new(&["at", "actor", "action", "target", "request", "changes"]);
    for e in &page.events {
        t.row([
            e.at.as_str(),
            &format!("{}:{}", e.actor_type, e.actor_uid),
            e.action.as_str(),
            e.target.as_str(),
            e.request_id.as_deref().unwrap_or("-"),
            &e.changes.to_string(),
        ]);
    }
    t.print();
    if let Some(c) = &page.next_cursor {
        out::line(&format!("next page: --cursor {c}"));
    }
    Ok(())
}
