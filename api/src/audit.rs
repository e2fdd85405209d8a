//! Auditors' questions about the ledger, answered from the broker's index of every event the six
//! contracts logged (`GET /v1/audit/...`, auditors and operators only). Every list pages with an
//! opaque `cursor` (bound to its query: a cursor of another query is refused) and comes as JSON
//! or, with `format=csv`, as CSV.

use alloy::primitives::Address;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{BatchId, ContractId, Hash32, TxHash};
use crate::Credits;

/// Most items on one page.
pub const MAX_PAGE: u32 = 500;
/// Items on a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// The longest time range one query may span (366 days), in seconds.
pub const MAX_SPAN_SECS: u64 = 366 * 86_400;
/// The range a query covers when it gives no `from` (31 days before `to`).
pub const DEFAULT_SPAN_SECS: u64 = 31 * 86_400;

/// JSON (default) or CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    #[default]
    Json,
    Csv,
}

/// Which side of a contract a participant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Consumer,
    Provider,
}

/// A contract's state as the chain's events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LedgerContractState {
    /// Open, its escrow able to pay at least one more reserved period (or pay-per-use).
    Open,
    /// Open, but its escrow cannot pay the next reserved period.
    Low,
    Suspended,
    /// A party asked to close; the grace runs.
    Closing,
    Closed,
}

/// `GET /v1/audit/contracts` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditContractsQuery {
    /// A did:key or an EVM account (0x…); every contract when absent.
    pub participant: Option<String>,
    /// Only contracts where the participant is this side.
    pub side: Option<Side>,
    /// Only contracts in this state now.
    pub state: Option<LedgerContractState>,
    /// Contracts opened at or after (unix seconds; default 31 days before `to`).
    pub from: Option<u64>,
    /// Contracts opened before (unix seconds; default now).
    pub to: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page of the same query.
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// A contract as the ledger's events tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditContract {
    pub contract_id: ContractId,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub consumer: Address,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub provider: Address,
    /// The dids registered on chain for these accounts.
    pub consumer_did: Option<Did>,
    pub provider_did: Option<Did>,
    pub terms_hash: Hash32,
    pub terms_cid: String,
    /// Where both parties' signatures of the document are kept, as the chain logged it.
    pub signatures_cid: Option<String>,
    pub deposit: Credits,
    /// Price of a reserved period (zero for pay-per-use).
    pub period_price: Credits,
    /// Seconds per reserved period.
    pub period: u64,
    pub opened_block: u64,
    pub opened_at: u64,
    pub opened_tx: TxHash,
    pub closed_block: Option<u64>,
    pub closed_at: Option<u64>,
    pub topped_up: Credits,
    /// Reserved periods and usage charged from the escrow.
    pub charged: Credits,
    /// The broker's fee of what the provider earned.
    pub fees: Credits,
    /// Overcharges proven and given back, and unused shares of periods.
    pub returned: Credits,
    /// Paid back to the consumer at close.
    pub refunded: Credits,
    /// What the escrow holds now.
    pub escrow: Credits,
    pub state: LedgerContractState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditContractPage {
    pub items: Vec<AuditContract>,
    /// Pass as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/audit/flows` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlowsQuery {
    /// A did:key or an EVM account (0x…).
    pub participant: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// What a flow of credits was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// Credits minted to the participant (the development faucet, or the minter).
    Minted,
    /// A token transfer to or from another account.
    TransferIn,
    TransferOut,
    /// The consumer's deposit into a contract's escrow.
    Deposit,
    TopUp,
    /// A reserved period or usage charged from the escrow (the consumer's side).
    Charge,
    /// What the provider earned from a charge, net of the fee.
    Earned,
    /// The broker's fee of a charge.
    Fee,
    /// An overcharge or unused period share back to the escrow or the consumer.
    Returned,
    /// The escrow paid back to the consumer at close.
    Refund,
    /// A provider's earnings withdrawn to an account.
    Withdrawal,
}

/// One flow of credits touching a participant, with where its log sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub block: u64,
    pub log_index: u64,
    pub tx: TxHash,
    pub at: u64,
    pub kind: FlowKind,
    /// Positive into the participant's wallet or escrow, as the kind says.
    pub amount: Credits,
    pub contract_id: Option<ContractId>,
    /// The other account of a transfer or withdrawal.
    #[schema(value_type = Option<String>)]
    pub counterparty: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowPage {
    #[schema(value_type = String)]
    pub account: Address,
    pub items: Vec<Flow>,
    pub next_cursor: Option<String>,
}

/// A calendar bucket (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    /// ISO weeks, from Monday.
    Week,
    Month,
}

/// `GET /v1/audit/earnings` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EarningsQuery {
    /// A provider's did:key or account; every provider when absent.
    pub provider: Option<String>,
    /// day (default), week or month.
    pub per: Option<Bucket>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub format: Option<AuditFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarningsRow {
    /// The bucket's first second (UTC).
    pub start: u64,
    /// What providers earned, net of fees, when the charge's hold ended.
    pub provider_earnings: Credits,
    pub broker_fees: Credits,
    /// Earnings events in the bucket.
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarningsReport {
    pub per: Bucket,
    pub rows: Vec<EarningsRow>,
    pub provider_earnings: Credits,
    pub broker_fees: Credits,
}

/// What a ranking orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RankBy {
    /// Credits charged (sales of a provider, spending of a consumer).
    Sales,
    Contracts,
}

