//! The command line as users see it: golden files for every command's
//! `--help` and for the usage errors users meet most, `version`, and
//! `completion` (the bash script is loaded into bash and asked to
//! complete).
//!
//! Golden files live in `tests/golden/`. After changing help text or an
//! error on purpose, rewrite them and review the diff:
//!
//!     UPDATE_GOLDEN=1 cargo test --test cli
//!     git diff tests/golden

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::CommandFactory;

/// `kongctl` with a clean environment (no profile, no terminal width).
fn kongctl(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kongctl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .current_dir(home)
        .stdin(Stdio::null());
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(home: &Path, args: &[&str]) -> Run {
    let out = kongctl(home).args(args).output().expect("kongctl runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares `actual` with the golden file (or rewrites it when updating);
/// returns a description of the difference.
fn check_golden(path: &Path, actual: &str) -> Option<String> {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => Some(format!(
            "{} differs\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(e) => Some(format!("{}: {e}", path.display())),
    }
}

/// Every visible command path, by name: `["listen"]`, `["listen",
/// "audit-logs"]`, …
fn command_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        command_paths(sub, &path, out);
    }
}

#[test]
fn every_command_help_matches_its_golden_file() {
    let home = tempfile::tempdir().unwrap();
    let mut paths = vec![Vec::new()];
    command_paths(&kongctl::cli::Cli::command(), &[], &mut paths);
    assert!(paths.len() > 20, "{paths:?}");
    let dir = golden_dir().join("help");
    let mut problems = Vec::new();
    let mut expected_files = std::collections::BTreeSet::new();
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(home.path(), &args);
        let name = if path.is_empty() {
            "kongctl.txt".to_string()
        } else {
            format!("kongctl-{}.txt", path.join("-"))
        };
        if out.code != Some(0) || !out.stderr.is_empty() {
            problems.push(format!("{args:?}: exit {:?}\n{}", out.code, out.stderr));
            continue;
        }
        problems.extend(check_golden(&dir.join(&name), &out.stdout));
        expected_files.insert(name);
    }
    // A golden file for a command that no longer exists is stale.
    if !updating() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !expected_files.contains(&name) {
                problems.push(format!("stale golden file {name}: no such command"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\n(UPDATE_GOLDEN=1 cargo test --test cli rewrites them)",
        problems.join("\n\n")
    );
}

/// The usage errors users meet most, with their exit codes.
const ERROR_CASES: &[&[&str]] = &[
    &["lisen"],
    &["listen", "--endpont", "https://x.test/a"],
    &["listen", "--endpoint"],
    &["listen", "-x"],
    &["listen", "--detach=maybe"],
    &["listen", "--check", "sometimes"],
    &["listen", "--max-body-bytes", "lots"],
    &["listen", "audit-logs", "--foo"],
    &["listen"],
    &["listen", "--endpoint", "https://x.test/a", "--jq", "."],
    &["listen", "--endpoint", "https://x.test/a", "extra"],
    &["tail", "--endpoint", "https://x.test/a", "--since", "5m"],
    &["tail", "--check", "strict"],
    &["ps", "--bogus"],
    &["ps", "stop"],
    &["ps", "stop", "--all", "42"],
    &["ps", "stop", "--timeout"],
    &["ps", "stop", "--timeout", "soon", "--all"],
    &["--log-level", "loud", "ps"],
    &["-o", "xml", "ps"],
    &["get", "audit-logs", "dest"],
    &["delete", "audit-logs", "destination"],
    &["delete", "audit-logs", "webhook", "--yes-please"],
    &["delete", "k", "al", "hook", "extra"],
    &["completion"],
    &["completion", "tcsh"],
    &["version", "extra"],
];

#[test]
fn common_usage_errors_match_the_golden_file() {
    let home = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for args in ERROR_CASES {
        let out = run(home.path(), args);
        text.push_str(&format!(
            "$ kongctl {}\n[exit {}]\n{}",
            args.join(" "),
            out.code.map_or("signal".into(), |c| c.to_string()),
            out.stderr
        ));
        if !out.stdout.is_empty() {
            text.push_str(&format!("[stdout]\n{}", out.stdout));
        }
        text.push('\n');
    }
    if let Some(diff) = check_golden(&golden_dir().join("errors.txt"), &text) {
        panic!("{diff}\n\n(UPDATE_GOLDEN=1 cargo test --test cli rewrites it)");
    }
    // Every one is exit 1 in our shape: `Error: ` first, the usage line
    // last.
    for block in text.split("\n$ ").filter(|b| !b.is_empty()) {
        assert!(block.contains("\n[exit 1]\nError: "), "{block}");
        assert!(block.contains("\n\nRun 'kongctl"), "{block}");
    }
}

#[test]
fn version_reports_build_facts_in_every_format() {
    let home = tempfile::tempdir().unwrap();
    let text = run(home.path(), &["version"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines[0], concat!("kongctl ", env!("CARGO_PKG_VERSION")));
    assert_eq!(lines.len(), 4, "{}", text.stdout);

    let json = run(home.path(), &["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let commit = v["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    // Built from a git checkout (this one, when git works here): the
    // commit is one of its commits, not `unknown`.
    let in_checkout = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_checkout {
        let known = Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(known, "commit {commit:?} is not a commit of this checkout");
    }
    assert_eq!(v["target"], env!("KONGCTL_BUILD_TARGET"), "{v}");
    assert!(
        v["rustc"]
            .as_str()
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit()),
        "{v}"
    );
    assert_eq!(lines[1], format!("commit: {commit}"));

    let yaml = run(home.path(), &["version", "--output", "yaml"]);
    let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(y["commit"].as_str(), Some(commit));

    // `--version` stays clap's one line.
    let flag = run(home.path(), &["--version"]);
    assert_eq!(
        flag.stdout,
        concat!("kongctl ", env!("CARGO_PKG_VERSION"), "\n")
    );
}

#[test]
fn bash_completion_loads_and_completes_commands_and_flags() {
    let home = tempfile::tempdir().unwrap();
    let script = run(home.path(), &["completion", "bash"]);
    assert_eq!(script.code, Some(0), "{}", script.stderr);
    let file = home.path().join("kongctl.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    // Completes `kongctl li<TAB>` and `kongctl listen --end<TAB>` the way
    // bash's programmable completion calls the function.
    let probe = format!(
        r#"source {file}
complete -p kongctl
COMP_WORDS=(kongctl li); COMP_CWORD=1; COMP_LINE="kongctl li"; COMP_POINT=${{#COMP_LINE}}
_kongctl kongctl li kongctl; echo "words: ${{COMPREPLY[*]}}"
COMP_WORDS=(kongctl listen --end); COMP_CWORD=2; COMP_LINE="kongctl listen --end"; COMP_POINT=${{#COMP_LINE}}
_kongctl kongctl --end listen; echo "flags: ${{COMPREPLY[*]}}"
COMP_WORDS=(kongctl completion ""); COMP_CWORD=2; COMP_LINE="kongctl completion "; COMP_POINT=${{#COMP_LINE}}
_kongctl kongctl "" completion; echo "shells: ${{COMPREPLY[*]}}"
"#,
        file = file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _kongctl kongctl"), "{stdout}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("words: "), ["listen"]);
    assert_eq!(line("flags: "), ["--endpoint"]);
    let shells = line("shells: ");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.iter().any(|s| s == shell), "{shells:?}");
    }
}

#[test]
fn every_shell_gets_its_own_script() {
    let home = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("zsh", "#compdef kongctl"),
        ("fish", "complete -c kongctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(home.path(), &["completion", shell]);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        // Subcommands and their flags are in it.
        assert!(out.stdout.contains("delete"), "{shell}");
        assert!(out.stdout.contains("authorization"), "{shell}");
    }
}
