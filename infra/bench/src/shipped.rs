//! The functions' settings as `template.yaml` ships them: for the rows that run the api's code
//! in process (the same `CHUNK_SIZE`, limits and lanes as a deployed api, read the way the
//! deployed function reads them, `Settings::from_lookup` over its environment), and for the
//! cold-start rows (e.g. the WebSocket authorizer's issuer and audiences).

use crate::workload::{env, BoxError};
use local_gateway::template::{Expr, Template};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tasks_core::config::Settings;

pub fn template() -> Result<Template, BoxError> {
    let root = PathBuf::from(env("PROJECT_ROOT", "."));
    Ok(Template::load(&root.join("template.yaml"))?)
}

/// The settings among `binary`'s environment: literals as written, a `!Ref` to a parameter as
/// its default, and `!Join`s of those. The rest (table and queue names, API endpoints) names
/// resources of a deployed stack, so it is left out; empty for a binary the template lacks.
pub fn settings_of(t: &Template, binary: &str) -> BTreeMap<String, String> {
    fn value(t: &Template, expr: &Expr) -> Option<String> {
        match expr {
            Expr::Literal(v) => Some(v.clone()),
            Expr::Ref(parameter) => t.parameters.get(parameter).cloned(),
            Expr::Join(separator, parts) => parts
                .iter()
                .map(|part| value(t, part))
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(separator)),
            _ => None,
        }
    }
    t.functions
        .iter()
        .find(|f| f.binary == binary)
        .map(|f| {
            f.environment
                .iter()
                .filter_map(|(name, expr)| Some((name.clone(), value(t, expr)?)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn api_settings() -> Result<Settings, BoxError> {
    let settings = settings_of(&template()?, "api");
    if settings.is_empty() {
        return Err("template has no api function".into());
    }
    Ok(Settings::from_lookup(|name| settings.get(name).cloned())?)
}
