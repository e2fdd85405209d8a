//! `GET /v1/events`: the outbox as server-sent events, filtered by what the caller may see.
//! Resumable: `Last-Event-ID` (or `?after=`) continues after an event; without either the stream
//! starts at the newest event. A stream reads the outbox once to catch up, then takes events from
//! the process's event hub (the one outbox reader); only a stream that falls behind reads again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use api::events::EventsQuery;
use api::{Event, Principal};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::extract::{ApiQuery, Caller};
use super::problem::Failure;
use super::AppState;
use crate::events::{outbox, StoredEvent};
use crate::store::now;

/// Outbox rows read per catch-up query.
const CATCH_UP: u32 = 200;

struct Cursor {
    app: AppState,
    who: Principal,
    seq: u64,
    ready: VecDeque<Event>,
    /// Read the outbox before trusting the hub (start, a lag).
    catch_up: bool,
    hub: broadcast::Receiver<Arc<StoredEvent>>,
}

impl Cursor {
    fn take(&mut self, seq: u64, e: Option<&StoredEvent>) {
        self.seq = seq;
        if let Some(e) = e.filter(|e| e.audience.admits(&self.who)) {
            self.ready.push_back(e.event.clone());
        }
    }
}

/// Follows the events the caller may see, as server-sent events (`id` = seq, `event` = topic,
/// `data` = the event as JSON). The stream ends when the token does.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event's seq")),
    security(("bearer" = [])),
    responses((status = 200, description = "A stream of events", content_type = "text/event-stream", body = Event)))]
pub async fn stream(
    State(app): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Failure> {
    let last_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Failure::bad_request("Last-Event-ID must be an event's seq"))
        })
        .transpose()?;
    // Subscribed before the catch-up read, so nothing falls between the two.
    let hub = app.market.signals.hub.subscribe();
    let seq = match last_id.or(q.after) {
        Some(s) => s,
        None => outbox::head(&app.market.store).await?,
    };
    let cursor = Cursor {
        app,
        who,
        seq,
        ready: VecDeque::new(),
        catch_up: true,
        hub,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.ready.pop_front() {
                let sse = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.topic().as_str())
                    .data(serde_json::to_string(&e).expect("events serialise"));
                return Some((Ok(sse), c));
            }
            // The token the stream was opened with is its licence: it ends with it.
            if now() > c.who.expires_at {
                return None;
            }
            if c.catch_up {
                match outbox::since(&c.app.market.store, c.seq, CATCH_UP).await {
                    Ok(batch) if !batch.is_empty() => {
                        for (seq, read) in batch {
                            if let Err(e) = &read {
                                tracing::error!(seq, error = %e, "event skipped");
                            }
                            c.take(seq, read.as_ref().ok());
                        }
                    }
                    Ok(_) => c.catch_up = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream cannot read the outbox");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
                continue;
            }
            let until_expiry =
                std::time::Duration::from_secs(c.who.expires_at.saturating_sub(now()).max(1));
            let shutdown = c.app.shutdown.clone();
            let next = tokio::select! {
                // The broker stops: the stream ends (the client resumes later or elsewhere).
                _ = shutdown.wait() => return None,
                next = tokio::time::timeout(until_expiry, c.hub.recv()) => next,
            };
            match next {
                Ok(Ok(e)) if e.event.seq <= c.seq => {}
                Ok(Ok(e)) => {
                    let seq = e.event.seq;
                    c.take(seq, Some(&e));
                }
                Ok(Err(RecvError::Lagged(_))) => c.catch_up = true,
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => {}
            }
        }
    });
    // A keep-alive every 5 s: followers (the provider's agent) tell a quiet broker from a gone one.
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(5))))
}
