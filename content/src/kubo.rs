//! Kubo (or any node with its HTTP RPC API: `/api/v0/add`, `cat`, `pin/add`) as a content store.
//! Every CID the node returns and every byte it serves is checked against the CID computed here.

use serde::Deserialize;

use crate::cid::Cid;
use crate::unixfs;
use crate::{BoxFuture, ContentError, ContentStore};

#[derive(Debug, Clone)]
pub struct KuboStore {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Added {
    #[serde(rename = "Hash")]
    hash: String,
}

impl KuboStore {
    /// `base` is the RPC address, e.g. `http://127.0.0.1:5001`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> ContentError {
        ContentError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    async fn call(
        &self,
        path: &str,
        query: &[(&str, String)],
        form: Option<reqwest::multipart::Form>,
    ) -> Result<bytes::Bytes, ContentError> {
        let mut req = self
            .http
            .post(format!("{}/api/v0/{path}", self.base))
            .query(query);
        if let Some(form) = form {
            req = req.multipart(form);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(ContentError::Node500 {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(500).collect(),
            });
        }
        Ok(body)
    }

    pub async fn put(&self, content: &[u8]) -> Result<Cid, ContentError> {
        let expected = unixfs::cid_of(content);
        // Kubo and js-ipfs both want a content type on the file part.
        let part = reqwest::multipart::Part::bytes(content.to_vec())
            .file_name("content")
            .mime_str("application/octet-stream")
            .map_err(|e| self.unreachable(e))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let query = [
            ("cid-version", "1".to_string()),
            ("raw-leaves", "true".to_string()),
            ("chunker", format!("size-{}", unixfs::CHUNK_SIZE)),
            ("hash", "sha2-256".to_string()),
            ("pin", "true".to_string()),
            ("cid-base", "base32".to_string()),
        ];
        let body = self.call("add", &query, Some(form)).await?;
        // One JSON object per line; the last is the file.
        let last = body
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .ok_or_else(|| ContentError::Node500 {
                status: 200,
                body: "empty answer to add".into(),
            })?;
        let added: Added = serde_json::from_slice(last).map_err(|e| ContentError::Node500 {
            status: 200,
            body: format!("unexpected answer to add: {e}"),
        })?;
        let got = Cid::parse(&added.hash)?;
        if got != expected {
            return Err(ContentError::Mismatch { expected, got });
        }
        Ok(got)
    }

    pub async fn get(&self, cid: &Cid, limit: usize) -> Result<Vec<u8>, ContentError> {
        // One byte past the limit tells "too large" from "exactly the limit"; JSON-number APIs
        // (js-ipfs) take at most 2^53 - 1.
        let length = (limit as u64).saturating_add(1).min((1 << 53) - 1);
        let query = [("arg", cid.to_string()), ("length", length.to_string())];
        let body = self.call("cat", &query, None).await?;
        if body.len() > limit {
            return Err(ContentError::TooLarge { limit });
        }
        let got = unixfs::cid_of(&body);
        if got != *cid {
            return Err(ContentError::Mismatch {
                expected: *cid,
                got,
            });
        }
        Ok(body.to_vec())
    }

    pub async fn pin(&self, cid: &Cid) -> Result<(), ContentError> {
        self.call("pin/add", &[("arg", cid.to_string())], None)
            .await
            .map(|_| ())
    }
}

impl ContentStore for KuboStore {
    fn put<'a>(&'a self, content: &'a [u8]) -> BoxFuture<'a, Result<Cid, ContentError>> {
        Box::pin(KuboStore::put(self, content))
    }

    fn get<'a>(
        &'a self,
        cid: &'a Cid,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, ContentError>> {
        Box::pin(KuboStore::get(self, cid, limit))
    }

    fn pin<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, Result<(), ContentError>> {
        Box::pin(KuboStore::pin(self, cid))
    }
}
