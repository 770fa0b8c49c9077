//! Configuration loading with figment. Later wins: built-in defaults → `config/config.yaml`
//! (`default` profile, then the profile named by `SQLMATIC_ENV`, default `development`) →
//! `SQLMATIC_<SECTION>__<KEY>` environment variables → CLI flags. Each crate owns its section.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use serde::{Deserialize, Serialize};
use sqlmatic_agent::{AgentConfig, MemoryConfig};
use sqlmatic_services::DatabaseConfig;
use sqlmatic_tools::ToolsConfig;

use crate::logging::LoggingConfig;

/// The file read when `--config` is not given; it may be missing.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.yaml";
/// The environment variable naming the profile.
pub const PROFILE_ENV: &str = "SQLMATIC_ENV";
pub const DEFAULT_PROFILE: &str = "development";
pub const PROFILES: &[&str] = &["default", "development", "production"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub logging: LoggingConfig,
    pub agent: AgentConfig,
    pub memory: MemoryConfig,
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub tools: ToolsConfig,
}

/// `api:`: the HTTP and WebSocket server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest JSON request body accepted.
    pub body_limit_bytes: usize,
    /// Largest WebSocket frame (and message) accepted from a client.
    pub ws_max_frame_bytes: usize,
    /// Events queued for one WebSocket client at most; a client that falls further behind is
    /// disconnected.
    pub ws_buffer_size: usize,
    /// How often the server pings WebSocket clients.
    pub ws_heartbeat_interval_ms: u64,
    /// A WebSocket client silent (no message, no pong) this long is disconnected.
    pub ws_idle_timeout_ms: u64,
    /// How often `metrics_update` is pushed to `metrics` subscribers.
    pub metrics_interval_ms: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout_secs: u64,
    pub auth: crate::auth::AuthConfig,
    /// Origins allowed to call the API from a browser (CORS); empty: same origin only; `*`: any.
    pub allowed_origins: Vec<String>,
    pub rate_limit: crate::auth::RateLimitConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            body_limit_bytes: 256 * 1024,
            ws_max_frame_bytes: 64 * 1024,
            ws_buffer_size: 256,
            ws_heartbeat_interval_ms: 15_000,
            ws_idle_timeout_ms: 45_000,
            metrics_interval_ms: 5_000,
            shutdown_timeout_secs: 10,
            auth: Default::default(),
            allowed_origins: Vec::new(),
            rate_limit: Default::default(),
        }
    }
}

impl ApiConfig {
    fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("api.host must not be empty".into());
        }
        if self.body_limit_bytes < 1024 {
            return Err("api.body_limit_bytes must be at least 1024".into());
        }
        if self.ws_max_frame_bytes < 1024 {
            return Err("api.ws_max_frame_bytes must be at least 1024".into());
        }
        if self.ws_buffer_size == 0 {
            return Err("api.ws_buffer_size must be greater than 0".into());
        }
        if self.ws_heartbeat_interval_ms == 0
            || self.ws_idle_timeout_ms <= self.ws_heartbeat_interval_ms
        {
            return Err(
                "api.ws_idle_timeout_ms must be greater than api.ws_heartbeat_interval_ms (> 0)"
                    .into(),
            );
        }
        if self.metrics_interval_ms < 100 {
            return Err("api.metrics_interval_ms must be at least 100".into());
        }
        Ok(())
    }
}

/// Values from CLI flags, applied last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(
        "unknown profile `{0}` in {PROFILE_ENV}; profiles are: default, development, production"
    )]
    UnknownProfile(String),
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `--config`; `None` means the default path, which may be missing.
    pub file: Option<PathBuf>,
    /// The profile; `None` reads `SQLMATIC_ENV`.
    pub profile: Option<String>,
    pub cli: CliOverrides,
}

