//! The reference deployment for the core crate's own tests: the decision
//! sections of `examples/demo/fieldguard.yaml`, read leniently (the rest of
//! the file, listeners to audit, belongs to the proxy crate).

use crate::config::{
    DecisionConfig, EntityConfig, LimitsConfig, PoliciesConfig, RedactionConfig, RouteConfig,
    UnmatchedPolicy,
};
use crate::decisions::Decisions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The decision sections of a configuration file, owned.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sections {
    #[serde(default)]
    pub limits: LimitsConfig,
    pub policies: PoliciesConfig,
    #[serde(default)]
    pub redaction: RedactionConfig,
    #[serde(default)]
    pub unmatched: UnmatchedPolicy,
    #[serde(default)]
    pub shadow: bool,
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub entities: BTreeMap<String, EntityConfig>,
    #[serde(skip)]
    pub file: PathBuf,
}

impl Sections {
    /// Reads the sections of the configuration file `file`.
    pub(crate) fn load(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).unwrap();
        Self::parse(&text, file)
    }

    /// Parses configuration text as if it were the file `file`.
    pub(crate) fn parse(text: &str, file: &Path) -> Self {
        let mut s: Sections =
            serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        s.file = file.to_path_buf();
        s
    }

    /// The decisions these sections build (panics on a bad config).
    pub(crate) fn build(&self) -> Decisions {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn try_build(&self) -> Result<Decisions, crate::error::ConfigError> {
        let base_dir = self.file.parent().unwrap_or(Path::new("."));
        Decisions::build(DecisionConfig {
            file: &self.file,
            base_dir,
            limits: &self.limits,
            policies: &self.policies,
            redaction: &self.redaction,
            unmatched: self.unmatched,
            shadow: self.shadow,
            routes: &self.routes,
            entities: &self.entities,
        })
    }
}

/// `examples/demo/fieldguard.yaml` in the repository.
pub(crate) fn reference_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/fieldguard.yaml")
}

/// The reference deployment's sections.
pub(crate) fn reference() -> Sections {
    Sections::load(&reference_config())
}
