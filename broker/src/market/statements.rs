//! Statements: what a contract cost, line by line (deposit, charges at opening, settled usage
//! batches, refund), with the provider's net after the broker's fee, checked against the chain's
//! own figures to the last base unit. JSON or CSV.

use api::document::ContractDocument;
use api::usage::{LineKind, Statement, StatementLine};
use api::{ContractId, Credits};

use super::records::{self, ContractRecord};
use super::{Market, MarketError};
use crate::store::{Corrupt, Decode};

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: String,
    charges: String,
    tx_hash: Option<String>,
    settled_at: Option<i64>,
}

impl Market {
    /// The contract's statement over `[from, to]`, checked against the chain.
    pub async fn statement(
        &self,
        c: &ContractRecord,
        from: u64,
        to: u64,
    ) -> Result<Statement, MarketError> {
        let reservation = records::get_reservation(&self.store, c.reservation_id)
            .await?
            .ok_or(MarketError::NoContract(c.id))?;
        let doc = ContractDocument::parse(reservation.document.as_bytes())
            .map_err(|e| Corrupt::new("reservations", "document", c.id, e))?;
        let mut all = Vec::new();
        let reference = |tx: Option<api::TxHash>| tx.map(|t| t.to_string()).unwrap_or_default();
        if c.state.opened() {
            all.push(StatementLine {
                at: c.created_at,
                kind: LineKind::Deposit,
                reference: reference(c.tx_hash),
                amount: doc.deposit,
            });
            if !doc.price.period_price.is_zero() {
                all.push(StatementLine {
                    at: c.created_at,
                    kind: LineKind::Period,
                    reference: "first period, charged at opening".into(),
                    amount: doc.price.period_price,
                });
            }
        }
        let pattern = format!("%\"{}\"%", c.id);
        let batches: Vec<BatchRow> = sqlx::query_as(
            "SELECT id, charges, tx_hash, settled_at FROM settlement_batches WHERE state = 'settled' AND charges LIKE $1 ORDER BY settled_at, id",
        )
        .bind(pattern)
        .fetch_all(self.store.pool())
        .await?;
        for b in batches {
            let d = Decode {
                table: "settlement_batches",
                key: &b.id,
            };
            let charges: Vec<(ContractId, Credits)> = d.json("charges", &b.charges)?;
            let at = d.opt_u64("settled_at", b.settled_at)?.unwrap_or_default();
            for (_, amount) in charges.into_iter().filter(|(k, _)| *k == c.id) {
                all.push(StatementLine {
                    at,
                    kind: LineKind::Usage,
                    reference: format!(
                        "batch {} tx {}",
                        b.id,
                        b.tx_hash.clone().unwrap_or_default()
                    ),
                    amount,
                });
            }
        }
        if let Some(refund) = c.refund {
            all.push(StatementLine {
                at: c.updated_at,
                kind: LineKind::Refund,
                reference: reference(c.tx_hash),
                amount: refund,
            });
        }
        let charged_of = |lines: &[StatementLine]| -> Credits {
            lines
                .iter()
                .filter(|l| l.kind.is_charge())
                .map(|l| l.amount)
                .sum()
        };
        let total_charged = charged_of(&all);
        let lines: Vec<StatementLine> = all
            .into_iter()
            .filter(|l| l.at >= from && l.at <= to)
            .collect();
        let charged = charged_of(&lines);
        let onchain = self.ledger.agreement(c.id).await?;
        let fee_bps = self.ledger.fee_bps().await?;
        let fee = charged.base_units() * u128::from(fee_bps) / 10_000;
        Ok(Statement {
            contract: c.id,
            consumer: c.consumer.clone(),
            provider: c.provider.clone(),
            from,
            to,
            lines,
            charged,
            fee_bps,
            provider_net: charged.saturating_sub(Credits::from_base_units(fee)),
            matches_chain: onchain.charged == total_charged,
            chain_charged: onchain.charged,
            chain_escrow: onchain.escrow,
        })
    }
}

/// The statement as CSV: one row per line, then the totals.
pub fn to_csv(s: &Statement) -> String {
    let mut out = String::from("at,kind,reference,amount\n");
    for l in &s.lines {
        out.push_str(&format!(
            "{},{},\"{}\",{}\n",
            l.at,
            l.kind.as_str(),
            l.reference.replace('"', "'"),
            l.amount
        ));
    }
    out.push_str(&format!(",charged,,{}\n", s.charged));
    out.push_str(&format!(
        ",provider net (fee {} bps),,{}\n",
        s.fee_bps, s.provider_net
    ));
    out.push_str(&format!(",chain charged,,{}\n", s.chain_charged));
    out
}
