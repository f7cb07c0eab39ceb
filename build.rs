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
    let rustc = rustc_version();
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=KONGCTL_BUILD_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KONGCTL_BUILD_RUSTC={}",
        rustc.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=KONGCTL_BUILD_TARGET={target}");
    link_layout(&manifest_dir, &target, rustc.as_deref());
}

/// Release builds place the code a listener runs together at the start of
/// `.text` (`link/listener.order`, made by `scripts/order-file.sh`) and pack
/// relative relocations (`DT_RELR`): the kernel maps a binary 64 KiB
/// around each page touched, so code that is run together and a short
/// relocation table keep an idle listener's resident pages few. Layout
/// only: the code is the same, and a name the file lists that this build
/// does not have is skipped.
///
/// Only where the linker is known to be lld (rustc 1.90+ links
/// x86_64-unknown-linux-gnu with its own lld unless told otherwise), and
/// `DT_RELR` only where the glibc built against loads it (2.36+).
/// `KONGCTL_NO_ORDER_FILE=1` turns both off.
fn link_layout(manifest_dir: &str, target: &str, rustc: Option<&str>) {
    println!("cargo:rerun-if-env-changed=KONGCTL_NO_ORDER_FILE");
    println!("cargo:rerun-if-env-changed=KONGCTL_LINK_MAP");
    println!("cargo:rerun-if-changed=link/listener.order");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    // scripts/order-file.sh reads where each function landed from the
    // linker's map (the release binary has no symbols to ask).
    let map = env("KONGCTL_LINK_MAP");
    if !map.is_empty() {
        println!("cargo:rustc-link-arg-bin=kongctl=-Wl,-Map={map}");
    }
    let linker_chosen = !env("RUSTC_LINKER").is_empty()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|flag| env("CARGO_ENCODED_RUSTFLAGS").contains(flag));
    if env("PROFILE") != "release"
        || target != "x86_64-unknown-linux-gnu"
        || env("HOST") != target
        || !env("KONGCTL_NO_ORDER_FILE").is_empty()
        || linker_chosen
        || !rustc.is_some_and(links_with_lld)
    {
        return;
    }
    let order = Path::new(manifest_dir).join("link/listener.order");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=kongctl=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=kongctl=-Wl,--no-warn-symbol-ordering");
    }
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin=kongctl=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether rustc `version` (as [`rustc_version`] gives it) is 1.90 or
/// newer: from then on it links x86_64 Linux binaries with its bundled lld.
fn links_with_lld(version: &str) -> bool {
    let mut parts = version.split(['.', ' ', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(1), Some(m)) if m >= 90) || major.is_some_and(|m| m > 1)
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`, e.g.
/// `glibc 2.36`) is at least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    out.status.success() && found >= (major, minor)
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
