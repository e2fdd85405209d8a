//! Statements: what a contract cost, line by line, from the chain's own events (the deposit, each
//! top-up, every reserved period, each settled usage batch, a period's unused share given back,
//! the refund), with the provider's net after the contract's fee. `matchesChain` says the lines
//! add up to the chain's figure to the last base unit and that the broker's own settlement
//! records charged the contract what the chain did, batch by batch. JSON or CSV.

use std::collections::BTreeMap;

use api::usage::{LineKind, Statement, StatementLine};
use api::{BatchId, Credits};

use super::records::ContractRecord;
use super::{Market, MarketError};
use crate::ledger_link::MoveKind;
use crate::store::Decode;

#[derive(sqlx::FromRow)]
struct SettledRecord {
    id: String,
    batch_id: String,
    amount: String,
}

impl Market {
    /// The contract's statement over `[from, to]`, from the chain.
    pub async fn statement(
        &self,
        c: &ContractRecord,
        from: u64,
        to: u64,
    ) -> Result<Statement, MarketError> {
        let moves = if c.state.opened() {
            // Caught up first: the table is never older than the chain it is compared with.
            super::ledger_index::follow(self).await?;
            super::ledger_index::of_contract(&self.store, c.id).await?
        } else {
            Vec::new()
        };
        let mut all = Vec::new();
        let mut chain_batches: BTreeMap<String, i128> = BTreeMap::new();
        for m in moves {
            let (kind, reference) = match m.kind {
                MoveKind::Opened => (LineKind::Deposit, format!("tx {}", m.tx)),
                MoveKind::ToppedUp => (LineKind::Topup, format!("tx {}", m.tx)),
                MoveKind::Period => (LineKind::Period, format!("paid in advance, tx {}", m.tx)),
                MoveKind::Usage { batch } => {
                    let batch = format!("{batch}");
                    *chain_batches.entry(batch.clone()).or_default() +=
                        m.amount.base_units() as i128;
                    (LineKind::Usage, format!("batch {batch} tx {}", m.tx))
                }
                MoveKind::PeriodRefunded => (
                    LineKind::Unused,
                    format!("unused share of the period, tx {}", m.tx),
                ),
                MoveKind::Overcharge { batch } => {
                    let batch = format!("{batch}");
                    *chain_batches.entry(batch.clone()).or_default() -=
                        m.amount.base_units() as i128;
                    (
                        LineKind::Overcharge,
                        format!("proven overcharge of batch {batch}, tx {}", m.tx),
                    )
                }
                MoveKind::Closed => (LineKind::Refund, format!("tx {}", m.tx)),
            };
            all.push(StatementLine {
                at: m.at,
                kind,
                reference,
                amount: m.amount,
            });
        }
        // What the broker's records say each settled batch charged this contract.
        let records: Vec<SettledRecord> = sqlx::query_as(
            "SELECT u.id, u.batch_id, u.amount FROM usage_records u \
             JOIN settlement_batches b ON b.id = u.batch_id \
             WHERE u.contract_id = $1 AND b.state = 'settled'",
        )
        .bind(c.id.to_string())
        .fetch_all(self.store.pool())
        .await?;
        let mut broker_batches: BTreeMap<String, i128> = BTreeMap::new();
        for r in records {
            let d = Decode {
                table: "usage_records",
                key: &r.id,
            };
            let amount: Credits = d.parse("amount", &r.amount)?;
            let batch: BatchId = d.parse("batch_id", &r.batch_id)?;
            *broker_batches.entry(format!("{}", batch.0)).or_default() +=
                amount.base_units() as i128;
        }
        broker_batches.retain(|_, v| *v != 0);

        let charged_of = |lines: &[StatementLine]| -> i128 {
            lines.iter().map(|l| l.kind.charged(l.amount)).sum()
        };
        let total_charged = charged_of(&all);
        let lines: Vec<StatementLine> = all
            .into_iter()
            .filter(|l| l.at >= from && l.at <= to)
            .collect();
        let charged = Credits::from_base_units(charged_of(&lines).max(0) as u128);
        let onchain = self.ledger.agreement(c.id).await?;
        let fee = charged.base_units() * u128::from(onchain.fee_bps) / 10_000;
        Ok(Statement {
            contract: c.id,
            consumer: c.consumer.clone(),
            provider: c.provider.clone(),
            from,
            to,
            lines,
            charged,
            fee_bps: onchain.fee_bps,
            provider_net: charged.saturating_sub(Credits::from_base_units(fee)),
            matches_chain: total_charged == onchain.charged.base_units() as i128
                && chain_batches == broker_batches,
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
