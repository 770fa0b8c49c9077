//! The target databases users query, by name, with one default.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlmatic_models::DatabaseSummary;
use sqlmatic_tools::{TargetDatabase, TargetSpec, ToolsConfig};

use crate::{DatabaseConfig, Error, Result};

/// The target databases by name, with the default one.
#[derive(Clone, Debug)]
pub struct Targets {
    by_name: BTreeMap<String, Arc<TargetDatabase>>,
    default: String,
    /// The generated demo stands in for configured targets (it gets the demo's context).
    demo: bool,
}

/// Where a target's business context comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// The file `context:` names (reloaded when it changes).
    File(std::path::PathBuf),
    /// Text compiled into the binary (the demo's).
    Embedded(&'static str),
}

impl Targets {
    /// Builds the configured targets; with none configured, the bundled demo database
    /// (generated at `database.demo_path` if missing; feature `demo`, on by default). Blocking
    /// when it generates the demo.
    pub fn open(config: &DatabaseConfig, tools: &ToolsConfig) -> Result<Self> {
        if config.targets.is_empty() {
            return Self::demo(config, tools);
        }
        Ok(Self::from_specs(config.targets.clone(), tools))
    }

    #[cfg(feature = "demo")]
    fn demo(config: &DatabaseConfig, tools: &ToolsConfig) -> Result<Self> {
        crate::demo::ensure(&config.demo_path)?;
        let mut targets = Self::from_specs(vec![crate::demo::spec(&config.demo_path)], tools);
        targets.demo = true;
        Ok(targets)
    }

    #[cfg(not(feature = "demo"))]
    fn demo(_config: &DatabaseConfig, _tools: &ToolsConfig) -> Result<Self> {
        Err(Error::InvalidInput(
            "no target database is configured (database.targets), and this build has no demo \
             database (feature `demo`)"
                .into(),
        ))
    }

    /// Targets from specs (the one marked `default`, else the first, is the default).
    pub fn from_specs(specs: Vec<TargetSpec>, tools: &ToolsConfig) -> Self {
        let default = specs
            .iter()
            .find(|s| s.default)
            .or(specs.first())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let by_name = specs
            .into_iter()
            .map(|s| {
                let target = TargetDatabase::new(s, tools);
                (target.name().to_owned(), target)
            })
            .collect();
        Self { by_name, default, demo: false }
    }

    /// Where the business context of target `name` comes from, if it has one.
    pub fn context_source(&self, name: &str) -> Option<ContextSource> {
        let target = self.by_name.get(name)?;
        match &target.spec().context {
            Some(path) => Some(ContextSource::File(path.clone())),
            #[cfg(feature = "demo")]
            None if self.demo => Some(ContextSource::Embedded(crate::demo::CONTEXT)),
            None => None,
        }
    }

    /// Checks every target once at start-up. An unhealthy one (a missing file, a server that is
    /// down) is logged and named by `/readyz` while the others serve; a PostgreSQL role that
    /// could write or escape, or read a masked column, is a configuration error.
    pub async fn check(&self) -> Result<()> {
        for target in self.by_name.values() {
            match target.verify().await {
                Err(e) if e.code == sqlmatic_models::Code::UnsafeRole => {
                    return Err(Error::InvalidInput(e.model_message));
                }
                Err(e) => log::warn!("target database `{}`: {}", target.name(), e.model_message),
                Ok(()) => match target.health().await {
                    Ok(sqlmatic_tools::OpenMode::ReadOnly) => {}
                    Ok(mode) => log::warn!("target database `{}` opened {mode:?}", target.name()),
                    Err(e) => {
                        log::warn!("target database `{}`: {}", target.name(), e.model_message)
                    }
                },
            }
        }
        Ok(())
    }

    /// The default target's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The named target, or the default for `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<TargetDatabase>> {
        let name = name.unwrap_or(&self.default);
        self.by_name.get(name).cloned().ok_or_else(|| Error::UnknownDatabase {
            name: name.chars().take(100).collect(),
            known: self.by_name.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every target, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<TargetDatabase>> {
        self.by_name.values()
    }

    /// What `GET /api/databases` lists.
    pub fn summaries(&self) -> Vec<DatabaseSummary> {
        self.by_name.values().map(|t| t.summary(t.name() == self.default)).collect()
    }
}
