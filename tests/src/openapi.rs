//! Real answers against the generated OpenAPI document: every answer a client records is matched
//! to its operation (method, path template, status, media type) and its body validated against
//! the operation's schema (JSON Schema 2020-12, as OpenAPI 3.1 uses).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One answer as the client saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Collects the answers of the clients it is attached to.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    pub fn attach(&self, client: sdk::Client) -> sdk::Client {
        let log = self.0.clone();
        client.observed(move |o| {
            log.lock().unwrap().push(Recorded {
                method: o.method.as_str().to_lowercase(),
                path: o.path.to_string(),
                status: o.status,
                content_type: o.content_type.map(str::to_string),
                body: o.body.to_vec(),
            })
        })
    }

    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// The document and the validators made from it.
pub struct Document {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl Document {
    pub async fn fetch(url: &str) -> Self {
        let doc: Value = reqwest::get(format!("{url}/v1/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self::new(doc)
    }

    pub fn new(doc: Value) -> Self {
        Self {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    pub fn value(&self) -> &Value {
        &self.doc
    }

    /// The path template an actual path matches (`/v1/contracts/0x…` → `/v1/contracts/{id}`);
    /// literal segments win over parameters.
    pub fn template(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, String)> = None;
        for template in self.doc["paths"].as_object()?.keys() {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let fits = t.iter().zip(&segments).all(|(a, b)| {
                if a.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    a == b
                }
            });
            if fits && best.as_ref().is_none_or(|(n, _)| literal > *n) {
                best = Some((literal, template.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    fn validator(&self, pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().unwrap();
        if let Some(v) = cache.get(pointer) {
            return Ok(v.clone());
        }
        // The operation's schema with the document's components beside it, so
        // `#/components/schemas/…` references resolve.
        let schema = self
            .doc
            .pointer(pointer)
            .ok_or_else(|| format!("no schema at {pointer}"))?;
        let mut root = match schema {
            Value::Object(o) => Value::Object(o.clone()),
            other => return Err(format!("the schema at {pointer} is {other}")),
        };
        root["components"] = self.doc["components"].clone();
        root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
        let v = Arc::new(
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|e| format!("schema at {pointer}: {e}"))?,
        );
        cache.insert(pointer.to_string(), v.clone());
        Ok(v)
    }

    /// Checks one answer; the reason when it does not conform.
    pub fn check(&self, r: &Recorded) -> Result<(), String> {
        let what = format!("{} {} → {}", r.method.to_uppercase(), r.path, r.status);
        let template = self
            .template(&r.path)
            .ok_or_else(|| format!("{what}: no such path in the document"))?;
        let op = &self.doc["paths"][&template][&r.method];
        if op.is_null() {
            return Err(format!("{what}: {template} documents no {}", r.method));
        }
        let status = r.status.to_string();
        let response = &op["responses"][&status];
        if response.is_null() {
            return Err(format!(
                "{what}: status {status} is not documented for {template}"
            ));
        }
        let media = r
            .content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .unwrap_or("")
            .trim()
            .to_string();
        let content = &response["content"][&media];
        if content.is_null() {
            return Err(format!("{what}: media type {media:?} is not documented"));
        }
        if !media.ends_with("json") {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("{what}: the body is not JSON: {e}"))?;
        let pointer = format!(
            "/paths/{}/{}/responses/{}/content/{}/schema",
            escape(&template),
            r.method,
            status,
            escape(&media)
        );
        let validator = self.validator(&pointer)?;
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}", errors.join("; ")))
        }
    }

    /// Checks every answer; returns how many were checked, or every failure.
    pub fn check_all(&self, answers: &[Recorded]) -> Result<usize, String> {
        let failures: Vec<String> = answers.iter().filter_map(|r| self.check(r).err()).collect();
        if failures.is_empty() {
            Ok(answers.len())
        } else {
            Err(failures.join("\n"))
        }
    }
}
