//! The README tells the truth about the binary: "Operating it" lists every
//! `byollm serve` flag (read from `byollm serve --help`) and every
//! `byollm.toml` key (read from the config parser itself), and every key it
//! shows is one the parser accepts; it links only to files in the repository
//! and shows how to install the binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use byollm_server::config::FileConfig;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// The README's "Operating it" section, up to the next `## ` heading.
fn operating_it(readme: &str) -> &str {
    let start = readme
        .find("\n## Operating it")
        .expect("README has `## Operating it`");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The lines of the first fenced block of `section` whose language is `lang`.
fn block<'a>(section: &'a str, lang: &str) -> Vec<&'a str> {
    let mut lines = section.lines();
    let open = format!("```{lang}");
    lines.by_ref().find(|l| l.trim_end() == open).unwrap();
    lines.take_while(|l| !l.starts_with("```")).collect()
}

#[test]
fn operating_it_lists_every_serve_flag() {
    let help = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-h, ").unwrap_or(l);
            let flag = l.strip_prefix("--")?;
            flag.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
        })
        .filter(|f| *f != "help" && *f != "version")
        .collect();
    assert!(
        flags.len() >= 10,
        "too few flags read from --help: {flags:?}"
    );
    let readme = readme();
    let synopsis = block(operating_it(&readme), "text").join("\n");
    let missing: Vec<_> = flags
        .iter()
        .filter(|f| {
            !synopsis.contains(&format!("--{f} ")) && !synopsis.contains(&format!("--{f}]"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README's `byollm serve` synopsis lacks {missing:?}"
    );
}

/// The keys `byollm.toml` accepts in `section` (the top level for ""), from
/// the parser's own "unknown field" message.
fn accepted_keys(section: &str) -> Vec<String> {
    let probe = if section.is_empty() {
        "version = 1\n__probe = 1\n".to_owned()
    } else {
        format!("version = 1\n[{section}]\n__probe = 1\n")
    };
    let err = FileConfig::parse(&probe).unwrap_err();
    let list = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("no key list in {err:?}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn operating_it_shows_every_config_key_and_only_real_ones() {
    let readme = readme();
    let toml = block(operating_it(&readme), "toml");
    // Every key the README shows, commented out or not, under its section.
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    let mut uncommented = String::new();
    for line in &toml {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[') {
            section = s.split(']').next().unwrap().to_owned();
            uncommented.push_str(&format!("[{section}]\n"));
            continue;
        }
        let l = l.strip_prefix("# ").unwrap_or(l);
        if let Some((key, value)) = l.split_once(" = ") {
            let key = key.trim();
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                shown.push((section.clone(), key.to_owned()));
                let value = value.split("  #").next().unwrap().trim();
                uncommented.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    // The parser accepts every key shown (unknown fields are errors).
    FileConfig::parse(&uncommented)
        .unwrap_or_else(|e| panic!("README's byollm.toml does not parse: {e}\n{uncommented}"));
    // And every key the parser accepts is shown.
    let sections = accepted_keys("");
    assert!(sections.contains(&"server".to_owned()), "{sections:?}");
    let mut missing = Vec::new();
    for s in sections.iter().filter(|s| *s != "version") {
        for key in accepted_keys(s) {
            if !shown.iter().any(|(sec, k)| sec == s && *k == key) {
                missing.push(format!("[{s}] {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "README's byollm.toml lacks {missing:?}");
}

#[test]
fn the_readme_links_only_inside_the_repository_and_shows_the_install() {
    let readme = readme();
    assert!(readme.contains("cargo install --path crates/byollm"));
    let mut rest = readme.as_str();
    let mut links = 0;
    while let Some(i) = rest.find("](") {
        let target = &rest[i + 2..];
        let end = target.find(')').unwrap();
        let link = &target[..end];
        rest = &target[end..];
        links += 1;
        assert!(
            !link.contains("://") && !link.starts_with("//") && !link.starts_with("mailto:"),
            "README links outside the repository: {link}"
        );
        let file = link.split('#').next().unwrap();
        if !file.is_empty() {
            assert!(
                repo_root().join(file).exists(),
                "README links to a missing file: {link}"
            );
        }
    }
    assert!(links > 5, "too few links found: {links}");
}
