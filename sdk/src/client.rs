//! The HTTP client. Errors from the broker arrive as RFC 9457 problems and keep their reason.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

pub use catalog::api::{OfferDocument, SearchItem, SearchPage};

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("{0} is not a broker URL (expected http://host:port)")]
    BadUrl(String),
    #[error("cannot reach the broker at {url}: {reason}; is `mercato-broker` running?")]
    Unreachable { url: String, reason: String },
    #[error("the broker answered {status} {title}: {detail}")]
    Api {
        status: u16,
        title: String,
        detail: String,
    },
    #[error("unexpected answer from the broker: {0}")]
    Decode(String),
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Contracts {
    pub credit_token: String,
    pub participant_registry: String,
    pub marketplace: String,
    pub billing_models: String,
    pub usage_settlement: String,
    pub credential_registry: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    pub chain_id: u64,
    pub rpc_url: String,
    pub block_number: u64,
    pub deployment_block: u64,
    pub broker_account: String,
    pub contracts: Contracts,
}

fn encode(q: &catalog::Query) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in catalog::params::to_pairs(q) {
        out.append_pair(k, &v);
    }
    out.finish()
}

#[derive(Debug, Deserialize)]
struct Problem {
    title: String,
    #[serde(default)]
    detail: String,
}

#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Result<Self, SdkError> {
        let base = Url::parse(base).map_err(|_| SdkError::BadUrl(base.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SdkError::BadUrl(base.to_string()));
        }
        Ok(Self {
            base,
            http: reqwest::Client::new(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SdkError> {
        self.request(reqwest::Method::GET, path, None, None).await
    }

    /// Sends a request; a problem answer becomes `SdkError::Api` with its reason.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        token: Option<&str>,
    ) -> Result<T, SdkError> {
        self.request_with(method, path, body, token, &[]).await
    }

    /// `request` with extra headers.
    pub(crate) async fn request_with<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<T, SdkError> {
        let resp = self.send(method, path, body, token, headers).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| SdkError::Decode(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| SdkError::Decode(e.to_string()))
    }

    /// Sends a request and returns the response when it succeeded (its body unread, for streams
    /// and non-JSON answers); a problem answer becomes `SdkError::Api` with its reason.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, SdkError> {
        let url = self.url(path)?;
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
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
        let bytes = resp.bytes().await.unwrap_or_default();
        let p: Problem = serde_json::from_slice(&bytes).unwrap_or(Problem {
            title: status.canonical_reason().unwrap_or("error").into(),
            detail: String::from_utf8_lossy(&bytes).into_owned(),
        });
        Err(SdkError::Api {
            status: status.as_u16(),
            title: p.title,
            detail: p.detail,
        })
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url, SdkError> {
        self.base
            .join(path)
            .map_err(|_| SdkError::BadUrl(path.to_string()))
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// One page of catalog search results.
    pub async fn search_offers(&self, q: &catalog::Query) -> Result<SearchPage, SdkError> {
        self.get(&format!("/v1/offers?{}", encode(q))).await
    }

    pub async fn offer_facets(
        &self,
        q: &catalog::Query,
    ) -> Result<catalog::query::Facets, SdkError> {
        self.get(&format!("/v1/offers/facets?{}", encode(q))).await
    }

    pub async fn offer(&self, id: &str) -> Result<OfferDocument, SdkError> {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        self.get(&format!("/v1/offers/{id}")).await
    }

    pub async fn ledger(&self) -> Result<LedgerStatus, SdkError> {
        self.get("/v1/ledger").await
    }

    pub async fn health(&self) -> Result<serde_json::Value, SdkError> {
        self.get("/health").await
    }
}
