//! What the doctor last found per model, kept on this machine so `byollm
//! models` can mark a route whose permissions the doctor found missing.
//!
//! `byollm aws doctor` runs client-side; after each walk it records, for the
//! server, team and actor it checked, each model's verdict (ok, or failed and
//! why, with the profile called) and the time. A later walk replaces the
//! verdicts of the models it checked, so a healthy doctor clears the marks.
//!
//! The file is `verdicts.json` in `$BYOLLM_CONFIG_DIR` when set (the CLI's own
//! directory, next to `byollm login`'s credentials), else
//! `$XDG_STATE_HOME/byollm/`, else `~/.local/state/byollm/`.
//!
//! Invariants: nothing secret is stored (server URL, uids, model ids, cause
//! codes, times); a file that cannot be read or written never fails a command
//! (the doctor warns, `models` shows no marks).

use std::path::PathBuf;

use anyhow::Context as _;
use byollm_doctor::{Cause, Report, Status};
use serde::{Deserialize, Serialize};

/// One model's last verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVerdict {
    /// The catalog id.
    pub model: String,
    /// The profiles whose call failed for missing permissions (empty: none).
    pub permission_missing: Vec<String>,
    /// When the doctor checked it (RFC 3339).
    pub checked_at: String,
}

/// The verdicts for one server, team and actor (`user:<uid>`,
/// `service_account:<uid>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    server: String,
    team: String,
    actor: String,
    models: Vec<ModelVerdict>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    entries: Vec<Entry>,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the CLI's configuration: where its state directory is"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The file's path (module docs), if a home can be found.
fn path() -> Option<PathBuf> {
    if let Some(dir) = env("BYOLLM_CONFIG_DIR") {
        return Some(PathBuf::from(dir).join("verdicts.json"));
    }
    let base = match env("XDG_STATE_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env("HOME")?).join(".local").join("state"),
    };
    Some(base.join("byollm").join("verdicts.json"))
}

fn read(path: &std::path::Path) -> File {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The server as a key: without a trailing slash.
fn server_key(server: &str) -> &str {
    server.trim_end_matches('/')
}

/// Records a doctor's per-model verdicts for `server`, `team` and `actor`,
/// taken at `at` (RFC 3339). Models the report did not check keep theirs.
pub fn record(
    server: &str,
    team: &str,
    actor: &str,
    report: &Report,
    at: &str,
) -> anyhow::Result<()> {
    let path = path().context("no directory for the doctor's verdicts; set BYOLLM_CONFIG_DIR")?;
    record_in(&path, server, team, actor, report, at)
}

fn record_in(
    path: &std::path::Path,
    server: &str,
    team: &str,
    actor: &str,
    report: &Report,
    at: &str,
) -> anyhow::Result<()> {
    let mut checked: Vec<ModelVerdict> = Vec::new();
    for m in &report.models {
        if m.status == Status::Skipped {
            continue;
        }
        let i = match checked.iter().position(|v| v.model == m.model) {
            Some(i) => i,
            None => {
                checked.push(ModelVerdict {
                    model: m.model.clone(),
                    permission_missing: vec![],
                    checked_at: at.to_owned(),
                });
                checked.len() - 1
            }
        };
        if m.status == Status::Failed && m.cause == Some(Cause::ModelPermissionMissing) {
            checked[i].permission_missing.push(m.profile.clone());
        }
    }
    if checked.is_empty() {
        return Ok(());
    }
    let mut file = read(path);
    let server = server_key(server);
    let at_entry = file
        .entries
        .iter()
        .position(|e| e.server == server && e.team == team && e.actor == actor);
    let entry = match at_entry {
        Some(i) => &mut file.entries[i],
        None => {
            file.entries.push(Entry {
                server: server.to_owned(),
                team: team.to_owned(),
                actor: actor.to_owned(),
                models: vec![],
            });
            let last = file.entries.len() - 1;
            &mut file.entries[last]
        }
    };
    entry
        .models
        .retain(|old| !checked.iter().any(|v| v.model == old.model));
    entry.models.extend(checked);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The models whose permissions the doctor last found missing for `server`,
/// `team` and `actor`.
pub fn missing(server: &str, team: &str, actor: &str) -> Vec<ModelVerdict> {
    path()
        .map(|p| missing_in(&p, server, team, actor))
        .unwrap_or_default()
}

fn missing_in(path: &std::path::Path, server: &str, team: &str, actor: &str) -> Vec<ModelVerdict> {
    let server = server_key(server);
    read(path)
        .entries
        .into_iter()
        .find(|e| e.server == server && e.team == team && e.actor == actor)
        .map(|e| {
            e.models
                .into_iter()
                .filter(|m| !m.permission_missing.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use byollm_doctor::ModelCheck;

    fn check(model: &str, profile: &str, status: Status, cause: Option<Cause>) -> ModelCheck {
        ModelCheck {
            model: model.to_owned(),
            profile: profile.to_owned(),
            status,
            detail: String::new(),
            cause,
        }
    }

    fn report(models: Vec<ModelCheck>) -> Report {
        Report::new("team".into(), None, None, vec![], models, None, vec![])
    }

    #[test]
    fn a_later_healthy_walk_clears_the_mark_and_other_keys_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state").join("verdicts.json");
        let denied = Some(Cause::ModelPermissionMissing);
        let r = report(vec![
            check("a", "global.a", Status::Ok, None),
            check("b", "global.b", Status::Failed, denied),
            check("b", "us.b", Status::Failed, denied),
            check("c", "global.c", Status::Failed, Some(Cause::Throttled)),
        ]);
        record_in(&f, "http://s/", "t", "user:u", &r, "2026-01-01T00:00:00Z").unwrap();
        let m = missing_in(&f, "http://s", "t", "user:u");
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].model, "b");
        assert_eq!(m[0].permission_missing, ["global.b", "us.b"]);
        assert_eq!(m[0].checked_at, "2026-01-01T00:00:00Z");
        assert!(missing_in(&f, "http://s", "t", "service_account:x").is_empty());
        assert!(missing_in(&f, "http://other", "t", "user:u").is_empty());
        // A walk of `a` alone leaves `b`'s mark; a healthy one of `b` clears it.
        let only_a = report(vec![check("a", "global.a", Status::Ok, None)]);
        record_in(
            &f,
            "http://s",
            "t",
            "user:u",
            &only_a,
            "2026-01-02T00:00:00Z",
        )
        .unwrap();
        assert_eq!(missing_in(&f, "http://s", "t", "user:u").len(), 1);
        let b_ok = report(vec![check("b", "global.b", Status::Ok, None)]);
        record_in(&f, "http://s", "t", "user:u", &b_ok, "2026-01-03T00:00:00Z").unwrap();
        assert!(missing_in(&f, "http://s", "t", "user:u").is_empty());
        // Nothing secret: the file holds only these names.
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("key"), "{text}");
    }
}
