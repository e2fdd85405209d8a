//! Statements: what a contract cost, line by line (deposit, charges at opening, settled usage
//! batches, refund), with the provider's net after the broker's fee, checked against the chain's
//! own figures to the last base unit. JSON or CSV.

use alloy::primitives::B256;
use serde::Serialize;

use super::document::ContractDocument;
use super::records::{self, ContractRecord};
use super::MarketError;
use crate::ledger_link::LedgerLink;
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub at: u64,
    /// `deposit` (escrowed), `period` (a reserved period charged), `usage` (a settled batch),
    /// `refund` (escrow returned at close).
    pub kind: &'static str,
    pub reference: String,
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub contract: String,
    pub consumer: String,
    pub provider: String,
    pub from: u64,
    pub to: u64,
    pub lines: Vec<Line>,
    /// Charged to the consumer in the period (periods + usage).
    pub charged: String,
    pub fee_bps: u16,
    /// What the provider earned of it after the broker's fee.
    pub provider_net: String,
    /// The chain's figures for the whole contract, and whether the broker's agree with them.
    pub chain_charged: String,
    pub chain_escrow: String,
    pub matches_chain: bool,
}

pub async fn statement(
    store: &Store,
    ledger: &LedgerLink,
    c: &ContractRecord,
    from: u64,
    to: u64,
) -> Result<Statement, MarketError> {
    let reservation = records::get_reservation(store, &c.reservation_id)
        .await?
        .ok_or_else(|| MarketError::NoContract(c.id.clone()))?;
    let doc = ContractDocument::parse(reservation.document.as_bytes())
        .map_err(|e| MarketError::Corrupt(format!("stored document unreadable: {e}")))?;
    let mut all = Vec::new();
    let opened = c.created_at;
    let active = !matches!(
        c.state,
        records::State::Proposed
            | records::State::Accepted
            | records::State::Opening
            | records::State::Failed
    );
    if active {
        all.push(Line {
            at: opened,
            kind: "deposit",
            reference: c.tx_hash.clone().unwrap_or_default(),
            amount: doc.deposit.to_string(),
        });
        if doc.price.period_price > 0 {
            all.push(Line {
                at: opened,
                kind: "period",
                reference: "first period, charged at opening".into(),
                amount: doc.price.period_price.to_string(),
            });
        }
    }
    let pattern = format!("%\"{}\"%", c.id);
    let batches: Vec<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT id, charges, tx_hash, settled_at FROM settlement_batches WHERE state = 'settled' AND charges LIKE $1 ORDER BY settled_at, id",
    )
    .bind(pattern)
    .fetch_all(store.pool())
    .await?;
    for (id, charges, tx, at) in batches {
        let charges: Vec<(String, String)> = serde_json::from_str(&charges).unwrap_or_default();
        for (contract, amount) in charges.into_iter().filter(|(k, _)| *k == c.id) {
            let _ = contract;
            all.push(Line {
                at: at.unwrap_or_default() as u64,
                kind: "usage",
                reference: format!("batch {id} tx {}", tx.clone().unwrap_or_default()),
                amount,
            });
        }
    }
    if let Some(refund) = &c.refund {
        all.push(Line {
            at: c.updated_at,
            kind: "refund",
            reference: c.tx_hash.clone().unwrap_or_default(),
            amount: refund.clone(),
        });
    }
    let charged_of = |lines: &[Line]| -> u128 {
        lines
            .iter()
            .filter(|l| matches!(l.kind, "period" | "usage"))
            .filter_map(|l| l.amount.parse::<u128>().ok())
            .sum()
    };
    let total_charged = charged_of(&all);
    let lines: Vec<Line> = all
        .into_iter()
        .filter(|l| l.at >= from && l.at <= to)
        .collect();
    let charged = charged_of(&lines);
    let id: B256 =
        c.id.parse()
            .map_err(|_| MarketError::NoContract(c.id.clone()))?;
    let onchain = ledger.agreement(id).await?;
    let fee_bps = ledger.fee_bps().await?;
    let net = charged - charged * u128::from(fee_bps) / 10_000;
    Ok(Statement {
        contract: c.id.clone(),
        consumer: c.consumer.clone(),
        provider: c.provider.clone(),
        from,
        to,
        lines,
        charged: charged.to_string(),
        fee_bps,
        provider_net: net.to_string(),
        matches_chain: onchain.charged == total_charged.to_string(),
        chain_charged: onchain.charged,
        chain_escrow: onchain.escrow,
    })
}

/// The statement as CSV: one row per line, then the totals.
pub fn to_csv(s: &Statement) -> String {
    let mut out = String::from("at,kind,reference,amount\n");
    for l in &s.lines {
        out.push_str(&format!(
            "{},{},\"{}\",{}\n",
            l.at,
            l.kind,
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
