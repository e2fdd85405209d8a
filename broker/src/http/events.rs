//! `GET /v1/events`: the outbox as server-sent events, filtered by what the caller may see.
//! Resumable: `Last-Event-ID` (or `?after=`) continues after an event; without either the stream
//! starts at the newest event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;

use super::problem::Problem;
use super::AppState;
use crate::events::outbox::{self, Event};
use crate::identity::{now, Principal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    pub after: Option<u64>,
}

/// How long a quiet stream waits before looking at the outbox again (events relayed by other
/// broker processes arrive this way).
const POLL: Duration = Duration::from_millis(500);

struct Cursor {
    state: AppState,
    who: Principal,
    seq: u64,
    ready: VecDeque<Event>,
    /// Read the outbox before trusting the bus again (start, a gap, a lag, a quiet spell).
    catch_up: bool,
    bus: tokio::sync::broadcast::Receiver<Event>,
}

impl Cursor {
    fn take(&mut self, e: Event) {
        self.seq = e.seq;
        if e.audience.admits(&self.who) {
            self.ready.push_back(e);
        }
    }
}

pub async fn stream(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Problem::bad_request("Last-Event-ID must be an event's seq"))
        })
        .transpose()?;
    let seq = match last_id.or(q.after) {
        Some(s) => s,
        None => outbox::head(state.store.pool()).await?,
    };
    // Events come from this process's bus as they are relayed; the outbox fills any gap (events
    // relayed by another broker process, a lagging receiver) and serves the catch-up.
    let bus = state.bus.subscribe();
    let cursor = Cursor {
        state,
        who,
        seq,
        ready: VecDeque::new(),
        catch_up: true,
        bus,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.ready.pop_front() {
                let sse = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.topic.clone())
                    .data(serde_json::to_string(&e).unwrap_or_default());
                return Some((Ok(sse), c));
            }
            // The token the stream was opened with is its licence: it ends with it.
            if now() > c.who.expires_at {
                return None;
            }
            if c.catch_up {
                match outbox::since(c.state.store.pool(), c.seq, 200).await {
                    Ok(batch) if !batch.is_empty() => {
                        for e in batch {
                            c.take(e);
                        }
                    }
                    Ok(_) => c.catch_up = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream cannot read the outbox");
                        tokio::time::sleep(POLL).await;
                    }
                }
                continue;
            }
            match tokio::time::timeout(POLL, c.bus.recv()).await {
                Ok(Ok(e)) if e.seq <= c.seq => {}
                Ok(Ok(e)) if e.seq == c.seq + 1 => c.take(e),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                // A gap, a lag, or quiet: look at the outbox.
                _ => c.catch_up = true,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
