//! The HTTP client. Answers are decoded into the API's types; a problem answer keeps its status,
//! title and reason.

use std::sync::Arc;

use api::ledger::{Health, LedgerStatus};
use api::offers::{OfferDocument, SearchPage};
use api::providers::ProviderConfigView;
use api::{Did, OfferId, Problem};
use catalog::query::Facets;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("{0} is not a broker URL (expected http://host:port)")]
    BadUrl(String),
    #[error("the broker's event stream sent nothing for {0:?}; reconnect")]
    Stalled(std::time::Duration),
    #[error("{0} is plain http to another machine: use https:// (plain http only to 127.0.0.1, ::1 or localhost)")]
    InsecureUrl(String),
    #[error("cannot reach the broker at {url}: {reason}; is it running (`scripts/run` starts one) and is --broker right?")]
    Unreachable { url: String, reason: String },
    #[error("the broker answered {status} {title}: {detail}")]
    Api {
        status: u16,
        title: String,
        detail: String,
    },
    #[error("unexpected answer from the broker: {0}")]
    Decode(String),
    /// What the broker asked to sign is not what the participant asked for: not signed.
    #[error("not signing: {0}")]
    Mismatch(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("the chain: {0}")]
    Chain(String),
    #[error("peering: {0}")]
    Peering(String),
    #[error("not the pinned broker: {0}")]
    BrokerChanged(String),
}

impl SdkError {
    /// The HTTP status of a problem answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response as the client received it, for observers (tests check every answer against the
/// OpenAPI document).
pub struct Observed<'a> {
    pub method: &'a Method,
    /// The path without the query string.
    pub path: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

type Observer = Arc<dyn Fn(&Observed<'_>) + Send + Sync>;

#[derive(Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// A request body: JSON, or bytes sent as they are (a signed offer's exact JSON).
pub(crate) enum Body<'a> {
    None,
    Json(serde_json::Value),
    Raw(&'a [u8]),
}

impl<'a> Body<'a> {
    pub(crate) fn json<T: Serialize>(v: &T) -> Result<Self, SdkError> {
        serde_json::to_value(v)
            .map(Body::Json)
            .map_err(|e| SdkError::Decode(e.to_string()))
    }
}

impl Client {
    pub fn new(base: &str) -> Result<Self, SdkError> {
        let base = Url::parse(base).map_err(|_| SdkError::BadUrl(base.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SdkError::BadUrl(base.to_string()));
        }
        // Tokens and signed requests cross the wire: plain http only on this machine.
        let loopback = match base.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            None => false,
        };
        if base.scheme() == "http" && !loopback {
            return Err(SdkError::InsecureUrl(base.to_string()));
        }
        Ok(Self {
            base,
            http: reqwest::Client::new(),
            observer: None,
        })
    }

    /// Calls `observer` with every answer read in full (not event streams).
    pub fn observed(mut self, observer: impl Fn(&Observed<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Sends a request and returns the response when it succeeded (its body unread, for streams
    /// and non-JSON answers); a problem answer becomes `SdkError::Api` with its reason.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, SdkError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| SdkError::BadUrl(path.to_string()))?;
        let mut req = self.http.request(method.clone(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(bytes) => req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.to_vec()),
        };
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| SdkError::Unreachable {
            url: self.base.to_string(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let content_type = content_type(&resp);
        let bytes = resp.bytes().await.unwrap_or_default();
        self.observe(
            &method,
            path,
            status.as_u16(),
            content_type.as_deref(),
            &bytes,
        );
        Err(match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) => SdkError::Api {
                status: status.as_u16(),
                title: p.title,
                detail: p.detail,
            },
            Err(_) => SdkError::Api {
                status: status.as_u16(),
                title: status.canonical_reason().unwrap_or("error").into(),
                detail: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            },
        })
    }

    fn observe(&self, method: &Method, path: &str, status: u16, ct: Option<&str>, body: &[u8]) {
        if let Some(o) = &self.observer {
            let path = path.split('?').next().unwrap_or(path);
            o(&Observed {
                method,
                path,
                status,
                content_type: ct,
                body,
            });
        }
    }

    /// The answer's bytes (observed).
    pub(crate) async fn read(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Vec<u8>, SdkError> {
        let resp = self
            .send(method.clone(), path, body, token, headers)
            .await?;
        let status = resp.status().as_u16();
        let ct = content_type(&resp);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| SdkError::Decode(e.to_string()))?;
        self.observe(&method, path, status, ct.as_deref(), &bytes);
        Ok(bytes.to_vec())
    }

    /// Sends a request and decodes its JSON answer into `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<T, SdkError> {
        let bytes = self
            .read(method.clone(), path, body, token, headers)
            .await?;
        decode(&method, path, &bytes)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SdkError> {
        self.call(Method::GET, path, Body::None, None, &[]).await
    }

    /// One page of catalog search results.
    pub async fn search_offers(&self, q: &catalog::Query) -> Result<SearchPage, SdkError> {
        self.get(&format!("/v1/offers?{}", encode(q))).await
    }

    pub async fn offer_facets(&self, q: &catalog::Query) -> Result<Facets, SdkError> {
        self.get(&format!("/v1/offers/facets?{}", encode(q))).await
    }

    pub async fn offer(&self, id: &OfferId) -> Result<OfferDocument, SdkError> {
        self.get(&format!("/v1/offers/{id}")).await
    }

    pub async fn offer_history(&self, id: &OfferId) -> Result<Vec<catalog::Offer>, SdkError> {
        self.get(&format!("/v1/offers/{id}/history")).await
    }

    pub async fn provider_config(&self, did: &Did) -> Result<ProviderConfigView, SdkError> {
        self.get(&format!("/v1/providers/{did}/config")).await
    }

    pub async fn ledger(&self) -> Result<LedgerStatus, SdkError> {
        self.get("/v1/ledger").await
    }

    pub async fn health(&self) -> Result<Health, SdkError> {
        self.get("/health").await
    }
}

/// An answer in the API's types, or an error that names the request and the field that is not.
fn decode<T: DeserializeOwned>(method: &Method, path: &str, bytes: &[u8]) -> Result<T, SdkError> {
    let path = path.split('?').next().unwrap_or(path);
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes)).map_err(
        |e| {
            let field = e.path().to_string();
            SdkError::Decode(format!("{method} {path}: {field}: {}", e.into_inner()))
        },
    )
}

fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn encode(q: &catalog::Query) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in catalog::params::to_pairs(q) {
        out.append_pair(k, &v);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://broker.example.org",
        ] {
            assert!(Client::new(ok).is_ok(), "{ok}");
        }
        for insecure in ["http://broker.example.org", "http://10.0.0.5:8080"] {
            assert!(
                matches!(Client::new(insecure), Err(SdkError::InsecureUrl(_))),
                "{insecure}"
            );
        }
        assert!(matches!(
            Client::new("ftp://127.0.0.1"),
            Err(SdkError::BadUrl(_))
        ));
    }
}