impl Config {
    pub fn figment(sources: &Sources) -> Result<Figment, ConfigError> {
        let path = match &sources.file {
            Some(p) if !p.exists() => return Err(ConfigError::MissingFile(p.clone())),
            Some(p) => p.clone(),
            None => PathBuf::from(DEFAULT_CONFIG_PATH),
        };
        let profile = match &sources.profile {
            Some(p) => p.clone(),
            None => std::env::var(PROFILE_ENV).unwrap_or_else(|_| DEFAULT_PROFILE.into()),
        };
        if !PROFILES.contains(&profile.as_str()) {
            return Err(ConfigError::UnknownProfile(profile));
        }
        let mut cli = serde_json::Map::new();
        if let Some(host) = &sources.cli.host {
            cli.insert("host".into(), host.clone().into());
        }
        if let Some(port) = sources.cli.port {
            cli.insert("port".into(), port.into());
        }
        Ok(Figment::from(Serialized::defaults(Config::default()))
            .merge(Yaml::file(&path).nested())
            .select(profile)
            .merge(
                // only SQLMATIC_<SECTION>__<KEY> is configuration; other SQLMATIC_* variables
                // (SQLMATIC_ENV, SQLMATIC_CONFIG, test switches) belong to someone else
                Env::prefixed("SQLMATIC_")
                    // target passwords are per list entry, which figment cannot merge into a
                    // list: `load` reads them
                    .filter(|key| {
                        key.as_str().contains("__")
                            && !key.as_str().to_ascii_uppercase().starts_with("DATABASE__TARGETS__")
                    })
                    .split("__")
                    .global(),
            )
            .merge(Serialized::global("api", serde_json::Value::Object(cli))))
    }

    /// Loads, validates and checks that secrets did not come from a file.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let figment = Self::figment(sources)?;
        let mut config: Config =
            figment.extract().map_err(|e| ConfigError::Invalid(describe(e)))?;
        for (i, target) in config.database.targets.iter_mut().enumerate() {
            if target.password.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "database.targets[{i}].password was set in a file; secrets are read from the \
                     environment only (SQLMATIC_DATABASE__TARGETS__{i}__PASSWORD, or password_env)"
                )));
            }
            target.password =
                std::env::var(format!("SQLMATIC_DATABASE__TARGETS__{i}__PASSWORD")).ok();
        }
        if config.agent.api_key.is_some()
            && let Some(meta) = figment.find_metadata("agent.api_key")
            && !meta.name.to_lowercase().contains("environment")
        {
            return Err(ConfigError::Invalid(format!(
                "agent.api_key was set in {}; secrets are read from the environment only \
                 (SQLMATIC_AGENT__API_KEY)",
                meta.name
            )));
        }
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.logging.validate()?;
        self.agent.validate()?;
        self.memory.validate()?;
        self.database.validate()?;
        self.api.validate()?;
        self.tools.validate()?;
        Ok(())
    }

    /// A copy safe to print: secrets replaced by a marker.
    pub fn redacted(&self) -> Self {
        Self { agent: self.agent.redacted(), ..self.clone() }
    }

    pub fn config_path(sources: &Sources) -> &Path {
        sources.file.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }
}

