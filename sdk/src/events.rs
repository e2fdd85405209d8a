//! The broker's event stream (server-sent events) for a logged-in participant, as the API's
//! typed events.

use api::Event;
use reqwest::Method;

use crate::client::{Body, SdkError};
use crate::session::Session;

/// Longest the stream may stay silent: the broker sends a keep-alive every 5 s, so four missed
/// ones mean the connection is gone even if TCP has not noticed.
pub const EVENT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// An open stream; `next` gives events in order.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
    read_timeout: std::time::Duration,
    last_activity: std::time::Instant,
}

impl Session {
    /// Events after `after` (all the caller may see), or from now on for `None`.
    pub async fn events(&self, after: Option<u64>) -> Result<EventStream, SdkError> {
        let token = self.token().await?;
        let path = match after {
            Some(a) => format!("/v1/events?after={a}"),
            None => "/v1/events".to_string(),
        };
        let response = self
            .client
            .send(Method::GET, &path, Body::None, Some(&token), &[])
            .await?;
        Ok(EventStream {
            response,
            buffer: String::new(),
            read_timeout: EVENT_READ_TIMEOUT,
            last_activity: std::time::Instant::now(),
        })
    }
}

impl EventStream {
    /// When the broker last sent anything (an event or a keep-alive).
    pub fn last_activity(&self) -> std::time::Instant {
        self.last_activity
    }

    /// The next event; `None` when the broker ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, SdkError> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| SdkError::Decode(format!("event: {e}")));
            }
            let chunk = tokio::time::timeout(self.read_timeout, self.response.chunk())
                .await
                .map_err(|_| SdkError::Stalled(self.read_timeout))?;
            match chunk {
                Ok(Some(bytes)) => {
                    self.last_activity = std::time::Instant::now();
                    self.buffer.push_str(&String::from_utf8_lossy(&bytes))
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(SdkError::Decode(e.to_string())),
            }
        }
    }
}
