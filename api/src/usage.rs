//! Usage: the records a provider's agent signs, the broker's answer to each, a contract's usage
//! as it accrues, proofs of settlement, disputes, and statements.

use catalog::Credits;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{
    BatchId, ContractId, CredentialHash, Ed25519Signature, Hash32, SessionId, UsageRecordId,
};

/// Most records in one report.
pub const MAX_RECORDS_PER_REPORT: usize = 1000;

/// A record at its largest, written compactly (ids and numbers at their longest, signed), with room
/// to spare.
pub const MAX_RECORD_BYTES: usize = 1024;

/// Largest body `POST /v1/usage` takes: a full report of records at their largest fits.
pub const MAX_REPORT_BYTES: usize = MAX_RECORDS_PER_REPORT * MAX_RECORD_BYTES + 1024;

/// What a consumer used of a contract over an interval, measured by the provider's agent and
/// signed with the provider's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageRecord {
    /// Unique per record (random), so a record sent twice counts once.
    pub id: UsageRecordId,
    pub contract: ContractId,
    pub provider: Did,
    pub consumer: Did,
    /// The credential the session used.
    pub credential: CredentialHash,
    /// Unix seconds.
    pub from: u64,
    pub to: u64,
    pub connection_millis: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Compute sessions (`--exec`): CPU time (user + system) of the consumer's process.
    #[serde(default)]
    pub cpu_millis: u64,
    /// Compute sessions: the process's peak resident memory.
    #[serde(default)]
    pub max_memory_kib: u64,
    /// GPU time × the fraction of a GPU in use, in milliseconds.
    #[serde(default)]
    pub gpu_millis: u64,
    /// Dataset accesses served.
    #[serde(default)]
    pub data_accesses: u64,
    /// The channel session measured (its handshake hash), which the consumer's receipts name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// The provider's signature over the record without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Ed25519Signature>,
}

impl UsageRecord {
    /// The bytes the provider signs: the record's JSON without its signature.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec(&unsigned).expect("a usage record serialises")
    }

    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        self.signature = Some(Ed25519Signature::sign(
            key,
            identity::Domain::UsageRecord,
            &self.signing_bytes(),
        ));
    }

    /// Signed by the provider it names.
    pub fn verify(&self) -> bool {
        self.signature.as_ref().is_some_and(|s| {
            s.verify(
                &self.provider,
                identity::Domain::UsageRecord,
                &self.signing_bytes(),
            )
            .is_ok()
        })
    }

    /// The record as a settlement leaf commits to it: its usage, the hash of its id and the
    /// keccak-256 of its signed JSON (as stored under the batch's CID).
    pub fn leaf(&self) -> contracts::UsageSettlement::UsageRecord {
        let body = serde_json::to_vec(self).expect("a usage record serialises");
        contracts::UsageSettlement::UsageRecord {
            recordId: contracts::usage::record_id_hash(self.id.as_str()),
            bodyHash: alloy::primitives::keccak256(body),
            from: self.from,
            to: self.to,
            connectionMillis: self.connection_millis,
            bytesIn: self.bytes_in,
            bytesOut: self.bytes_out,
            cpuMillis: self.cpu_millis,
            maxMemoryKib: self.max_memory_kib,
            gpuMillis: self.gpu_millis,
            dataAccesses: self.data_accesses,
        }
    }

    /// The leaf's record hash: `UsageSettlement.hashRecord(contract, leaf)`.
    pub fn leaf_hash(&self) -> alloy::primitives::B256 {
        contracts::usage::record_hash(self.contract.0, &self.leaf())
    }
}

/// A settlement batch's records as the content store keeps them, under the CID the chain's
/// `BatchSettled` logs: each record as its provider signed it, with the amount its leaf charges,
/// in leaf order (contracts in id order, each contract's records in id order). From it anyone
/// rebuilds the batch's Merkle root and re-prices every record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchDocument {
    /// Always `mercato.settlement-batch/v1`.
    pub kind: String,
    pub batch: BatchId,
    pub records: Vec<BatchEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchEntry {
    pub amount: Credits,
    /// The record exactly as stored (its bytes are what the leaf's body hash commits to).
    #[schema(value_type = Object)]
    pub record: Box<serde_json::value::RawValue>,
}

impl BatchEntry {
    pub fn new(amount: Credits, record: &UsageRecord) -> Self {
        let body = serde_json::to_string(record).expect("a usage record serialises");
        Self {
            amount,
            record: serde_json::value::RawValue::from_string(body).expect("valid JSON"),
        }
    }

    pub fn parse(&self) -> Result<UsageRecord, serde_json::Error> {
        serde_json::from_str(self.record.get())
    }
}

impl BatchDocument {
    pub const KIND: &'static str = "mercato.settlement-batch/v1";