/// Every error figment found, each naming its key and where the value came from.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let mut line = e.to_string();
            if !e.path.is_empty() && !line.contains(&e.path.join(".")) {
                line = format!("{}: {line}", e.path.join("."));
            }
            let from_env =
                e.metadata.as_ref().is_some_and(|m| m.name.to_lowercase().contains("environment"));
            if from_env && !e.path.is_empty() {
                line.push_str(&format!(" (set by SQLMATIC_{})", e.path.join("__").to_uppercase()));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) error type; not ours to box.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn sources(file: Option<&str>) -> Sources {
        Sources { file: file.map(PathBuf::from), profile: None, cli: CliOverrides::default() }
    }

    #[test]
    fn defaults_without_a_file() {
        Jail::expect_with(|_jail| {
            let c = Config::load(&sources(None)).map_err(|e| e.to_string())?;
            assert_eq!(c, Config::default());
            Ok(())
        });
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        Jail::expect_with(|_jail| {
            let err = Config::load(&sources(Some("nope.yaml"))).unwrap_err();
            assert!(matches!(err, ConfigError::MissingFile(_)));
            Ok(())
        });
    }

    #[test]
    fn layering_profile_env_cli() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "c.yaml",
                "default:\n  api:\n    port: 9000\n    host: 0.0.0.0\n  tools:\n    max_rows: 10\n\
                 production:\n  api:\n    port: 9100\n",
            )?;
            let c = Config::load(&sources(Some("c.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                (c.api.port, c.tools.max_rows),
                (9000, 10),
                "development falls back to default"
            );
            jail.set_env("SQLMATIC_ENV", "production");
            jail.set_env("SQLMATIC_CONFIG", "c.yaml"); // read by the CLI, not a config key
            jail.set_env("SQLMATIC_SOMETHING_ELSE", "1"); // not SECTION__KEY: not configuration
            let c = Config::load(&sources(Some("c.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.api.port, 9100);
            jail.set_env("SQLMATIC_API__PORT", "9200");
            jail.set_env("SQLMATIC_TOOLS__MAX_ROWS", "20");
            let c = Config::load(&sources(Some("c.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!((c.api.port, c.tools.max_rows), (9200, 20), "env beats the profile");
            let mut s = sources(Some("c.yaml"));
            s.cli.port = Some(9300);
            let c = Config::load(&s).map_err(|e| e.to_string())?;
            assert_eq!((c.api.port, c.api.host.as_str()), (9300, "0.0.0.0"), "CLI beats env");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_source() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "default:\n  api:\n    prot: 1\n")?;
            let err = Config::load(&sources(Some("c.yaml"))).unwrap_err().to_string();
            assert!(err.contains("prot") && err.contains("c.yaml"), "{err}");
            jail.create_file("d.yaml", "default:\n  tools:\n    max_rows: many\n")?;
            let err = Config::load(&sources(Some("d.yaml"))).unwrap_err().to_string();
            assert!(err.contains("max_rows") && err.contains("d.yaml"), "{err}");
            jail.set_env("SQLMATIC_API__PORT", "high");
            let err = Config::load(&sources(None)).unwrap_err().to_string();
            assert!(err.contains("port") && err.contains("SQLMATIC_API__PORT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn validation_and_secrets() {
        Jail::expect_with(|jail| {
            jail.create_file("c.yaml", "default:\n  tools:\n    max_rows: 0\n")?;
            let err = Config::load(&sources(Some("c.yaml"))).unwrap_err().to_string();
            assert!(err.contains("tools.max_rows"), "{err}");
            jail.create_file("s.yaml", "default:\n  agent:\n    api_key: sk-oops\n")?;
            let err = Config::load(&sources(Some("s.yaml"))).unwrap_err().to_string();
            assert!(err.contains("environment only"), "{err}");
            jail.set_env("SQLMATIC_AGENT__API_KEY", "sk-secret");
            let c = Config::load(&sources(None)).map_err(|e| e.to_string())?;
            assert_eq!(c.agent.api_key.as_deref(), Some("sk-secret"));
            let printed = serde_yaml_like(&c.redacted());
            assert!(!printed.contains("sk-secret") && printed.contains("<redacted>"));
            jail.set_env("SQLMATIC_ENV", "staging");
            assert!(matches!(Config::load(&sources(None)), Err(ConfigError::UnknownProfile(_))));
            Ok(())
        });
    }

    #[test]
    fn postgres_targets_take_their_password_from_the_environment_only() {
        Jail::expect_with(|jail| {
            let target = "default:\n  database:\n    targets:\n      - name: shop\n        url: postgres://ro@db.internal:5432/shop\n        schemas: [public, sales]\n        masked_columns: [sales.customers.card]\n";
            jail.create_file("pg.yaml", target)?;
            jail.set_env("SQLMATIC_DATABASE__TARGETS__0__PASSWORD", "s3cret");
            let c = Config::load(&sources(Some("pg.yaml"))).map_err(|e| e.to_string())?;
            let t = &c.database.targets[0];
            assert_eq!(t.password.as_deref(), Some("s3cret"));
            assert_eq!(t.schemas, ["public", "sales"]);
            assert!(!serde_yaml_like(&c).contains("s3cret"), "the password is never written out");
            jail.create_file("leak.yaml", &format!("{target}        password: oops\n"))?;
            let err = Config::load(&sources(Some("leak.yaml"))).unwrap_err().to_string();
            assert!(err.contains("environment only"), "{err}");
            jail.create_file("both.yaml", &format!("{target}        path: x.db\n"))?;
            let err = Config::load(&sources(Some("both.yaml"))).unwrap_err().to_string();
            assert!(err.contains("not both"), "{err}");
            jail.create_file(
                "bad.yaml",
                &target.replace("postgres://ro@db.internal:5432/shop", "mysql://x"),
            )?;
            let err = Config::load(&sources(Some("bad.yaml"))).unwrap_err().to_string();
            assert!(err.contains("postgres://"), "{err}");
            Ok(())
        });
    }

    fn serde_yaml_like(c: &Config) -> String {
        serde_json::to_string(c).unwrap()
    }

    #[test]
    fn the_committed_config_parses_in_every_profile() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/config.yaml");
        assert!(path.exists(), "{} is missing", path.display());
        // in a Jail: Jail tests set SQLMATIC_* variables, and Jails run one at a time
        Jail::expect_with(|_jail| {
            for profile in PROFILES {
                let s = Sources {
                    file: Some(path.clone()),
                    profile: Some((*profile).into()),
                    cli: CliOverrides::default(),
                };
                let c = Config::load(&s).map_err(|e| format!("profile {profile}: {e}"))?;
                assert_eq!(c.tools.max_rows, 1000, "profile {profile}");
            }
            Ok(())
        });
    }
}
