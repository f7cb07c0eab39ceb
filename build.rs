//! Build-time facts for `kongctl version`: the git commit the binary was
//! built from and the rustc that built it, as `KONGCTL_BUILD_COMMIT` and
//! `KONGCTL_BUILD_RUSTC` (the target comes from cargo's `TARGET`).
//!
//! Neither may fail the build: a source tarball has no `.git`, a machine
//! may have no `git`, and then the value is `unknown`. A packager building
//! from a tarball can set `KONGCTL_BUILD_COMMIT` in the environment.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KONGCTL_BUILD_COMMIT");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    // git reads these; a build with them set (or unset) must not stick.
    for var in ["GIT_DIR", "GIT_WORK_TREE"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let commit = std::env::var("KONGCTL_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(|| git_commit(Path::new(&manifest_dir)))
        .unwrap_or_else(|| {
            // git failed (not installed, refused the directory, ...) in a
            // checkout that has a `.git`: still build again when HEAD
            // moves, or `unknown` would stick until build.rs changes.
            watch_head(&found_git_dir(Path::new(&manifest_dir)));
            "unknown".into()
        });
    let rustc = rustc_version().unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=KONGCTL_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=KONGCTL_BUILD_RUSTC={rustc}");
    println!("cargo:rustc-env=KONGCTL_BUILD_TARGET={target}");
}

/// Output of `git <args>` run in `dir`, trimmed; `None` on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The full hash of HEAD, if `dir` is in a git work tree.
fn git_commit(dir: &Path) -> Option<String> {
    let hash = git(dir, &["rev-parse", "HEAD"])?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Build again when HEAD moves; in a linked worktree HEAD is in the
    // worktree's own git dir.
    let git_dir = git(dir, &["rev-parse", "--absolute-git-dir"]).map(PathBuf::from);
    watch_head(&git_dir);
    Some(hash)
}

/// Asks cargo to run this again when `git_dir`'s HEAD moves: `logs/HEAD`
/// (the reflog) changes on every commit and checkout, `HEAD` on a switch
/// of branch. Only existing files are named: cargo treats a missing one as
/// changed on every build.
fn watch_head(git_dir: &Option<PathBuf>) {
    let Some(git_dir) = git_dir else { return };
    for file in ["HEAD", "logs/HEAD"] {
        let path = git_dir.join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The git dir of the checkout at `dir`, found without git: `.git` itself,
/// or where a linked worktree's `.git` file points (`gitdir: <path>`).
fn found_git_dir(dir: &Path) -> Option<PathBuf> {
    let dot_git = dir.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    Some(dir.join(target))
}

/// `rustc --version` of the compiler cargo uses, without the `rustc `
/// prefix, e.g. `1.95.0 (59807616e 2026-04-14)`.
fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    Some(text.strip_prefix("rustc ").unwrap_or(text).to_string())
}
