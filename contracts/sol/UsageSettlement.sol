// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Marketplace} from "./Marketplace.sol";

/// @title Batch settlement of usage, with provable overcharges
/// @notice One transaction settles a whole batch: it records the root of a Merkle sum tree over the
///         batch's usage records and the content-store CID of the records, and charges each
///         contract its amount (locked for the contract's challenge window). A contract that cannot
///         be charged (closed, short, above the consumer's cap) is skipped with `ChargeSkipped`
///         and never blocks the others. A batch id settles once.
///
///         Within the challenge window anyone can prove, from the records alone, that a contract
///         was charged more than it owes, and the difference goes back to the consumer:
///         - `challengeTotal`: the contract's charge in the batch is above the sum of its leaves;
///         - `challengeRecord`: a leaf is priced above what the consumer's signed unit prices give
///           for the record's usage, or the leaf's record belongs to another contract;
///         - `challengeDuplicate`: two charged leaves carry the same record id (in one batch or
///           two): the second is refunded whole.
/// @dev The tree: a record leaf is (keccak256(0x00 ‖ recordHash ‖ amount), amount); an inner node
///      over (l, r) is (keccak256(0x01 ‖ l.hash ‖ l.sum ‖ r.hash ‖ r.sum), l.sum + r.sum); each
///      contract's records form a subtree whose top (h, s) becomes the contract node
///      (keccak256(0x02 ‖ contractId ‖ h), s); the contract nodes form the batch tree. A node's
///      sum is committed by its parent's hash, so a path from any leaf yields the true sum of the
///      leaves under its contract. Odd nodes move up unchanged (no step in the path).
contract UsageSettlement is AccessControlDefaultAdminRules {
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    struct Batch {
        bytes32 merkleRoot;
        uint64 settledAt;
        uint32 recordCount;
        uint256 total;
        string recordsCid;
    }

    /// A sibling on a path: its hash, its sum, and whether it sits left of the path's node.
    struct Step {
        bytes32 hash;
        uint256 sum;
        bool left;
    }

    /// The usage a record reports, as its leaf commits to it (`bodyHash` is keccak-256 of the
    /// record's signed JSON as stored under the batch's CID, `recordId` of its id).
    struct UsageRecord {
        bytes32 recordId;
        bytes32 bodyHash;
        uint64 from;
        uint64 to;
        uint64 connectionMillis;
        uint64 bytesIn;
        uint64 bytesOut;
        uint64 cpuMillis;
        uint64 maxMemoryKib;
        uint64 gpuMillis;
        uint64 dataAccesses;
    }

    /// The consumer's signed unit prices, the same fields and EIP-712 type as the
    /// Marketplace's `UsagePrices` (declared here so the ABI names one struct per contract).
    struct Prices {
        uint256 cpuCoreHour;
        uint256 memoryGibHour;
        uint256 gpuHour;
        uint256 networkGb;
        uint256 dataAccess;
        uint256 gpuRecordFee;
    }

    bytes32 private constant PRICES_TYPEHASH = keccak256(
        "UsagePrices(uint256 cpuCoreHour,uint256 memoryGibHour,uint256 gpuHour,uint256 networkGb,uint256 dataAccess,uint256 gpuRecordFee)"
    );

    Marketplace public immutable marketplace;
    mapping(bytes32 batchId => Batch) private _batches;
    mapping(bytes32 batchId => mapping(bytes32 contractId => bool)) public totalChallenged;
    /// Per leaf (its batch, contract, record hash and position): what challenges refunded of it,
    /// and whether it stood as the original of a duplicate.
    mapping(bytes32 leafKey => uint256) public leafRefunded;
    mapping(bytes32 leafKey => bool) public leafKept;

    /// Where a leaf sits: its batch, its amount and its paths (which fix its position).
    struct LeafProof {
        bytes32 batchId;
        uint256 amount;
        Step[] recordPath;
        Step[] contractPath;
    }

    event BatchSettled(
        bytes32 indexed batchId, bytes32 merkleRoot, string recordsCid, uint32 recordCount, uint256 contracts, uint256 total
    );
    /// A contract of the batch could not be charged (the revert data says why); its records were
    /// not paid by this batch.
    event ChargeSkipped(bytes32 indexed batchId, bytes32 indexed contractId, uint256 amount, bytes reason);
    /// An overcharge proven on chain; `recordHash` is zero for a total above the leaves' sum.
    event OverchargeProven(
        bytes32 indexed batchId, bytes32 indexed contractId, bytes32 recordHash, uint256 proven, uint256 refunded
    );

    error BatchExists(bytes32 batchId);
    error UnknownBatch(bytes32 batchId);
    error InvalidBatch();
    error AdminHoldsNoRole(bytes32 role);
    error NotInBatch();
    error NoOvercharge(uint256 charged, uint256 owed);
    error AlreadyChallenged();
    error WrongPrices();
    error NotADuplicate();

    constructor(address admin, uint48 adminDelay, address settler, Marketplace marketplace_)
        AccessControlDefaultAdminRules(adminDelay, admin)
    {
        marketplace = marketplace_;
        _grantRole(SETTLER_ROLE, settler);
    }

    /// @dev The admin administers; it never settles.
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if (role != DEFAULT_ADMIN_ROLE && account == defaultAdmin()) revert AdminHoldsNoRole(role);
        return super._grantRole(role, account);
    }

    function settle(
        bytes32 batchId,
        bytes32 merkleRoot,
        string calldata recordsCid,
        uint32 recordCount,
        bytes32[] calldata contractIds,
        uint256[] calldata amounts
    ) external onlyRole(SETTLER_ROLE) {
        if (_batches[batchId].settledAt != 0) revert BatchExists(batchId);
        if (
            batchId == bytes32(0) || merkleRoot == bytes32(0) || bytes(recordsCid).length == 0 || recordCount == 0
                || contractIds.length == 0 || contractIds.length != amounts.length
        ) revert InvalidBatch();
        uint256 total;
        for (uint256 i = 0; i < contractIds.length; ++i) {
            try marketplace.charge(contractIds[i], amounts[i], batchId) {
                total += amounts[i];
            } catch (bytes memory reason) {
                emit ChargeSkipped(batchId, contractIds[i], amounts[i], reason);
            }
        }
        _batches[batchId] = Batch(merkleRoot, uint64(block.timestamp), recordCount, total, recordsCid);
        emit BatchSettled(batchId, merkleRoot, recordsCid, recordCount, contractIds.length, total);
    }

    // ---- challenges ---------------------------------------------------------------------------

    /// @notice Proves that batch `batchId` charged `contractId` more than the sum of the contract's
    ///         leaves, from any one of its leaves (`recordHash`, `amount`) and its paths; refunds
    ///         the difference.
    function challengeTotal(
        bytes32 batchId,
        bytes32 contractId,
        bytes32 recordHash,
        uint256 amount,
        Step[] calldata recordPath,
        Step[] calldata contractPath
    ) external returns (uint256 refunded) {
        uint256 owed = _contractSum(batchId, contractId, recordHash, amount, recordPath, contractPath);
        uint256 charged = marketplace.usageCharge(batchId, contractId).charged;
        if (charged <= owed) revert NoOvercharge(charged, owed);
        if (totalChallenged[batchId][contractId]) revert AlreadyChallenged();
        totalChallenged[batchId][contractId] = true;
        refunded = marketplace.refundOvercharge(batchId, contractId, charged - owed);
        emit OverchargeProven(batchId, contractId, bytes32(0), charged - owed, refunded);
    }

    /// @notice Proves a leaf of `contractId` overcharged: its record (`r`, of contract
    ///         `recordContract`) priced with the consumer's signed `prices` gives less than the
    ///         leaf's amount (all of it when the record is another contract's).
    function challengeRecord(
        bytes32 contractId,
        bytes32 recordContract,
        UsageRecord calldata r,
        LeafProof calldata leaf,
        Prices calldata prices
    ) external returns (uint256 refunded) {
        bytes32 recordHash = hashRecord(recordContract, r);
        _proveLeaf(contractId, recordHash, leaf);
        uint256 owed;
        if (recordContract == contractId) {
            if (hashPrices(prices) != marketplace.pricesHashOf(contractId)) revert WrongPrices();
            owed = priceCeiling(r, prices);
        }
        if (leaf.amount <= owed) revert NoOvercharge(leaf.amount, owed);
        refunded = _refundLeaf(contractId, recordHash, leaf, leaf.amount - owed);
    }

    /// @notice Proves a record charged twice: two leaves of `contractId` (in one batch or two)
    ///         whose records carry the same record id. The `duplicate` leaf is refunded whole;
    ///         the `original` must be a charged one and stays (it can never be refunded as a
    ///         duplicate itself).
    function challengeDuplicate(
        bytes32 contractId,
        UsageRecord calldata original,
        LeafProof calldata originalLeaf,
        UsageRecord calldata duplicate,
        LeafProof calldata duplicateLeaf
    ) external returns (uint256 refunded) {
        if (original.recordId != duplicate.recordId) revert NotADuplicate();
        bytes32 keptHash = hashRecord(contractId, original);
        bytes32 dupHash = hashRecord(contractId, duplicate);
        _proveLeaf(contractId, keptHash, originalLeaf);
        _proveLeaf(contractId, dupHash, duplicateLeaf);
        bytes32 kept = _leafKey(contractId, keptHash, originalLeaf);
        bytes32 dup = _leafKey(contractId, dupHash, duplicateLeaf);
        if (kept == dup) revert NotADuplicate();
        if (leafKept[dup]) revert AlreadyChallenged();
        if (marketplace.usageCharge(originalLeaf.batchId, contractId).charged == 0) revert NotADuplicate();
        leafKept[kept] = true;
        refunded = _refundLeaf(contractId, dupHash, duplicateLeaf, duplicateLeaf.amount);
    }

    /// Reverts unless `leaf` proves (`recordHash`, its amount) sits under `contractId`.
    function _proveLeaf(bytes32 contractId, bytes32 recordHash, LeafProof calldata leaf) private view {
        _contractSum(leaf.batchId, contractId, recordHash, leaf.amount, leaf.recordPath, leaf.contractPath);
    }

    function _leafKey(bytes32 contractId, bytes32 recordHash, LeafProof calldata leaf)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(leaf.batchId, contractId, recordHash, leaf.recordPath, leaf.contractPath));
    }

    /// Refunds up to `claim` of a leaf, less what earlier challenges of it refunded.
    function _refundLeaf(bytes32 contractId, bytes32 recordHash, LeafProof calldata leaf, uint256 claim)
        private
        returns (uint256 refunded)
    {
        bytes32 key = _leafKey(contractId, recordHash, leaf);
        uint256 before = leafRefunded[key];
        if (claim <= before) revert AlreadyChallenged();
        refunded = marketplace.refundOvercharge(leaf.batchId, contractId, claim - before);
        leafRefunded[key] = before + refunded;
        emit OverchargeProven(leaf.batchId, contractId, recordHash, claim - before, refunded);
    }

    // ---- views --------------------------------------------------------------------------------

    function batch(bytes32 batchId) external view returns (Batch memory b) {
        b = _batches[batchId];
        if (b.settledAt == 0) revert UnknownBatch(batchId);
    }

    /// @notice True when the leaf (`recordHash`, `amount`) sits under `contractId` in batch
    ///         `batchId`; also returns the sum of that contract's leaves.
    function verifyRecord(
        bytes32 batchId,
        bytes32 contractId,
        bytes32 recordHash,
        uint256 amount,
        Step[] calldata recordPath,
        Step[] calldata contractPath
    ) external view returns (bool ok, uint256 contractSum) {
        bytes32 root = _root(batchId);
        (bytes32 h, uint256 s) = climb(leafHash(recordHash, amount), amount, recordPath);
        (bytes32 top,) = climb(contractNode(contractId, h), s, contractPath);
        return (top == root, s);
    }

    /// @notice The most a record can cost at `prices`: CPU time, peak memory over the connection
    ///         time, GPU time plus the per-record GPU fee, all traffic, data accesses. The broker's
    ///         price is never above it (free traffic and the green-energy reward only lower it).
    function priceCeiling(UsageRecord calldata r, Prices calldata p) public pure returns (uint256) {
        uint256 hourMs = 3_600_000;
        uint256 cpu = (p.cpuCoreHour * r.cpuMillis) / hourMs;
        uint256 mem = (p.memoryGibHour * (uint256(r.maxMemoryKib) * r.connectionMillis)) / (1024 * 1024 * hourMs);
        // GPU-milliseconds × 10^5 is GPU-seconds at the billing model's 10^8 fraction scale.
        uint256 gpu = r.gpuMillis == 0 ? 0 : (uint256(r.gpuMillis) * 1e5 * p.gpuHour) / 360_000_000_000 + p.gpuRecordFee;
        uint256 net = (p.networkGb * (uint256(r.bytesIn) + r.bytesOut)) / 1e9;
        uint256 data = p.dataAccess * r.dataAccesses;
        return cpu + mem + gpu + net + data;
    }

    /// The EIP-712 struct hash the consumer signed the prices under (`Marketplace.pricesHashOf`).
    function hashPrices(Prices calldata p) public pure returns (bytes32) {
        return keccak256(
            abi.encode(PRICES_TYPEHASH, p.cpuCoreHour, p.memoryGibHour, p.gpuHour, p.networkGb, p.dataAccess, p.gpuRecordFee)
        );
    }

    function hashRecord(bytes32 contractId, UsageRecord calldata r) public pure returns (bytes32) {
        return keccak256(abi.encode(contractId, r));
    }

    function leafHash(bytes32 recordHash, uint256 amount) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), recordHash, amount));
    }

    function contractNode(bytes32 contractId, bytes32 subtree) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x02), contractId, subtree));
    }

    /// Walks a path up from (h, s).
    function climb(bytes32 h, uint256 s, Step[] calldata path) public pure returns (bytes32, uint256) {
        for (uint256 i = 0; i < path.length; ++i) {
            Step calldata st = path[i];
            h = st.left
                ? keccak256(abi.encodePacked(bytes1(0x01), st.hash, st.sum, h, s))
                : keccak256(abi.encodePacked(bytes1(0x01), h, s, st.hash, st.sum));
            s += st.sum;
        }
        return (h, s);
    }

    /// The sum of `contractId`'s leaves in the batch, from a leaf proven to be one of them.
    function _contractSum(
        bytes32 batchId,
        bytes32 contractId,
        bytes32 recordHash,
        uint256 amount,
        Step[] calldata recordPath,
        Step[] calldata contractPath
    ) private view returns (uint256) {
        bytes32 root = _root(batchId);
        (bytes32 h, uint256 s) = climb(leafHash(recordHash, amount), amount, recordPath);
        (bytes32 top,) = climb(contractNode(contractId, h), s, contractPath);
        if (top != root) revert NotInBatch();
        return s;
    }

    function _root(bytes32 batchId) private view returns (bytes32) {
        Batch storage b = _batches[batchId];
        if (b.settledAt == 0) revert UnknownBatch(batchId);
        return b.merkleRoot;
    }
}
