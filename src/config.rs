//! Profiles, credentials and every path kongctl reads or writes.
//!
//! Settings come from, in order of precedence: flags, the environment
//! (`KONGCTL_<PROFILE>_<KEY>`), the profile's section of `config.yaml`, and
//! built-in defaults. Paths all hang off the config directory
//! (`$XDG_CONFIG_HOME/kongctl`, else `~/.config/kongctl`). Building the
//! Konnect client from them is [`crate::konnect`]'s
//! (`KonnectClient::from_settings`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{GlobalArgs, LogLevel, OutputFormat};
use crate::secret::Secret;

/// What went wrong while resolving configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot determine the config directory: neither XDG_CONFIG_HOME nor HOME is set")]
    NoConfigDir,
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("invalid {key} {value:?} in {origin}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        origin: String,
        reason: String,
    },
}

/// The profile's section of config.yaml. Unknown keys are ignored, as the
/// original does (the file is shared with its other commands).
#[derive(Debug, Default, Deserialize)]
struct ProfileFile {
    #[serde(default)]
    konnect: KonnectFile,
    output: Option<String>,
    #[serde(rename = "log-level", alias = "log_level")]
    log_level: Option<String>,
    #[serde(rename = "log-file", alias = "log_file")]
    log_file: Option<PathBuf>,
    #[serde(default, rename = "audit-logs", alias = "audit_logs")]
    audit_logs: AuditLogsFile,
}

/// `<profile>.audit-logs`: the listener's store settings. Values are kept
/// as given (a YAML number or string) and checked by `listen`, which owns
/// their meaning.
#[derive(Debug, Default, Deserialize)]
struct AuditLogsFile {
    #[serde(rename = "max-file-size", alias = "max_file_size")]
    max_file_size: Option<serde_yaml_ng::Value>,
    #[serde(rename = "rotate-every", alias = "rotate_every")]
    rotate_every: Option<serde_yaml_ng::Value>,
    retain: Option<serde_yaml_ng::Value>,
    #[serde(rename = "retain-size", alias = "retain_size")]
    retain_size: Option<serde_yaml_ng::Value>,
    #[serde(rename = "admin-address", alias = "admin_address")]
    admin_address: Option<serde_yaml_ng::Value>,
    #[serde(rename = "log-max-size", alias = "log_max_size")]
    log_max_size: Option<serde_yaml_ng::Value>,
    #[serde(rename = "log-keep", alias = "log_keep")]
    log_keep: Option<serde_yaml_ng::Value>,
}

/// A setting as the user wrote it and where: an environment variable's
/// name or the config file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub value: String,
    pub origin: String,
}

/// The store settings of the profile from the environment
/// (`KONGCTL_<PROFILE>_AUDIT_LOGS_MAX_FILE_SIZE`, …) or config.yaml
/// (`audit-logs: max-file-size:` …), not yet checked; the `listen` flags
/// of the same names override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    pub max_file_size: Option<Given>,
    pub rotate_every: Option<Given>,
    pub retain: Option<Given>,
    pub retain_size: Option<Given>,
}

/// The profile's settings for running the listener as a service, from
/// the environment (`KONGCTL_<PROFILE>_AUDIT_LOGS_ADMIN_ADDRESS`, …) or
/// config.yaml (`audit-logs: admin-address:` …), not yet checked; the
/// `listen` flags of the same names override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    pub admin_address: Option<Given>,
    pub log_max_size: Option<Given>,
    pub log_keep: Option<Given>,
}

#[derive(Debug, Default, Deserialize)]
struct KonnectFile {
    pat: Option<String>,
    #[serde(rename = "base-url", alias = "base_url")]
    base_url: Option<String>,
    region: Option<String>,
    #[serde(rename = "refresh-path", alias = "refresh_path")]
    refresh_path: Option<String>,
    /// Records per pull-API page (upstream's key; an integer, or a string
    /// holding one).
    #[serde(rename = "page-size", alias = "page_size")]
    page_size: Option<serde_yaml_ng::Value>,
}

/// Where a PAT was found, for messages that help users fix the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatSource {
    Flag,
    /// The environment variable's name (`KONGCTL_<PROFILE>_KONNECT_PAT`).
    Env(String),
    /// The config file whose profile section has `konnect.pat`.
    File(PathBuf),
}

