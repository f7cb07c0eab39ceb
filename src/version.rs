//! `kongctl version`: the version, the commit the binary was built from,
//! its target triple and the compiler, as captured by `build.rs` (each is
//! `unknown` when the build could not tell).

use serde::Serialize;

use crate::cli::OutputFormat;

/// What `version` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub target: &'static str,
    pub rustc: &'static str,
}

impl BuildInfo {
    /// This binary's.
    pub fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("KONGCTL_BUILD_COMMIT"),
            target: env!("KONGCTL_BUILD_TARGET"),
            rustc: env!("KONGCTL_BUILD_RUSTC"),
        }
    }

    /// The text for stdout, ending with a newline: `kongctl <version>` and
    /// one `key: value` line per fact; JSON (2-space) or YAML with the same
    /// keys; `jsonl` is the JSON on one line.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Text => format!(
                "kongctl {}\ncommit: {}\ntarget: {}\nrustc: {}\n",
                self.version, self.commit, self.target, self.rustc
            ),
            OutputFormat::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("build info serializes");
                s.push('\n');
                s
            }
            OutputFormat::Jsonl => {
                let mut s = serde_json::to_string(self).expect("build info serializes");
                s.push('\n');
                s
            }
            OutputFormat::Yaml => serde_yaml_ng::to_string(self).expect("build info serializes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BuildInfo {
        BuildInfo {
            version: "1.2.3",
            commit: "0123abc",
            target: "x86_64-unknown-linux-gnu",
            rustc: "1.95.0 (abc 2026-01-01)",
        }
    }

    #[test]
    fn renders_every_format() {
        let b = sample();
        assert_eq!(
            b.render(OutputFormat::Text),
            "kongctl 1.2.3\ncommit: 0123abc\ntarget: x86_64-unknown-linux-gnu\nrustc: 1.95.0 (abc 2026-01-01)\n"
        );
        assert_eq!(
            b.render(OutputFormat::Json),
            "{\n  \"version\": \"1.2.3\",\n  \"commit\": \"0123abc\",\n  \"target\": \"x86_64-unknown-linux-gnu\",\n  \"rustc\": \"1.95.0 (abc 2026-01-01)\"\n}\n"
        );
        assert_eq!(
            b.render(OutputFormat::Jsonl),
            "{\"version\":\"1.2.3\",\"commit\":\"0123abc\",\"target\":\"x86_64-unknown-linux-gnu\",\"rustc\":\"1.95.0 (abc 2026-01-01)\"}\n"
        );
        assert_eq!(
            b.render(OutputFormat::Yaml),
            "version: 1.2.3\ncommit: 0123abc\ntarget: x86_64-unknown-linux-gnu\nrustc: 1.95.0 (abc 2026-01-01)\n"
        );
    }

    #[test]
    fn this_build_knows_its_target_and_version() {
        let b = BuildInfo::current();
        assert_eq!(b.version, env!("CARGO_PKG_VERSION"));
        assert!(!b.target.is_empty() && b.target != "unknown");
    }
}