    pub fn new(batch: BatchId, records: Vec<BatchEntry>) -> Self {
        Self {
            kind: Self::KIND.into(),
            batch,
            records,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a batch document serialises")
    }

    /// The Merkle sum tree of parsed records with their amounts (grouped by contract, in order).
    pub fn tree_of(
        records: &[(UsageRecord, Credits)],
    ) -> Result<contracts::merkle::BatchTree, contracts::merkle::MerkleError> {
        use alloy::primitives::{B256, U256};
        let mut groups: Vec<(B256, Vec<(B256, U256)>)> = Vec::new();
        for (r, amount) in records {
            let leaf = (r.leaf_hash(), U256::from(amount.base_units()));
            match groups.last_mut() {
                Some((c, rs)) if *c == r.contract.0 => rs.push(leaf),
                _ => groups.push((r.contract.0, vec![leaf])),
            }
        }
        contracts::merkle::BatchTree::new(&groups)
    }
}

/// What the consumer's end of a channel session saw, signed by the consumer: evidence a record
/// can be checked against. The consumer signs one as the session runs and at its end; a later
/// one of a session replaces an earlier one. `POST /v1/contracts/{id}/receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receipt {
    pub contract: ContractId,
    pub consumer: Did,
    /// The credential the session was admitted with.
    pub credential: CredentialHash,
    pub session: SessionId,
    /// Unix milliseconds when signed.
    pub at: u64,
    /// Whether the session had ended (the consumer's last word on it).
    pub last: bool,
    pub connection_millis: u64,
    /// What the consumer sent into the channel (the provider's bytes in).
    pub bytes_sent: u64,
    /// What it received (the provider's bytes out).
    pub bytes_received: u64,
    /// The consumer's signature over the receipt without this field (`mercato-receipt/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Ed25519Signature>,
}

/// Bytes either end may still count after the other stopped (frames in flight).
pub const RECEIPT_SLACK_BYTES: u64 = 256 * 1024;
/// Connection time either end may still count after the other stopped (a compute session's
/// process gets a grace period after its consumer leaves).
pub const RECEIPT_SLACK_MILLIS: u64 = 15_000;

impl Receipt {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec(&unsigned).expect("a receipt serialises")
    }

    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        self.signature = Some(Ed25519Signature::sign(
            key,
            identity::Domain::Receipt,
            &self.signing_bytes(),
        ));
    }

    /// Signed by the consumer it names.
    pub fn verify(&self) -> bool {
        self.signature.as_ref().is_some_and(|s| {
            s.verify(
                &self.consumer,
                identity::Domain::Receipt,
                &self.signing_bytes(),
            )
            .is_ok()
        })
    }

    /// Where the consumer's last receipt of the record's session contradicts the record (beyond
    /// what frames in flight explain); `None` when it does not, or is not about that session.
    pub fn contradicts(&self, record: &UsageRecord) -> Option<String> {
        if !self.last
            || record.session != Some(self.session)
            || record.contract != self.contract
            || record.credential != self.credential
        {
            return None;
        }
        let over = |claimed: u64, seen: u64, slack: u64, what: &str| {
            (claimed > seen.saturating_add(slack)).then(|| {
                format!("the record claims {claimed} {what}, the consumer's signed receipt {seen}")
            })
        };
        over(
            record.bytes_in,
            self.bytes_sent,
            RECEIPT_SLACK_BYTES,
            "bytes in",
        )
        .or_else(|| {
            over(
                record.bytes_out,
                self.bytes_received,
                RECEIPT_SLACK_BYTES,
                "bytes out",
            )
        })
        .or_else(|| {
            over(
                record.connection_millis,
                self.connection_millis,
                RECEIPT_SLACK_MILLIS,
                "ms connected",
            )
        })
    }
}

/// `POST /v1/contracts/{id}/receipts`: stored, or refused with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptStored {
    pub session: SessionId,
    /// false: an as late or later receipt of the session was kept.
    pub replaced: bool,
}

/// `POST /v1/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageReport {
    #[schema(max_items = 1000)]
    pub records: Vec<UsageRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageOutcome {
    /// Stored and priced; it settles in a batch.
    Accepted,
    /// The broker had it already (same content): counted once.
    Duplicate,
    /// Not taken; `reason` says why.
    Refused,
}

/// The broker's answer for one record of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordOutcome {
    pub id: UsageRecordId,
    pub status: UsageOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Credits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A stored record with what the broker made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredUsage {
    pub record: UsageRecord,
    /// What its settlement leaf commits to: `UsageSettlement.hashRecord(contract, record)`.
    pub record_hash: Hash32,
    pub amount: Credits,
    pub received_at: u64,
    /// The settlement batch it is in, once it is in one.
    pub batch_id: Option<BatchId>,
    pub dispute: Option<DisputeState>,
    /// What the consumer's receipts said when it disputed the record (for whoever decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute_evidence: Option<String>,
}