/// `konnect.refresh-path`'s default: where Konnect renews the access token
/// of `kongctl login`'s token file.
pub const REFRESH_PATH_DEFAULT: &str = "/kauth/api/v1/refresh";

/// What authenticates calls to Konnect.
#[derive(Debug, Clone)]
pub enum Auth {
    Pat(Secret),
    /// `kongctl login`'s token file (renewed when it expires).
    LoginFile(PathBuf),
}

/// Everything resolved from flags, environment and config.yaml.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: String,
    pub config_dir: PathBuf,
    pub config_file: PathBuf,
    pub pat: Option<(Secret, PatSource)>,
    /// Where `kongctl login` keeps the profile's tokens:
    /// `<config file dir>/.<profile>-konnect-token.json`.
    pub login_token_file: PathBuf,
    /// Path of Konnect's login token refresh endpoint on the regional host.
    pub refresh_path: String,
    pub base_url: Option<String>,
    pub region: String,
    /// `konghq.com`, or `konghq.tech` with `--konnect-env tech`.
    pub konnect_domain: &'static str,
    pub log_level: LogLevel,
    pub log_file: PathBuf,
    pub output: OutputFormat,
    /// Whether `-o`, the environment or the config file chose `output`
    /// (`tail --stored` prints records as stored unless told otherwise).
    pub output_given: bool,
    /// `konnect.page-size`: records per pull-API page (checked with the
    /// query flags; 0 means the default, as upstream).
    pub page_size: Option<i64>,
    pub store: StoreSettings,
    pub service: ServiceSettings,
}

/// The environment, injectable for tests.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned().filter(|v| !v.is_empty())
    }
}

/// `$XDG_CONFIG_HOME/kongctl`, else `~/.config/kongctl`.
pub fn config_dir(env: &dyn Env) -> Result<PathBuf, ConfigError> {
    if let Some(xdg) = env
        .var("XDG_CONFIG_HOME")
        .filter(|v| Path::new(v).is_absolute())
    {
        return Ok(PathBuf::from(xdg).join("kongctl"));
    }
    let home = env
        .var("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .ok_or(ConfigError::NoConfigDir)?;
    Ok(home.join(".config").join("kongctl"))
}

/// `KONGCTL_<PROFILE>_<KEY>`: profile upper-cased, `-` and `.` become `_`.
pub fn env_key(profile: &str, key: &str) -> String {
    let norm = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect()
    };
    format!("KONGCTL_{}_{}", norm(profile), norm(key))
}

