//! Reads `template.yaml`: every function (by its `Handler`, the name of its crate under
//! `functions/`) and the HTTP routes that reach it. The local host serves exactly these.

use anyhow::{Context, bail};
use serde_norway::Value;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub logical_id: String,
    /// `Handler`: the function's crate under `functions/`.
    pub function: String,
    /// `Metadata.BuildProperties.Binary`: the bundle (`bundles/<name>`, its `CodeUri`) whose
    /// binary runs it, as it runs the other functions that name it.
    pub bundle: String,
    pub routes: Vec<RouteDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDef {
    pub method: String,
    pub path: String,
    /// `Auth: { Authorizer: NONE }`: API Gateway runs no authorizer for this route.
    pub public: bool,
    /// Served by the function's own URL with response streaming (`FunctionUrlConfig` with
    /// `InvokeMode: RESPONSE_STREAM`, at `Metadata.UrlPath`), not by API Gateway: public,
    /// and its body is streamed as the handler writes it.
    pub stream: bool,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub functions: Vec<Function>,
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(Value::String(key.to_owned()))
}

fn text(v: &Value, key: &str) -> Option<String> {
    get(v, key).and_then(Value::as_str).map(str::to_owned)
}

impl Template {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&raw).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let doc: Value = serde_norway::from_str(raw)?;
        let resources = get(&doc, "Resources")
            .and_then(Value::as_mapping)
            .context("the template has no Resources")?;
        let mut functions = Vec::new();
        for (id, res) in resources {
            if text(res, "Type").as_deref() != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = id.as_str().unwrap_or_default().to_owned();
            let bundle = get(res, "Metadata")
                .and_then(|m| get(m, "BuildProperties"))
                .and_then(|b| text(b, "Binary"))
                .with_context(|| format!("{logical_id} has no Metadata.BuildProperties.Binary"))?;
            let function = get(res, "Properties")
                .and_then(|p| text(p, "Handler"))
                .with_context(|| format!("{logical_id} has no Handler"))?;
            let mut routes = Vec::new();
            let events = get(res, "Properties")
                .and_then(|p| get(p, "Events"))
                .and_then(Value::as_mapping);
            for (_, ev) in events.into_iter().flatten() {
                if text(ev, "Type").as_deref() != Some("HttpApi") {
                    continue;
                }
                let props = get(ev, "Properties").context("an HttpApi event without Properties")?;
                let (Some(method), Some(path)) = (text(props, "Method"), text(props, "Path"))
                else {
                    bail!("{logical_id}: HttpApi events need Method and Path");
                };
                let public = get(props, "Auth")
                    .and_then(|a| text(a, "Authorizer"))
                    .is_some_and(|a| a == "NONE");
                routes.push(RouteDef {
                    method: method.to_ascii_uppercase(),
                    path,
                    public,
                    stream: false,
                });
            }
            let url = get(res, "Properties").and_then(|p| get(p, "FunctionUrlConfig"));
            let url_path = get(res, "Metadata").and_then(|m| text(m, "UrlPath"));
            match (url, url_path) {
                (Some(cfg), Some(path)) => {
                    if text(cfg, "InvokeMode").as_deref() != Some("RESPONSE_STREAM")
                        || text(cfg, "AuthType").as_deref() != Some("NONE")
                    {
                        bail!("{logical_id}: a UrlPath function streams with AuthType NONE");
                    }
                    routes.push(RouteDef {
                        method: "GET".into(),
                        path,
                        public: true,
                        stream: true,
                    });
                }
                (None, None) => {}
                _ => bail!("{logical_id}: FunctionUrlConfig and Metadata.UrlPath go together"),
            }
            functions.push(Function {
                logical_id,
                function,
                bundle,
                routes,
            });
        }
        Ok(Self { functions })
    }

    pub fn routes(&self) -> impl Iterator<Item = (&Function, &RouteDef)> {
        self.functions
            .iter()
            .flat_map(|f| f.routes.iter().map(move |r| (f, r)))
    }
}
