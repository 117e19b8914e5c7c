//! `byollm azure explain`: a set of FIC subjects from flags, from the JSON
//! `az identity federated-credential list` prints, or from a script `byollm
//! azure setup-script` generated, run through `byollm_policy::azure::explain`
//! against the team's granularity and its members and agents (named, or read
//! from the server).

use anyhow::{Context as _, bail};
use byollm_api::types::PageQuery;
use byollm_policy::azure::Granularity;
use byollm_policy::azure::explain::{FicRecord, explain_fics};
use byollm_policy::generate::{Actor, TrustScope, validate_uid};
use clap::Args;
use serde_json::Value;

/// `byollm azure explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Read the team from the byollm server with your key: issuer, team uid,
    /// `hosts.azure_foundry.subject_granularity`, and (unless --actor is
    /// given) every member and agent. A flag given still wins.
    #[arg(long)]
    from_server: bool,
    /// The byollm server for --from-server.
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The team uid.
    #[arg(long, value_name = "UID", required_unless_present = "from_server")]
    team: Option<String>,
    /// The issuer URL; when given, each FIC's issuer must equal it exactly.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The team's subject granularity: team, actor_type or actor (default:
    /// the server's with --from-server, else team).
    #[arg(long, value_name = "GRANULARITY")]
    granularity: Option<String>,
    /// An FIC's subject (repeat for each FIC).
    #[arg(long, value_name = "SUBJECT", conflicts_with_all = ["fic_file", "script"])]
    subject: Vec<String>,
    /// The FICs as JSON (`az identity federated-credential list
    /// --identity-name NAME -g RG`, an array or one object), `-` for stdin.
    #[arg(long, value_name = "FILE")]
    fic_file: Option<String>,
    /// A script `byollm azure setup-script` generated: its FICs and issuer.
    #[arg(long, value_name = "FILE", conflicts_with = "fic_file")]
    script: Option<String>,
    /// The members and agents to check: user:UID,… / agent:UID,… (default:
    /// every one on the server with --from-server, else a sample of each).
    #[arg(long, value_name = "ACTORS")]
    actor: Option<String>,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
}

fn read(path: &str) -> anyhow::Result<String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin().lock()).context("reading stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
    }
}

/// The single-quoted words of a line (`'…'` with `'\''` escapes).
fn quoted_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut w = String::new();
        for d in chars.by_ref() {
            if d == '\'' {
                break;
            }
            w.push(d);
        }
        // `'\''` continues the same word.
        while chars.peek() == Some(&'\\') {
            chars.next();
            if let Some(q) = chars.next() {
                w.push(q);
            }
            if chars.peek() == Some(&'\'') {
                chars.next();
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    w.push(d);
                }
            }
        }
        words.push(w);
    }
    words
}

/// The FICs and issuer of a generated script.
fn from_script(s: &str) -> (Vec<FicRecord>, Option<String>) {
    let issuer = s
        .lines()
        .find_map(|l| l.strip_prefix("ISSUER_URL="))
        .and_then(|v| quoted_words(v).into_iter().next());
    let fics = s
        .lines()
        .filter(|l| l.starts_with("fic \""))
        .filter_map(|l| match quoted_words(l).as_slice() {
            [name, subject] => Some(FicRecord {
                name: name.clone(),
                issuer: issuer.clone(),
                subject: subject.clone(),
                audiences: vec![byollm_policy::azure::AZURE_AUDIENCE.to_owned()],
            }),
            _ => None,
        })
        .collect();
    (fics, issuer)
}

/// The FICs of `az identity federated-credential list` (or `show`).
fn from_json(path: &str, text: &str) -> anyhow::Result<Vec<FicRecord>> {
    let v: Value = serde_json::from_str(text).with_context(|| format!("{path}: not JSON"))?;
    let items = match v {
        Value::Array(items) => items,
        Value::Object(_) => vec![v],
        _ => bail!("{path}: expected an FIC or an array of them"),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value::<FicRecord>(item)
                .with_context(|| format!("{path}: item {i} is not an FIC (no subject?)"))
        })
        .collect()
}