impl Settings {
    /// Resolves settings: flag beats environment beats config file beats
    /// default.
    pub fn resolve(global: &GlobalArgs, env: &dyn Env) -> Result<Settings, ConfigError> {
        let config_dir = config_dir(env)?;
        let profile = global
            .profile
            .clone()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let config_file = global
            .config_file
            .clone()
            .unwrap_or_else(|| config_dir.join("config.yaml"));
        let file = read_profile(&config_file, &profile)?;

        let pat = if let Some(p) = global.pat.clone().filter(|p| !p.trim().is_empty()) {
            Some((Secret::new(p.trim()), PatSource::Flag))
        } else if let Some(p) = env.var(&env_key(&profile, "konnect.pat")) {
            Some((
                Secret::new(p.trim()),
                PatSource::Env(env_key(&profile, "konnect.pat")),
            ))
        } else {
            file.konnect
                .pat
                .clone()
                .filter(|p| !p.trim().is_empty())
                .map(|p| (Secret::new(p.trim()), PatSource::File(config_file.clone())))
        };

        let login_token_file = config_file
            .parent()
            .unwrap_or(&config_dir)
            .join(format!(".{profile}-konnect-token.json"));
        let refresh_path = env
            .var(&env_key(&profile, "konnect.refresh-path"))
            .or_else(|| file.konnect.refresh_path.clone())
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.starts_with('/') {
                    p
                } else {
                    format!("/{p}")
                }
            })
            .unwrap_or_else(|| REFRESH_PATH_DEFAULT.to_string());

        let base_url = global
            .base_url
            .clone()
            .or_else(|| env.var(&env_key(&profile, "konnect.base-url")))
            .or_else(|| file.konnect.base_url.clone())
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());

        let (region, region_origin) = match (
            &global.region,
            env.var(&env_key(&profile, "konnect.region")),
        ) {
            (Some(r), _) => (r.clone(), "--region".to_string()),
            (None, Some(r)) => (r, env_key(&profile, "konnect.region")),
            (None, None) => match &file.konnect.region {
                Some(r) => (r.clone(), config_file.display().to_string()),
                None => ("us".to_string(), "default".to_string()),
            },
        };
        let region = region.trim().to_ascii_lowercase();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ConfigError::Invalid {
                key: "region",
                value: region,
                origin: region_origin,
                reason: "use letters, digits and '-' only, e.g. us or eu".into(),
            });
        }

        let konnect_domain = match global.konnect_env.as_deref().map(str::trim) {
            None | Some("") => "konghq.com",
            Some(e) if ["com", "production", "prod"].contains(&e.to_ascii_lowercase().as_str()) => {
                "konghq.com"
            }
            Some(e) if e.eq_ignore_ascii_case("tech") => "konghq.tech",
            Some(e) => {
                return Err(ConfigError::Invalid {
                    key: "konnect-env",
                    value: e.to_string(),
                    origin: "--konnect-env".into(),
                    reason: "use com (production) or tech".into(),
                });
            }
        };

        let log_level = match global.log_level {
            Some(l) => l,
            None => match env
                .var(&env_key(&profile, "log-level"))
                .map(|v| (v, env_key(&profile, "log-level")))
                .or_else(|| {
                    file.log_level
                        .clone()
                        .map(|v| (v, config_file.display().to_string()))
                }) {
                Some((v, origin)) => parse_log_level(&v).ok_or_else(|| ConfigError::Invalid {
                    key: "log-level",
                    value: v,
                    origin,
                    reason: "use trace, debug, info, warn or error".into(),
                })?,
                None => LogLevel::Error,
            },
        };

        let output_given = global.output.is_some()
            || env.var(&env_key(&profile, "output")).is_some()
            || file.output.is_some();
        let output = match global.output {
            Some(o) => o,
            None => match env
                .var(&env_key(&profile, "output"))
                .map(|v| (v, env_key(&profile, "output")))
                .or_else(|| {
                    file.output
                        .clone()
                        .map(|v| (v, config_file.display().to_string()))
                }) {
                Some((v, origin)) => match v.trim().to_ascii_lowercase().as_str() {
                    "text" => OutputFormat::Text,
                    "json" => OutputFormat::Json,
                    "yaml" => OutputFormat::Yaml,
                    "jsonl" => OutputFormat::Jsonl,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: "output",
                            value: v,
                            origin,
                            reason: "use text, json, yaml or jsonl".into(),
                        });
                    }
                },
                None => OutputFormat::Text,
            },
        };

        let page_size = match env
            .var(&env_key(&profile, "konnect.page-size"))
            .map(|v| (v, env_key(&profile, "konnect.page-size")))
            .or_else(|| {
                let text = match file.konnect.page_size.as_ref()? {
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                Some((text, config_file.display().to_string()))
            }) {
            None => None,
            Some((v, origin)) => {
                Some(v.trim().parse::<i64>().map_err(|_| ConfigError::Invalid {
                    key: "konnect.page-size",
                    value: v.clone(),
                    origin,
                    reason: "use a whole number from 1 to 1000".into(),
                })?)
            }
        };

        let log_file = global
            .log_file
            .clone()
            .or_else(|| env.var(&env_key(&profile, "log-file")).map(PathBuf::from))
            .or(file.log_file)
            .unwrap_or_else(|| config_dir.join("logs").join("kongctl.log"));
        let log_file = expand_pid(&log_file, std::process::id());

        let given = |key: &str, file_value: &Option<serde_yaml_ng::Value>| {
            let env_name = env_key(&profile, &format!("audit-logs.{key}"));
            if let Some(value) = env.var(&env_name) {
                return Ok(Some(Given {
                    value,
                    origin: env_name,
                }));
            }
            let value = match file_value {
                None | Some(serde_yaml_ng::Value::Null) => return Ok(None),
                Some(serde_yaml_ng::Value::String(s)) => s.clone(),
                Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
                Some(other) => {
                    let kind = match other {
                        serde_yaml_ng::Value::Bool(b) => {
                            if *b {
                                "true"
                            } else {
                                "false"
                            }
                        }
                        serde_yaml_ng::Value::Sequence(_) => "a list",
                        serde_yaml_ng::Value::Mapping(_) => "a mapping",
                        _ => "a tagged value",
                    };
                    return Err(ConfigError::Invalid {
                        key: "audit-logs setting",
                        value: format!("{key}: {kind}"),
                        origin: config_file.display().to_string(),
                        reason: "use a number or a string such as 128MiB or 7d".into(),
                    });
                }
            };
            Ok(Some(Given {
                value,
                origin: config_file.display().to_string(),
            }))
        };
        let a = &file.audit_logs;
        let store = StoreSettings {
            max_file_size: given("max-file-size", &a.max_file_size)?,
            rotate_every: given("rotate-every", &a.rotate_every)?,
            retain: given("retain", &a.retain)?,
            retain_size: given("retain-size", &a.retain_size)?,
        };
        let service = ServiceSettings {
            admin_address: given("admin-address", &a.admin_address)?,
            log_max_size: given("log-max-size", &a.log_max_size)?,
            log_keep: given("log-keep", &a.log_keep)?,
        };

        Ok(Settings {
            profile,
            config_dir,
            config_file,
            pat,
            login_token_file,
            refresh_path,
            base_url,
            region,
            konnect_domain,
            log_level,
            log_file,
            output,
            output_given,
            page_size,
            store,
            service,
        })
    }

    /// The profile's storage directory: `<config>/audit-logs/<safe profile>`.
    pub fn audit_log_dir(&self) -> PathBuf {
        self.config_dir
            .join("audit-logs")
            .join(safe_profile_dir(&self.profile))
    }

    /// `<config>/processes`, where detached listeners are recorded.
    pub fn processes_dir(&self) -> PathBuf {
        self.config_dir.join("processes")
    }

    /// `<config>/logs`, where detached listeners log.
    pub fn logs_dir(&self) -> PathBuf {
        self.config_dir.join("logs")
    }

    /// How to authenticate to Konnect: the PAT if one is given, else the
    /// token file of `kongctl login` if it exists, else an error that says
    /// every way to provide one (the original's order).
    pub fn auth(&self) -> Result<Auth, String> {
        if let Some((pat, _)) = &self.pat {
            return Ok(Auth::Pat(pat.clone()));
        }
        if self.login_token_file.is_file() {
            return Ok(Auth::LoginFile(self.login_token_file.clone()));
        }
        Err(format!(
            "authentication token not available. Provide a Konnect personal access token \
             with --pat, the {} environment variable, or konnect.pat under the {:?} profile in {}, \
             or log in with the original kongctl (`kongctl login`), whose token file {} this \
             kongctl reads",
            env_key(&self.profile, "konnect.pat"),
            self.profile,
            self.config_file.display(),
            self.login_token_file.display()
        ))
    }
}

