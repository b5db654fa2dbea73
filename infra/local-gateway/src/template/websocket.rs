//! WebSocket APIs: each with its stage and routes, every route resolved to the function its
//! integration invokes and the authorizer function in front of it.

use super::expr::{expr, str_of, Expr};
use super::{shape, TemplateError};
use serde_norway::Value;
use std::collections::BTreeMap;

/// An API Gateway WebSocket API (`AWS::ApiGatewayV2::Api`, `ProtocolType: WEBSOCKET`) with
/// its stage and routes, each route resolved to the function its integration invokes.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketApiSpec {
    pub logical_id: String,
    /// The stage's `StageName`: the URL path (`/{stage}`) and the `@connections` prefix.
    pub stage: String,
    /// `RouteSelectionExpression`; `$request.body.{field}` is the one form understood.
    pub route_selection: String,
    pub routes: Vec<WebSocketRoute>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketRoute {
    /// `$connect`, `$disconnect`, `$default` or a value of the selection field.
    pub key: String,
    /// Logical id of the function the route's integration invokes.
    pub function: String,
    /// Logical id of the REQUEST authorizer's function (`$connect` only, in API Gateway).
    pub authorizer: Option<String>,
    /// The authorizer's `IdentitySource`: request parameters
    /// (`route.request.header.{name}`, `route.request.querystring.{name}`) that must all be
    /// present, or API Gateway answers 401 without invoking it. Empty: it is always invoked.
    pub identity_sources: Vec<String>,
}

/// The function a Lambda integration or authorizer URI names: `${Name.Arn}` in its `!Sub`.
fn function_in_uri(id: &str, uri: &Value) -> Result<String, TemplateError> {
    let text = match expr(uri)? {
        Expr::Sub(text) => text,
        other => return Err(shape(format!("{id}: expected a !Sub URI, got {other:?}"))),
    };
    text.split("${")
        .skip(1)
        .find_map(|rest| rest.split_once(".Arn}").map(|(name, _)| name.to_owned()))
        .ok_or_else(|| shape(format!("{id}: no ${{Function.Arn}} in {text}")))
}

/// The logical id a `!Ref` names.
fn ref_of(id: &str, v: &Value) -> Result<String, TemplateError> {
    match expr(v)? {
        Expr::Ref(name) => Ok(name),
        other => Err(shape(format!("{id}: expected a !Ref, got {other:?}"))),
    }
}

/// The WebSocket APIs among `resources`, each with its stage and routes.
pub(super) fn websocket_apis(
    resources: &serde_norway::Mapping,
) -> Result<Vec<WebSocketApiSpec>, TemplateError> {
    let of_type = |t: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"].as_str() == Some(t))
            .map(|(k, r)| Ok::<_, TemplateError>((str_of(k)?.to_owned(), &r["Properties"])))
    };
    let mut authorizers = BTreeMap::new();
    for entry in of_type("AWS::ApiGatewayV2::Authorizer") {
        let (id, p): (String, &Value) = entry?;
        let sources = p["IdentitySource"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|v| str_of(v).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        authorizers.insert(
            id.clone(),
            (function_in_uri(&id, &p["AuthorizerUri"])?, sources),
        );
    }
    let mut integrations = BTreeMap::new();
    for entry in of_type("AWS::ApiGatewayV2::Integration") {
        let (id, p): (String, &Value) = entry?;
        integrations.insert(id.clone(), function_in_uri(&id, &p["IntegrationUri"])?);
    }
    let mut apis = Vec::new();
    for entry in of_type("AWS::ApiGatewayV2::Api") {
        let (id, p): (String, &Value) = entry?;
        if p["ProtocolType"].as_str() != Some("WEBSOCKET") {
            continue;
        }
        let mut stage = None;
        for entry in of_type("AWS::ApiGatewayV2::Stage") {
            let (sid, sp): (String, &Value) = entry?;
            if ref_of(&sid, &sp["ApiId"])? == id {
                stage = Some(str_of(&sp["StageName"])?.to_owned());
            }
        }
        let mut routes = Vec::new();
        for entry in of_type("AWS::ApiGatewayV2::Route") {
            let (rid, rp): (String, &Value) = entry?;
            if ref_of(&rid, &rp["ApiId"])? != id {
                continue;
            }
            let target = match expr(&rp["Target"])? {
                Expr::Sub(t) => t,
                other => {
                    return Err(shape(format!(
                        "{rid}: Target must be a !Sub, got {other:?}"
                    )))
                }
            };
            let integration = target
                .strip_prefix("integrations/${")
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| shape(format!("{rid}: Target must be integrations/${{Id}}")))?;
            let function = integrations
                .get(integration)
                .ok_or_else(|| shape(format!("{rid}: unknown integration {integration}")))?
                .clone();
            let (authorizer, identity_sources) = match rp.get("AuthorizerId") {
                None => (None, vec![]),
                Some(a) => {
                    let name = ref_of(&rid, a)?;
                    let (function, sources) = authorizers
                        .get(&name)
                        .ok_or_else(|| shape(format!("{rid}: unknown authorizer {name}")))?
                        .clone();
                    (Some(function), sources)
                }
            };
            routes.push(WebSocketRoute {
                key: str_of(&rp["RouteKey"])?.to_owned(),
                function,
                authorizer,
                identity_sources,
            });
        }
        apis.push(WebSocketApiSpec {
            logical_id: id.clone(),
            stage: stage.ok_or_else(|| shape(format!("{id}: no Stage")))?,
            route_selection: str_of(&p["RouteSelectionExpression"])?.to_owned(),
            routes,
        });
    }
    Ok(apis)
}
