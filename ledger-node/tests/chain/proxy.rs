//! A JSON-RPC proxy in front of Anvil that misbehaves on purpose for `eth_sendRawTransaction`:
//! it can lose the node's answer (the node did get the transaction), drop the request before the
//! node sees it, or refuse it for good.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Forward, then answer 503 as if the answer was lost.
    LoseAnswer,
    /// Answer 503 without forwarding.
    DropRequest,
    /// Answer a JSON-RPC error, a definitive refusal.
    Refuse,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    fault: Fault,
    /// Raw transactions to pass before faults start.
    pass_first: usize,
    /// How many faults to inject.
    faults: usize,
    seen: Arc<AtomicUsize>,
    pub forwarded_raw: Arc<AtomicUsize>,
}

pub struct Handle {
    pub url: String,
    pub forwarded_raw: Arc<AtomicUsize>,
}

async fn handle(State(p): State<Proxy>, body: Bytes) -> Response {
    let is_raw = std::str::from_utf8(&body).is_ok_and(|b| b.contains("eth_sendRawTransaction"));
    let fault = if is_raw {
        let n = p.seen.fetch_add(1, Ordering::SeqCst);
        n >= p.pass_first && n < p.pass_first + p.faults
    } else {
        false
    };
    if fault && matches!(p.fault, Fault::DropRequest) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if fault && matches!(p.fault, Fault::Refuse) {
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| v["id"].clone())
            .unwrap_or_default();
        return axum::Json(serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":-32000,"message":"refused by policy"}})).into_response();
    }
    if is_raw {
        p.forwarded_raw.fetch_add(1, Ordering::SeqCst);
    }
    let upstream = p
        .http
        .post(&p.upstream)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await;
    if fault {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match upstream {
        Ok(r) => {
            let bytes = r.bytes().await.unwrap_or_default();
            ([("content-type", "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

pub async fn start(upstream: &str, fault: Fault, pass_first: usize, faults: usize) -> Handle {
    let forwarded_raw = Arc::new(AtomicUsize::new(0));
    let state = Proxy {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        fault,
        pass_first,
        faults,
        seen: Arc::new(AtomicUsize::new(0)),
        forwarded_raw: forwarded_raw.clone(),
    };
    let app = Router::new().route("/", post(handle)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Handle { url, forwarded_raw }
}