/// Where a disputed record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DisputeState {
    /// Held out of settlement until an operator decides.
    Open,
    /// The record stands and settles.
    Upheld,
    /// The record is charged nothing.
    Voided,
}

/// `GET /v1/contracts/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractUsage {
    pub contract: ContractId,
    pub records: Vec<StoredUsage>,
    pub total: Credits,
    pub settled: Credits,
}

/// A sibling on a Merkle sum-tree path (`UsageSettlement.Step`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofStep {
    pub hash: Hash32,
    /// The sum of the leaves under the sibling.
    pub sum: Credits,
    /// Whether the sibling sits left of the path's node.
    pub left: bool,
}

impl ProofStep {
    pub fn chain(&self) -> contracts::merkle::Step {
        contracts::merkle::Step {
            hash: self.hash.0,
            sum: alloy::primitives::U256::from(self.sum.base_units()),
            left: self.left,
        }
    }
}

/// `GET /v1/usage/{id}/proof`: the record's leaf in its settled batch and the paths from it to
/// the root, as `UsageSettlement.verifyRecord`, `challengeRecord` and `challengeTotal` take them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageProof {
    pub record: UsageRecordId,
    pub contract: ContractId,
    pub batch: BatchId,
    pub root: Hash32,
    /// The leaf: the record's hash and the amount charged for it.
    pub record_hash: Hash32,
    pub amount: Credits,
    /// From the leaf to the top of its contract's subtree.
    pub record_path: Vec<ProofStep>,
    /// From the contract's node to the root.
    pub contract_path: Vec<ProofStep>,
    /// The sum of the contract's leaves in the batch (what it may be charged at most).
    pub contract_sum: Credits,
    /// The chain's own check of the proof.
    pub verified_on_chain: bool,
}

impl UsageProof {
    /// Checks the paths here, the way the contract does.
    pub fn verifies(&self) -> bool {
        let rp: Vec<_> = self.record_path.iter().map(ProofStep::chain).collect();
        let cp: Vec<_> = self.contract_path.iter().map(ProofStep::chain).collect();
        contracts::merkle::verify(
            self.root.0,
            self.contract.0,
            self.record_hash.0,
            alloy::primitives::U256::from(self.amount.base_units()),
            &rp,
            &cp,
        ) == Some(alloy::primitives::U256::from(
            self.contract_sum.base_units(),
        ))
    }
}

/// `POST /v1/usage/{id}/dispute`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisputeRequest {
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disputed {
    pub record: UsageRecordId,
    pub dispute: DisputeState,
    /// What the consumer's signed receipts of the record's session say against it, for whoever
    /// decides the dispute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// `POST /v1/usage/{id}/resolve` (operators).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveRequest {
    /// true: the record stands and settles; false: it is voided.
    pub uphold: bool,
}