impl Settings {
    /// The hint for an access token Konnect rejected (401): names where the
    /// token in use came from (the one [`Settings::auth`] picks), so the user
    /// fixes that place and not another.
    pub fn rejected_token_hint(&self) -> String {
        match &self.pat {
            Some((_, PatSource::Flag)) => {
                "Konnect rejected the access token: check the PAT given with --pat".to_string()
            }
            Some((_, PatSource::Env(var))) => format!(
                "Konnect rejected the access token: check the PAT in the {var} environment variable"
            ),
            Some((_, PatSource::File(path))) => format!(
                "Konnect rejected the access token: check konnect.pat under the {:?} profile in {}",
                self.profile,
                path.display()
            ),
            None => format!(
                "Konnect rejected the access token of the login token file {}: log in again with \
                 the original kongctl (`kongctl login`), or provide a PAT",
                self.login_token_file.display()
            ),
        }
    }
}

fn parse_log_level(v: &str) -> Option<LogLevel> {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LogLevel::Trace),
        "debug" => Some(LogLevel::Debug),
        "info" => Some(LogLevel::Info),
        "warn" | "warning" => Some(LogLevel::Warn),
        "error" => Some(LogLevel::Error),
        _ => None,
    }
}

/// Replaces `%PID%` in a path with `pid`.
pub fn expand_pid(path: &Path, pid: u32) -> PathBuf {
    match path.to_str() {
        Some(s) if s.contains("%PID%") => PathBuf::from(s.replace("%PID%", &pid.to_string())),
        _ => path.to_path_buf(),
    }
}

