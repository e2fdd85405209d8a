// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Marketplace} from "./Marketplace.sol";

/// @title Batch settlement of usage
/// @notice One transaction settles a whole batch: it records the Merkle root over the batch's usage
///         records and the content-store CID of the records, and moves each contract's amount from
///         escrow to its provider (less the broker fee). A batch applies whole or not at all, and a
///         batch id settles once, so a retried transaction never pays twice. The admin (two-step
///         transfer with a delay) holds no settler role.
/// @dev Leaves are keccak256(abi.encodePacked(recordHash)) with recordHash = keccak256(record),
///      pairs hashed sorted (OpenZeppelin MerkleProof).
contract UsageSettlement is AccessControlDefaultAdminRules {
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    struct Batch {
        bytes32 merkleRoot;
        uint64 settledAt;
        uint32 recordCount;
        uint256 total;
        string recordsCid;
    }

    Marketplace public immutable marketplace;
    mapping(bytes32 batchId => Batch) private _batches;

    event BatchSettled(
        bytes32 indexed batchId, bytes32 merkleRoot, string recordsCid, uint32 recordCount, uint256 contracts, uint256 total
    );

    error BatchExists(bytes32 batchId);
    error UnknownBatch(bytes32 batchId);
    error InvalidBatch();
    error AdminHoldsNoRole(bytes32 role);

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
            marketplace.charge(contractIds[i], amounts[i], batchId);
            total += amounts[i];
        }
        _batches[batchId] = Batch(merkleRoot, uint64(block.timestamp), recordCount, total, recordsCid);
        emit BatchSettled(batchId, merkleRoot, recordsCid, recordCount, contractIds.length, total);
    }

    function batch(bytes32 batchId) external view returns (Batch memory b) {
        b = _batches[batchId];
        if (b.settledAt == 0) revert UnknownBatch(batchId);
    }

    /// @notice True when the record with hash `recordHash` is part of batch `batchId`.
    function verifyRecord(bytes32 batchId, bytes32 recordHash, bytes32[] calldata proof) external view returns (bool) {
        Batch storage b = _batches[batchId];
        if (b.settledAt == 0) revert UnknownBatch(batchId);
        return MerkleProof.verifyCalldata(proof, b.merkleRoot, keccak256(abi.encodePacked(recordHash)));
    }
}