/// The team's members and agents from the server.
fn server_actors(c: &byollm_api::client::Client) -> anyhow::Result<Vec<(Actor, String)>> {
    crate::operator::runtime()?.block_on(async {
        let mut out = Vec::new();
        let mut page = PageQuery::default();
        loop {
            let list = c
                .members_page(&page)
                .await
                .context("--from-server: listing the team's members")?;
            out.extend(list.members.into_iter().map(|m| (Actor::User, m.uid)));
            match list.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        let agents = c
            .agents()
            .await
            .context("--from-server: listing the team's agents")?;
        out.extend(agents.agents.into_iter().map(|a| (Actor::Agent, a.uid)));
        Ok(out)
    })
}

/// Runs the explainer.
pub(super) fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    let view = args
        .from_server
        .then(|| crate::aws_cmd::from_server::read(args.server.as_deref()))
        .transpose()?;
    let team = match (&args.team, &view) {
        (Some(t), _) => t.clone(),
        (None, Some(v)) => v.team.clone(),
        (None, None) => bail!("--team is required (or read it with --from-server)"),
    };
    validate_uid("team", &team).map_err(|e| anyhow::anyhow!("--team: {e}"))?;
    let granularity = match (&args.granularity, &view) {
        (Some(g), _) => g
            .parse::<Granularity>()
            .map_err(|e| anyhow::anyhow!("--granularity: {e}"))?,
        (None, Some(v)) => v
            .settings
            .hosts
            .azure_foundry
            .subject_granularity
            .as_str()
            .parse()?,
        (None, None) => Granularity::Team,
    };
    let mut actors = match args
        .actor
        .as_deref()
        .map(str::parse::<TrustScope>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--actor: {e}"))?
    {
        None => vec![],
        Some(TrustScope::Named(list)) => list,
        Some(other) => bail!("--actor takes user:UID,… / agent:UID,…, not `{other}`"),
    };
    if actors.is_empty() && view.is_some() {
        let c = crate::credentials::client(&crate::credentials::server(args.server.as_deref()))?;
        actors = server_actors(&c)?;
    }
    let mut issuer = args
        .issuer
        .clone()
        .or_else(|| view.as_ref().map(|v| v.issuer.clone()));
    let fics = if let Some(path) = &args.fic_file {
        from_json(path, &read(path)?)?
    } else if let Some(path) = &args.script {
        let (fics, script_issuer) = from_script(&read(path)?);
        if fics.is_empty() {
            bail!(
                "{path}: no `fic \"$IDENTITY_N\" 'NAME' 'SUBJECT'` lines (not a byollm azure setup-script?)"
            );
        }
        issuer = issuer.or(script_issuer);
        fics
    } else if !args.subject.is_empty() {
        args.subject
            .iter()
            .map(|s| FicRecord {
                name: String::new(),
                issuer: None,
                subject: s.clone(),
                audiences: vec![],
            })
            .collect()
    } else {
        bail!("give the FICs: --subject SUBJECT (repeated), --fic-file FILE or --script FILE");
    };
    let e = explain_fics(&team, granularity, issuer.as_deref(), &fics, &actors);
    if args.json {
        Ok(serde_json::to_string_pretty(&e)?)
    } else {
        Ok(e.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_fics_unquote() {
        let s = "ISSUER_URL='https://i.example'\nfic \"$IDENTITY_1\" 'byollm-t1' 'scoped_principal:t1'\nfic x\n";
        let (fics, issuer) = from_script(s);
        assert_eq!(issuer.as_deref(), Some("https://i.example"));
        assert_eq!(fics.len(), 1);
        assert_eq!(fics[0].subject, "scoped_principal:t1");
        assert_eq!(quoted_words("'a'\\''b' 'c'"), ["a'b", "c"]);
    }

    #[test]
    fn az_list_json_reads() {
        let j = r#"[{"audiences":["api://AzureADTokenExchange"],"id":"/x","issuer":"https://i","name":"f","resourceGroup":"rg","subject":"scoped_principal:t1","type":"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"}]"#;
        let f = from_json("f.json", j).unwrap();
        assert_eq!(f[0].name, "f");
        assert_eq!(f[0].audiences, ["api://AzureADTokenExchange"]);
        assert!(from_json("f.json", "[{\"name\":\"x\"}]").is_err());
    }
}