fn read_profile(path: &Path, profile: &str) -> Result<ProfileFile, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileFile::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(ProfileFile::default());
    }
    let mut all: BTreeMap<String, serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    match all.remove(profile) {
        None | Some(serde_yaml_ng::Value::Null) => Ok(ProfileFile::default()),
        Some(v) => serde_yaml_ng::from_value(v).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The directory name for a profile: letters, digits, `-`, `_` and `.` are
/// kept, anything else becomes `_`; empty becomes `default`. A name made only
/// of dots (`.`, `..`) cannot be a directory of its own, so its dots become
/// `_` too: no profile name can leave the audit-logs directory.
pub fn safe_profile_dir(profile: &str) -> String {
    let trimmed = profile.trim();
    if trimmed.is_empty() {
        return "default".to_string();
    }
    let safe: String = trimmed
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.chars().all(|c| c == '.') {
        safe.replace('.', "_")
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_keys_follow_the_original() {
        assert_eq!(
            env_key("default", "konnect.pat"),
            "KONGCTL_DEFAULT_KONNECT_PAT"
        );
        assert_eq!(
            env_key("my-dev.eu", "konnect.pat"),
            "KONGCTL_MY_DEV_EU_KONNECT_PAT"
        );
        assert_eq!(env_key("dev", "log-level"), "KONGCTL_DEV_LOG_LEVEL");
    }

    #[test]
    fn config_dir_prefers_xdg() {
        let d = config_dir(&env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])).unwrap();
        assert_eq!(d, PathBuf::from("/x/kongctl"));
        let d = config_dir(&env(&[("HOME", "/h")])).unwrap();
        assert_eq!(d, PathBuf::from("/h/.config/kongctl"));
    }

    #[test]
    fn profile_dirs_cannot_escape() {
        for (input, want) in [
            ("dev profile", "dev_profile"),
            ("", "default"),
            ("  ", "default"),
            (".", "_"),
            ("..", "__"),
            ("../x", ".._x"),
            ("a/b", "a_b"),
            ("a\\b", "a_b"),
            ("prod.eu-1_x", "prod.eu-1_x"),
        ] {
            let got = safe_profile_dir(input);
            assert_eq!(got, want, "{input:?}");
            let base = Path::new("/cfg/audit-logs");
            let joined = base.join(&got);
            assert_eq!(joined.parent(), Some(base), "{input:?} escapes");
            assert!(!got.contains('/'));
        }
    }

    /// The property behind `profile_dirs_cannot_escape`: whatever the
    /// profile, its directory is one normal path component, so
    /// `audit-logs/<it>` is a child of `audit-logs`.
    fn assert_one_normal_component(
        profile: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        use std::path::Component;
        let dir = safe_profile_dir(profile);
        prop_assert!(!dir.is_empty(), "{profile:?} gives an empty name");
        prop_assert!(dir != "." && dir != "..", "{profile:?} gives {dir:?}");
        prop_assert!(
            !dir.contains(['/', '\0']),
            "{profile:?} gives {dir:?}, with a separator or NUL"
        );
        let components: Vec<Component> = Path::new(&dir).components().collect();
        prop_assert!(
            components == [Component::Normal(dir.as_ref())],
            "{profile:?} gives {dir:?}, which is {components:?}"
        );
        let base = Path::new("/cfg/audit-logs");
        prop_assert!(
            base.join(&dir).parent() == Some(base),
            "{profile:?} escapes"
        );
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn any_profile_is_one_normal_component(profile in proptest::prelude::any::<String>()) {
            assert_one_normal_component(&profile)?;
        }

        /// Mostly dots, slashes, backslashes and blanks, where escapes hide.
        #[test]
        fn path_like_profiles_are_one_normal_component(
            profile in "[./\\ \t\n\x00a_\u{2024}\u{ff0f}-]{0,12}"
        ) {
            assert_one_normal_component(&profile)?;
        }
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let kdir = dir.path().join("kongctl");
        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::write(
            kdir.join("config.yaml"),
            "dev:\n  konnect:\n    pat: kpat_file\n    base-url: http://file.test/\n    region: eu\n  log-level: info\n",
        )
        .unwrap();
        let xdg = dir.path().to_str().unwrap();
        let global = GlobalArgs {
            profile: Some("dev".into()),
            ..Default::default()
        };

        let s = Settings::resolve(&global, &env(&[("XDG_CONFIG_HOME", xdg)])).unwrap();
        assert_eq!(s.pat.as_ref().unwrap().0.expose(), "kpat_file");
        assert_eq!(s.base_url.as_deref(), Some("http://file.test"));
        assert_eq!(s.region, "eu");
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.audit_log_dir(), kdir.join("audit-logs/dev"));

        let e = env(&[
            ("XDG_CONFIG_HOME", xdg),
            ("KONGCTL_DEV_KONNECT_PAT", "kpat_env"),
        ]);
        let s = Settings::resolve(&global, &e).unwrap();
        assert_eq!(s.pat.as_ref().unwrap().0.expose(), "kpat_env");
        assert_eq!(
            s.pat.as_ref().unwrap().1,
            PatSource::Env("KONGCTL_DEV_KONNECT_PAT".into())
        );

        let flagged = GlobalArgs {
            pat: Some("kpat_flag".into()),
            region: Some("AU".into()),
            ..global.clone()
        };
        let s = Settings::resolve(&flagged, &e).unwrap();
        assert_eq!(s.pat.as_ref().unwrap().0.expose(), "kpat_flag");
        assert_eq!(s.region, "au");
    }

    #[test]
    fn missing_pat_says_how_to_provide_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(
            &GlobalArgs::default(),
            &env(&[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())]),
        )
        .unwrap();
        let msg = s.auth().unwrap_err();
        assert!(
            msg.starts_with("authentication token not available."),
            "{msg}"
        );
        assert!(msg.contains("--pat"), "{msg}");
        assert!(msg.contains("KONGCTL_DEFAULT_KONNECT_PAT"), "{msg}");
        assert!(msg.contains(".default-konnect-token.json"), "{msg}");

        // `kongctl login`'s file, next to config.yaml, is the last resort.
        let token_file = dir.path().join("kongctl/.default-konnect-token.json");
        assert_eq!(s.login_token_file, token_file);
        std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
        std::fs::write(&token_file, "{}").unwrap();
        assert!(matches!(s.auth(), Ok(Auth::LoginFile(p)) if p == token_file));
        let with_pat = Settings::resolve(
            &GlobalArgs::default(),
            &env(&[
                ("XDG_CONFIG_HOME", dir.path().to_str().unwrap()),
                ("KONGCTL_DEFAULT_KONNECT_PAT", "kpat_env"),
            ]),
        )
        .unwrap();
        assert!(matches!(with_pat.auth(), Ok(Auth::Pat(p)) if p.expose() == "kpat_env"));
        assert_eq!(with_pat.refresh_path, "/kauth/api/v1/refresh");
    }

    #[test]
    fn a_rejected_token_hint_names_where_the_token_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let kdir = dir.path().join("kongctl");
        let xdg = dir.path().to_str().unwrap();
        let dev = GlobalArgs {
            profile: Some("dev".into()),
            ..Default::default()
        };
        let hint = |g: &GlobalArgs, e: &[(&str, &str)]| {
            let mut e = env(e);
            e.insert("XDG_CONFIG_HOME".into(), xdg.into());
            Settings::resolve(g, &e).unwrap().rejected_token_hint()
        };

        // No PAT anywhere: the login token file of the profile.
        assert_eq!(
            hint(&dev, &[]),
            format!(
                "Konnect rejected the access token of the login token file {}: log in again \
                 with the original kongctl (`kongctl login`), or provide a PAT",
                kdir.join(".dev-konnect-token.json").display()
            )
        );

        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::write(
            kdir.join("config.yaml"),
            "dev:\n  konnect:\n    pat: kpat_file\n",
        )
        .unwrap();
        assert_eq!(
            hint(&dev, &[]),
            format!(
                "Konnect rejected the access token: check konnect.pat under the \"dev\" profile in {}",
                kdir.join("config.yaml").display()
            )
        );

        // The variable of the profile in use, not the default profile's.
        let pat_env = [("KONGCTL_DEV_KONNECT_PAT", "kpat_env")];
        assert_eq!(
            hint(&dev, &pat_env),
            "Konnect rejected the access token: check the PAT in the \
             KONGCTL_DEV_KONNECT_PAT environment variable"
        );

        let flagged = GlobalArgs {
            pat: Some("kpat_flag".into()),
            ..dev.clone()
        };
        let h = hint(&flagged, &pat_env);
        assert_eq!(
            h,
            "Konnect rejected the access token: check the PAT given with --pat"
        );
        for h in [h, hint(&dev, &pat_env), hint(&dev, &[])] {
            assert!(!h.contains("kpat_"), "the hint shows a PAT: {h}");
        }
    }

    #[test]
    fn konnect_env_picks_the_domain() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[("XDG_CONFIG_HOME", dir.path().to_str().unwrap())]);
        let with = |v: Option<&str>| {
            let g = GlobalArgs {
                konnect_env: v.map(str::to_string),
                ..Default::default()
            };
            Settings::resolve(&g, &e)
        };
        assert_eq!(with(None).unwrap().konnect_domain, "konghq.com");
        assert_eq!(
            with(Some("production")).unwrap().konnect_domain,
            "konghq.com"
        );
        assert_eq!(with(Some("TECH")).unwrap().konnect_domain, "konghq.tech");
        let err = with(Some("staging")).unwrap_err().to_string();
        assert!(
            err.contains("--konnect-env") && err.contains("staging"),
            "{err}"
        );
    }

    #[test]
    fn bad_region_and_bad_yaml_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().to_str().unwrap();
        let g = GlobalArgs {
            region: Some("us east".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&g, &env(&[("XDG_CONFIG_HOME", xdg)])).unwrap_err();
        assert!(err.to_string().contains("invalid region"), "{err}");

        std::fs::create_dir_all(dir.path().join("kongctl")).unwrap();
        std::fs::write(
            dir.path().join("kongctl/config.yaml"),
            "default: [unclosed\n",
        )
        .unwrap();
        let err = Settings::resolve(&GlobalArgs::default(), &env(&[("XDG_CONFIG_HOME", xdg)]))
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid config file"), "{err}");
    }

    #[test]
    fn page_size_comes_from_the_profile_or_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let kdir = dir.path().join("kongctl");
        std::fs::create_dir_all(&kdir).unwrap();
        let xdg = dir.path().to_str().unwrap();
        let resolve = |yaml: &str, extra: &[(&str, &str)]| {
            std::fs::write(kdir.join("config.yaml"), yaml).unwrap();
            let mut e = env(&[("XDG_CONFIG_HOME", xdg)]);
            e.extend(env(extra));
            Settings::resolve(&GlobalArgs::default(), &e)
        };
        let s = resolve("default:\n  konnect:\n    page-size: 250\n", &[]).unwrap();
        assert_eq!(s.page_size, Some(250));
        let s = resolve("default:\n  konnect:\n    page-size: \"7\"\n", &[]).unwrap();
        assert_eq!(s.page_size, Some(7));
        let s = resolve(
            "default:\n  konnect:\n    page-size: 250\n",
            &[("KONGCTL_DEFAULT_KONNECT_PAGE_SIZE", "900")],
        )
        .unwrap();
        assert_eq!(s.page_size, Some(900));
        assert_eq!(resolve("default: {}\n", &[]).unwrap().page_size, None);
        let err = resolve("default:\n  konnect:\n    page-size: lots\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid konnect.page-size \"lots\""),
            "{err}"
        );
    }

    #[test]
    fn log_file_expands_pid() {
        assert_eq!(
            expand_pid(Path::new("/l/k-%PID%.log"), 42),
            PathBuf::from("/l/k-42.log")
        );
    }
}
