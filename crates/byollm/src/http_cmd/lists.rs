//! `byollm agents list` and `byollm runs list`: one page by default (`--limit`,
//! `--cursor`; the next page's cursor goes to stderr), every page with `--all`,
//! and each list's filters.

use anyhow::Context as _;
use byollm_api::client::Client;
use byollm_api::types::{AgentList, AgentListQuery, RunList, RunListQuery, RunState};
use clap::Args;

use super::table::Table;
use crate::out;

/// Paging flags shared by the lists.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (1 to 1000; the server's default is 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Start at this page (a previous page's next cursor).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow the cursor to the last page and show every item.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
}

/// `byollm agents list` flags.
#[derive(Debug, Args)]
pub struct AgentListArgs {
    #[command(flatten)]
    page: PageArgs,
    /// Only agents whose name starts with this (case-insensitive).
    #[arg(long, value_name = "PREFIX")]
    name_prefix: Option<String>,
    /// Only available (on) or unavailable (off) agents.
    #[arg(long, value_name = "on|off", value_parser = super::settings::parse_switch)]
    available: Option<bool>,
}

/// `byollm runs list` flags.
#[derive(Debug, Args)]
pub struct RunListArgs {
    #[command(flatten)]
    page: PageArgs,
    /// Only runs in this state (queued, running, finished, failed, cancelled, expired).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Only runs acting as user:<uid> or service_account:<uid>.
    #[arg(long, value_name = "TYPE:UID")]
    actor: Option<String>,
    /// Only runs created at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only runs created before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

fn note_next(next: Option<&str>) {
    if let Some(c) = next {
        out::err(&format!(
            "more: pass --cursor {c} for the next page, or --all"
        ));
    }
}

/// Lists agents: one page, or every page with `--all`.
pub async fn agents(
    c: &Client,
    json: bool,
    a: AgentListArgs,
    table: impl Fn(&AgentList) -> Table,
) -> anyhow::Result<()> {
    let mut q = AgentListQuery {
        limit: a.page.limit,
        cursor: a.page.cursor,
        name_prefix: a.name_prefix,
        available: a.available,
    };
    let mut list = c.agents_page(&q).await?;
    while a.page.all
        && let Some(cursor) = list.next_cursor.take()
    {
        q.cursor = Some(cursor);
        let page = c.agents_page(&q).await?;
        list.agents.extend(page.agents);
        list.next_cursor = page.next_cursor;
    }
    if json {
        return out::json(&list);
    }
    table(&list).print();
    note_next(list.next_cursor.as_deref());
    Ok(())
}

/// Lists runs: one page, or every page with `--all`.
pub async fn runs(c: &Client, json: bool, a: RunListArgs) -> anyhow::Result<()> {
    let state = a
        .state
        .as_deref()
        .map(|s| {
            RunState::parse(s).with_context(|| {
                format!(
                    "--state {s}: expected queued, running, finished, failed, cancelled or expired"
                )
            })
        })
        .transpose()?;
    let q = RunListQuery {
        limit: a.page.limit,
        cursor: a.page.cursor,
        state,
        actor: a.actor,
        since: a.since,
        until: a.until,
    };
    let list = if a.page.all {
        c.runs_all(&q).await?
    } else {
        c.runs_page(&q).await?
    };
    if json {
        return out::json(&list);
    }
    run_list_table(&list).print();
    note_next(list.next_cursor.as_deref());
    Ok(())
}

fn run_list_table(list: &RunList) -> Table {
    let mut t = Table::new(&["run", "state", "actor", "triggered by", "model", "created"]);
    for r in &list.runs {
        t.row([
            r.run_id.as_str(),
            r.state.as_str(),
            &format!("{}:{}", r.actor.actor_type.as_str(), r.actor.uid),
            &format!(
                "{}:{}",
                r.triggered_by.actor_type.as_str(),
                r.triggered_by.uid
            ),
            r.model.as_deref().unwrap_or("-"),
            &r.created_at,
        ]);
    }
    t
}
