//! log4rs set-up from the `logging` section: a console appender and a size-rolled file appender
//! (fixed window, gzip). Only `main` initializes it; libraries just use the `log` macros, with
//! their module paths as logger names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use log::LevelFilter;
use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::append::rolling_file::RollingFileAppender;
use log4rs::append::rolling_file::policy::compound::CompoundPolicy;
use log4rs::append::rolling_file::policy::compound::roll::fixed_window::FixedWindowRoller;
use log4rs::append::rolling_file::policy::compound::trigger::size::SizeTrigger;
use log4rs::config::{Appender, Logger, Root};
use log4rs::encode::pattern::PatternEncoder;
use serde::{Deserialize, Serialize};

/// `logging:` in `config/config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Root level: off, error, warn, info, debug, trace.
    pub level: String,
    /// Per-module levels, e.g. `sqlmatic_tools: debug` shows every SQL statement.
    pub modules: BTreeMap<String, String>,
    /// log4rs pattern (see log4rs' PatternEncoder).
    pub pattern: String,
    pub console: bool,
    /// The log file; empty: no file.
    pub file: Option<PathBuf>,
    /// The file rolls over past this size.
    pub file_max_bytes: u64,
    /// Rolled files kept (`sqlmatic.1.log.gz` … `sqlmatic.N.log.gz`).
    pub file_count: u32,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            modules: BTreeMap::from([("actix_server".into(), "warn".into())]),
            pattern: "{d(%Y-%m-%dT%H:%M:%S%.3fZ)(utc)} {h({l:<5})} {t} - {m}{n}".into(),
            console: true,
            file: Some(PathBuf::from("logs/sqlmatic.log")),
            file_max_bytes: 10 * 1024 * 1024,
            file_count: 5,
        }
    }
}

fn level(s: &str, key: &str) -> Result<LevelFilter, String> {
    s.parse().map_err(|_| {
        format!("{key}: `{s}` is not a log level (off, error, warn, info, debug, trace)")
    })
}

impl LoggingConfig {
    pub fn validate(&self) -> Result<(), String> {
        level(&self.level, "logging.level")?;
        for (module, l) in &self.modules {
            level(l, &format!("logging.modules.{module}"))?;
        }
        if self.file_count == 0 {
            return Err("logging.file_count must be at least 1".into());
        }
        if self.file_max_bytes < 1024 {
            return Err("logging.file_max_bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The log4rs configuration this section describes.
    pub fn build(&self) -> Result<log4rs::Config, String> {
        let mut builder = log4rs::Config::builder();
        let mut appenders = Vec::new();
        if self.console {
            let console = ConsoleAppender::builder()
                .target(Target::Stderr)
                .encoder(Box::new(PatternEncoder::new(&self.pattern)))
                .build();
            builder = builder.appender(Appender::builder().build("console", Box::new(console)));
            appenders.push("console");
        }
        if let Some(file) = self.file.as_ref().filter(|f| !f.as_os_str().is_empty()) {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("sqlmatic");
            let dir = file.parent().map(PathBuf::from).unwrap_or_default();
            let archive = dir.join(format!("{stem}.{{}}.log.gz"));
            let roller = FixedWindowRoller::builder()
                .base(1)
                .build(&archive.to_string_lossy(), self.file_count)
                .map_err(|e| format!("logging.file: {e}"))?;
            let policy = CompoundPolicy::new(
                Box::new(SizeTrigger::new(self.file_max_bytes)),
                Box::new(roller),
            );
            let appender = RollingFileAppender::builder()
                .encoder(Box::new(PatternEncoder::new(&self.pattern)))
                .build(file, Box::new(policy))
                .map_err(|e| format!("logging.file {}: {e}", file.display()))?;
            builder = builder.appender(Appender::builder().build("file", Box::new(appender)));
            appenders.push("file");
        }
        for (module, l) in &self.modules {
            builder = builder.logger(Logger::builder().build(module, level(l, module)?));
        }
        builder
            .build(Root::builder().appenders(appenders).build(level(&self.level, "logging.level")?))
            .map_err(|e| format!("logging: {e}"))
    }
}

/// Installs the global logger. Can succeed once per process.
pub fn init(config: &LoggingConfig) -> anyhow::Result<log4rs::Handle> {
    let config = config.build().map_err(anyhow::Error::msg)?;
    Ok(log4rs::init_config(config)?)
}