/// A statement line's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// Escrowed at opening.
    Deposit,
    /// A reserved period charged.
    Period,
    /// A settled usage batch.
    Usage,
    /// Added to the escrow by the consumer.
    Topup,
    /// The unused share of a prepaid period given back on an early close by the provider or
    /// the broker (a negative charge, back to the escrow).
    Unused,
    /// A usage charge proven an overcharge on chain, given back (a negative charge).
    Overcharge,
    /// Escrow returned at close.
    Refund,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Period => "period",
            Self::Usage => "usage",
            Self::Topup => "topup",
            Self::Unused => "unused",
            Self::Overcharge => "overcharge",
            Self::Refund => "refund",
        }
    }

    /// A charge to the consumer (the others move escrow).
    pub fn is_charge(self) -> bool {
        matches!(self, Self::Period | Self::Usage)
    }

    /// What the line adds to the consumer's charges, in base units: charges count, a period's
    /// unused share counts back, escrow movements do not.
    pub fn charged(self, amount: Credits) -> i128 {
        let a = amount.base_units() as i128;
        match self {
            Self::Period | Self::Usage => a,
            Self::Unused | Self::Overcharge => -a,
            Self::Deposit | Self::Topup | Self::Refund => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementLine {
    pub at: u64,
    pub kind: LineKind,
    pub reference: String,
    pub amount: Credits,
}

/// What a contract cost, line by line, checked against the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub contract: ContractId,
    pub consumer: Did,
    pub provider: Did,
    pub from: u64,
    pub to: u64,
    pub lines: Vec<StatementLine>,
    /// Charged to the consumer in the period (periods + usage).
    pub charged: Credits,
    pub fee_bps: u16,
    /// What the provider earned of it after the broker's fee.
    pub provider_net: Credits,
    /// The chain's figures for the whole contract, and whether they agree with its events and
    /// with the broker's own settlement records.
    pub chain_charged: Credits,
    pub chain_escrow: Credits,
    pub matches_chain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatementFormat {
    #[default]
    Json,
    Csv,
}

/// `GET /v1/contracts/{id}/statement` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// From this time (unix seconds, inclusive).
    #[param(minimum = 0)]
    pub from: Option<u64>,
    /// Until this time (unix seconds, inclusive).
    #[param(minimum = 0)]
    pub to: Option<u64>,
    #[param(inline)]
    pub format: Option<StatementFormat>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full report of the largest records the schema admits fits the body limit, so a provider
    /// that is behind is never stuck on a report the broker cannot read.
    #[test]
    fn a_full_report_of_the_largest_records_fits_the_limit() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let did = identity::did_of(&key.verifying_key());
        let mut largest = UsageRecord {
            id: "x".repeat(64).parse().unwrap(),
            contract: ContractId::from(alloy::primitives::B256::repeat_byte(0xab)),
            provider: did.clone(),
            consumer: did,
            credential: "f".repeat(64).parse().unwrap(),
            from: u64::MAX,
            to: u64::MAX,
            connection_millis: u64::MAX,
            bytes_in: u64::MAX,
            bytes_out: u64::MAX,
            cpu_millis: u64::MAX,
            max_memory_kib: u64::MAX,
            gpu_millis: u64::MAX,
            data_accesses: u64::MAX,
            session: Some(SessionId::from(alloy::primitives::B256::repeat_byte(0xcd))),
            signature: None,
        };
        largest.sign(&key);
        assert!(largest.verify());
        let one = serde_json::to_vec(&largest).unwrap().len();
        assert!(one <= MAX_RECORD_BYTES, "a record takes {one} bytes");
        let report = UsageReport {
            records: vec![largest; MAX_RECORDS_PER_REPORT],
        };
        let all = serde_json::to_vec(&report).unwrap().len();
        assert!(all <= MAX_REPORT_BYTES, "a full report takes {all} bytes");
    }

    #[test]
    fn a_receipt_is_the_consumers_and_contradicts_only_its_sessions_inflated_records() {
        let provider = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let consumer = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let session = SessionId::from(alloy::primitives::B256::repeat_byte(0xcd));
        let record = UsageRecord {
            id: "r-1".parse().unwrap(),
            contract: ContractId::from(alloy::primitives::B256::repeat_byte(0xab)),
            provider: identity::did_of(&provider.verifying_key()),
            consumer: identity::did_of(&consumer.verifying_key()),
            credential: "f".repeat(64).parse().unwrap(),
            from: 10,
            to: 20,
            connection_millis: 10_000,
            bytes_in: 1_000_000,
            bytes_out: 2_000_000,
            cpu_millis: 0,
            max_memory_kib: 0,
            gpu_millis: 0,
            data_accesses: 0,
            session: Some(session),
            signature: None,
        };
        let mut receipt = Receipt {
            contract: record.contract,
            consumer: record.consumer.clone(),
            credential: record.credential.clone(),
            session,
            at: 20_000,
            last: true,
            connection_millis: 10_000,
            bytes_sent: 1_000_000,
            bytes_received: 2_000_000,
            signature: None,
        };
        receipt.sign(&consumer);
        assert!(receipt.verify());
        // Signed by another key, or as a usage record: not the consumer's receipt.
        let mut other = receipt.clone();
        other.sign(&provider);
        assert!(!other.verify());
        let mut as_record = receipt.clone();
        as_record.signature = Some(Ed25519Signature::sign(
            &consumer,
            identity::Domain::UsageRecord,
            &receipt.signing_bytes(),
        ));
        assert!(!as_record.verify());
        // Agreeing, or within what frames in flight explain: no contradiction.
        assert_eq!(receipt.contradicts(&record), None);
        let mut near = record.clone();
        near.bytes_out += RECEIPT_SLACK_BYTES;
        assert_eq!(receipt.contradicts(&near), None);
        // Inflated: named.
        let mut inflated = record.clone();
        inflated.bytes_in *= 10;
        let why = receipt.contradicts(&inflated).unwrap();
        assert!(
            why.contains("10000000 bytes in") && why.contains("1000000"),
            "{why}"
        );
        let mut longer = record.clone();
        longer.connection_millis += RECEIPT_SLACK_MILLIS + 1;
        assert!(receipt
            .contradicts(&longer)
            .unwrap()
            .contains("ms connected"));
        // Another session's record, or a receipt of a session still running: no evidence.
        let mut elsewhere = inflated.clone();
        elsewhere.session = None;
        assert_eq!(receipt.contradicts(&elsewhere), None);
        let mut running = receipt.clone();
        running.last = false;
        assert_eq!(running.contradicts(&inflated), None);
    }
}
