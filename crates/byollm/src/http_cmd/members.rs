//! `byollm members …` and `byollm api-keys …`: members with their roles and
//! one-time invitations, and API keys with their expiry and last use.
//!
//! Lists show one page (`--limit`, `--cursor`); `--all` follows the cursor to
//! the end. A new key or invitation code is printed exactly once, on stdout (the
//! note about it on stderr), as the API shows it once.

use anyhow::Context as _;
use byollm_api::client::Client;
use byollm_api::types::{
    ApiKeyCreate, ApiKeyList, InvitationIssued, Member, MemberCreate, MemberList, MemberPatch,
    PageQuery, Role,
};
use clap::{Args, Subcommand};

use super::table::Table;
use crate::out;

/// Which page(s) of a list to show.
#[derive(Debug, Args)]
pub struct Paging {
    /// Follow the cursor and list every page.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// At most N per page (1 to 1000; default 100).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Start at this cursor (a previous page's `next_cursor`).
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
}

impl Paging {
    fn query(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

/// `byollm members …`.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List members.
    List(Paging),
    /// Add a member; their one-time invitation code is printed once (they run
    /// `byollm login --server URL --invite CODE`).
    Add {
        /// Their email.
        #[arg(long)]
        email: String,
        /// member, admin or owner.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Change a member's role (only owners make or unmake owners).
    SetRole {
        /// The member's uid.
        uid: String,
        /// member, admin or owner.
        #[arg(long)]
        role: String,
    },
    /// Re-issue a member's invitation: a new code, printed once; the old one dies.
    Invite {
        /// The member's uid.
        uid: String,
    },
    /// Revoke a member's invitation (its code redeems nothing any more).
    RevokeInvitation {
        /// The member's uid.
        uid: String,
    },
    /// Remove a member (their runs are cancelled).
    Remove {
        /// The member's uid.
        uid: String,
    },
}

/// `byollm api-keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys (never the keys themselves: id, name, owner, prefix, expiry,
    /// last use).
    List(Paging),
    /// Create a key; it is printed once.
    Create {
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// A key for this named agent (admins).
        #[arg(long, value_name = "UID")]
        agent: Option<String>,
        /// When it stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z; default:
        /// the team's maximum key lifetime, if any).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).with_context(|| format!("--role {role}: expected member, admin or owner"))
}

fn print_invitation(who: &str, inv: &InvitationIssued) {
    out::err(&format!(
        "invitation for {who}, valid until {}; it is shown once and works once. \
         Give it to them privately; they run `byollm login --server URL --invite CODE`:",
        inv.expires_at
    ));
    out::line(inv.code.expose());
}

async fn member_pages(c: &Client, paging: &Paging) -> anyhow::Result<MemberList> {
    let mut q = paging.query();
    let mut list = c.members_page(&q).await?;
    while paging.all
        && let Some(next) = list.next_cursor.take()
    {
        q.cursor = Some(next);
        let page = c.members_page(&q).await?;
        list.members.extend(page.members);
        list.next_cursor = page.next_cursor;
    }
    Ok(list)
}

async fn key_pages(c: &Client, paging: &Paging) -> anyhow::Result<ApiKeyList> {
    let mut q = paging.query();
    let mut list = c.api_keys_page(&q).await?;
    while paging.all
        && let Some(next) = list.next_cursor.take()
    {
        q.cursor = Some(next);
        let page = c.api_keys_page(&q).await?;
        list.api_keys.extend(page.api_keys);
        list.next_cursor = page.next_cursor;
    }
    Ok(list)
}

fn more(next: Option<&String>) {
    if let Some(next) = next {
        out::err(&format!("more: --cursor {next} (or --all)"));
    }
}

fn member_table(list: &[Member]) {
    let mut t = Table::new(&["uid", "email", "role"]);
    for m in list {
        t.row([m.uid.as_str(), &m.email, m.role.as_str()]);
    }
    t.print();
}

/// Runs a `members` command.
pub async fn members(c: &Client, json: bool, cmd: MembersCommand) -> anyhow::Result<()> {
    match cmd {
        MembersCommand::List(paging) => {
            let list = member_pages(c, &paging).await?;
            if json {
                return out::json(&list);
            }
            member_table(&list.members);
            more(list.next_cursor.as_ref());
        }
        MembersCommand::Add { email, role } => {
            let role = parse_role(&role)?;
            let created = c.create_member(&MemberCreate { email, role }).await?;
            if json {
                return out::json(&created);
            }
            member_table(std::slice::from_ref(&created.member));
            print_invitation(&created.member.email, &created.invitation);
        }
        MembersCommand::SetRole { uid, role } => {
            let role = parse_role(&role)?;
            let m = c.patch_member(&uid, &MemberPatch { role }).await?;
            if json {
                return out::json(&m);
            }
            member_table(&[m]);
        }
        MembersCommand::Invite { uid } => {
            let inv = c.reissue_invitation(&uid).await?;
            if json {
                return out::json(&inv);
            }
            print_invitation(&format!("member {uid}"), &inv);
        }
        MembersCommand::RevokeInvitation { uid } => {
            c.revoke_invitation(&uid).await?;
            out::err(&format!("revoked the invitation of member {uid}"));
        }
        MembersCommand::Remove { uid } => {
            c.delete_member(&uid).await?;
            out::err(&format!("removed member {uid}"));
        }
    }
    Ok(())
}

/// Runs an `api-keys` command.
pub async fn keys(c: &Client, json: bool, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List(paging) => {
            let list = key_pages(c, &paging).await?;
            if json {
                return out::json(&list);
            }
            let mut t = Table::new(&[
                "id",
                "name",
                "owner",
                "prefix",
                "created_at",
                "expires_at",
                "last_used_at",
            ]);
            for k in &list.api_keys {
                t.row([
                    k.id.as_str(),
                    &k.name,
                    &format!("{} {}", k.owner.actor_type.as_str(), k.owner.uid),
                    &k.prefix,
                    &k.created_at,
                    k.expires_at.as_deref().unwrap_or("never"),
                    k.last_used_at.as_deref().unwrap_or("-"),
                ]);
            }
            t.print();
            more(list.next_cursor.as_ref());
        }
        KeysCommand::Create {
            name,
            agent,
            expires_at,
        } => {
            let created = c
                .create_api_key(&ApiKeyCreate {
                    name,
                    agent_uid: agent,
                    expires_at,
                })
                .await?;
            if json {
                return out::json(&created);
            }
            out::err(&format!(
                "created key {} for {} {} (expires: {}); it is shown once, store it now:",
                created.id,
                created.owner.actor_type.as_str(),
                created.owner.uid,
                created.expires_at.as_deref().unwrap_or("never")
            ));
            out::line(created.key.expose());
        }
        KeysCommand::Revoke { id } => {
            c.revoke_api_key(&id).await?;
            out::err(&format!("revoked key {id}"));
        }
    }
    Ok(())
}
