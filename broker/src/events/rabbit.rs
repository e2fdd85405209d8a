//! Production bus: a RabbitMQ topic exchange (lapin), with publisher confirms. Routing key = the
//! event's topic (`contract.activated`, …), message id = its outbox `seq`, persistent delivery.
//! A batch counts as published only when RabbitMQ has acknowledged every message of it.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::outbox::RawEvent;
use super::relay::{BoxFuture, Bus, BusError};

/// The exchange events go to.
pub const EXCHANGE: &str = "mercato.events";

pub struct RabbitBus {
    uri: String,
    exchange: String,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitBus {
    pub fn new(uri: &str) -> Self {
        Self {
            uri: uri.to_string(),
            exchange: EXCHANGE.to_string(),
            link: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let conn = Connection::connect(&self.uri, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                &self.exchange,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((conn, channel))
    }

    async fn publish_all(&self, channel: &Channel, events: &[RawEvent]) -> Result<(), BusError> {
        let unreachable = |e: lapin::Error| BusError::Unreachable(e.to_string());
        let mut confirms = Vec::with_capacity(events.len());
        for e in events {
            let payload = e.to_json();
            let properties = BasicProperties::default()
                .with_message_id(e.seq.to_string().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_timestamp(e.at);
            let confirm = channel
                .basic_publish(
                    &self.exchange,
                    &e.topic,
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await
                .map_err(unreachable)?;
            confirms.push((e.seq, confirm));
        }
        for (seq, confirm) in confirms {
            let confirmation = confirm.await.map_err(unreachable)?;
            if !confirmation.is_ack() {
                return Err(BusError::NotConfirmed {
                    seq,
                    reason: "RabbitMQ answered nack".into(),
                });
            }
        }
        Ok(())
    }
}

impl Bus for RabbitBus {
    fn publish<'a>(&'a self, events: &'a [RawEvent]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let mut link = self.link.lock().await;
            let healthy = link
                .as_ref()
                .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
            if !healthy {
                *link = None;
                let fresh = self
                    .connect()
                    .await
                    .map_err(|e| BusError::Unreachable(format!("{}: {e}", redact(&self.uri))))?;
                *link = Some(fresh);
            }
            let Some((_, channel)) = link.as_ref() else {
                return Err(BusError::Unreachable("no channel".into()));
            };
            let result = self.publish_all(channel, events).await;
            if result.is_err() {
                // Reconnect next time rather than reuse a channel in an unknown state.
                *link = None;
            }
            result
        })
    }
}

/// The URI without its password, for logs.
pub fn redact(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        let r = super::redact("amqp://mercato:s3cret@mq.example:5672/%2f");
        assert!(!r.contains("s3cret") && r.contains("mq.example"), "{r}");
    }
}
