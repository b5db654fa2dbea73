//! The api function's settings as `template.yaml` ships them, for the rows that run the api's
//! code in process: the same `CHUNK_SIZE`, limits and lanes as a deployed api, read the way
//! the deployed function reads them (`Settings::from_lookup` over its environment).

use crate::end_to_end::{env, BoxError};
use local_gateway::template::{Expr, Template};
use std::path::PathBuf;
use tasks_core::config::Settings;

pub fn template() -> Result<Template, BoxError> {
    let root = PathBuf::from(env("PROJECT_ROOT", "."));
    Ok(Template::load(&root.join("template.yaml"))?)
}

pub fn api_settings() -> Result<Settings, BoxError> {
    let t = template()?;
    let api = t
        .functions
        .iter()
        .find(|f| f.binary == "api")
        .ok_or("template has no api function")?;
    // Literals as written, `!Ref` to a parameter as its default; the rest (queue URLs,
    // secrets) is no setting.
    let value = |name: &str| match api.environment.get(name) {
        Some(Expr::Literal(v)) => Some(v.clone()),
        Some(Expr::Ref(parameter)) => t.parameters.get(parameter).cloned(),
        _ => None,
    };
    Ok(Settings::from_lookup(value)?)
}