/// `GET /v1/audit/rankings` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RankingsQuery {
    /// provider (default) or consumer.
    pub side: Option<Side>,
    /// sales (default) or contracts.
    pub by: Option<RankBy>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page of the same query.
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RankingRow {
    pub rank: u32,
    #[schema(value_type = String)]
    pub account: Address,
    pub did: Option<Did>,
    /// Contracts opened in the range.
    pub contracts: u64,
    /// Credits charged in the range.
    pub sales: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ranking {
    pub side: Side,
    pub by: RankBy,
    pub items: Vec<RankingRow>,
    /// The next page, when there is one.
    pub next_cursor: Option<String>,
    /// Across every participant of the side, not only those listed.
    pub total_contracts: u64,
    pub total_sales: Credits,
}

/// `GET /v1/audit/settlements` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SettlementsQuery {
    /// Only batches that charged this contract.
    pub contract: Option<ContractId>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// A contract's part of a settlement batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCharge {
    pub contract_id: ContractId,
    pub amount: Credits,
    pub fee: Credits,
    /// Not charged (the revert data, hex): its records were not paid by this batch.
    pub skipped: Option<String>,
}

/// A settlement batch as the chain logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditBatch {
    pub batch_id: BatchId,
    pub merkle_root: Hash32,
    /// The records, in leaf order, in the content store.
    pub records_cid: String,
    pub record_count: u32,
    pub total: Credits,
    pub block: u64,
    pub at: u64,
    pub tx: TxHash,
    pub charges: Vec<BatchCharge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettlementPage {
    pub items: Vec<AuditBatch>,
    pub next_cursor: Option<String>,
    /// A record's Merkle proof: `GET /v1/usage/{record}/proof`.
    pub proof_path: String,
}

/// `GET /v1/audit/usage` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageAuditQuery {
    /// One contract, or every contract of `participant`.
    pub contract: Option<ContractId>,
    pub participant: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// Usage settled against what was bought, per contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageAudit {
    pub contract_id: ContractId,
    /// Deposit and top-ups.
    pub bought: Credits,
    pub periods_charged: Credits,
    pub usage_charged: Credits,
    pub returned: Credits,
    pub refunded: Credits,
    pub escrow: Credits,
    /// Settlement batches that charged it.
    pub batches: u64,
    /// Records its usage charges covered (as the broker's records say; none when the broker has
    /// no records of it).
    pub records_settled: Option<u64>,
    /// Bought − charged + returned − refunded − escrow: zero when the ledger adds up.
    pub unexplained: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageAuditPage {
    pub items: Vec<UsageAudit>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/audit/credentials` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CredentialsAuditQuery {
    /// The issuing account (0x…).
    pub issuer: Option<String>,
    /// A provider's did:key: credentials about it (as the broker's certificates say).
    pub provider: Option<Did>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// A credential anchored in the CredentialRegistry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnchoredCredential {
    pub hash: Hash32,
    #[schema(value_type = String)]
    pub issuer: Address,
    pub cid: String,
    pub anchored_block: u64,
    pub anchored_at: u64,
    pub anchored_tx: TxHash,
    pub revoked_block: Option<u64>,
    pub revoked_at: Option<u64>,
    /// The reason, as the 32 bytes the chain keeps, read as text.
    pub revoke_reason: Option<String>,
    /// Whom it is about, as the broker's certificates say (none for a credential the broker did
    /// not issue).
    pub provider: Option<Did>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialAuditPage {
    pub items: Vec<AnchoredCredential>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/audit/configs` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigsQuery {
    /// A provider's did:key or account; every provider when absent.
    pub provider: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<AuditFormat>,
}

/// One version of a provider's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVersion {
    #[schema(value_type = String)]
    pub account: Address,
    pub did: Option<Did>,
    pub version: u64,
    /// As the chain has it (verify says whether it resolves).
    pub cid: String,
    pub block: u64,
    pub at: u64,
    pub tx: TxHash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPage {
    pub items: Vec<ConfigVersion>,
    pub next_cursor: Option<String>,
}

/// A reorganisation the index rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReorgSeen {
    pub detected_at: u64,
    /// The last block the index had read that the chain replaced.
    pub from_block: u64,
    /// The highest block both agreed on; the index was read again above it.
    pub ancestor: u64,
    pub depth: u64,
    /// A confirmation depth was set and the chain went below it.
    pub beyond_confirmations: bool,
}

/// `GET /v1/audit/index`: how far the index has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexStatus {
    pub chain_id: u64,
    pub deployment_block: u64,
    /// The next block the index reads.
    pub next_block: u64,
    pub head: u64,
    pub confirmations: u64,
    pub events: u64,
    pub reorgs: Vec<ReorgSeen>,
}

/// One count of the self-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountCheck {
    /// The contract and event (`Marketplace.ContractOpened`).
    pub event: String,
    pub indexed: u64,
    pub on_chain: u64,
    pub agrees: bool,
}

/// `GET /v1/audit/selfcheck`: the index's counts against counts read from the chain now, over
/// the blocks the index has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheck {
    pub through_block: u64,
    pub counts: Vec<CountCheck>,
    pub agrees: bool,
}
