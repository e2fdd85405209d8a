// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Verifiable credential anchors
/// @notice Anchors a credential's hash with its issuer and content-store CID, so anyone can check
///         offline that a credential was issued and whether it was revoked since.
contract CredentialRegistry is AccessControl {
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");

    struct Anchor {
        address issuer;
        uint64 anchoredAt;
        uint64 revokedAt;
        string cid;
    }

    mapping(bytes32 credentialHash => Anchor) private _anchors;

    event CredentialAnchored(bytes32 indexed credentialHash, address indexed issuer, string cid);
    event CredentialRevoked(bytes32 indexed credentialHash, address indexed by, bytes32 reason);

    error AlreadyAnchored(bytes32 credentialHash);
    error UnknownCredential(bytes32 credentialHash);
    error AlreadyRevoked(bytes32 credentialHash);
    error NotIssuer(address account);
    error InvalidAnchor();

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ISSUER_ROLE, admin);
    }

    function anchor(bytes32 credentialHash, string calldata cid) external onlyRole(ISSUER_ROLE) {
        if (credentialHash == bytes32(0) || bytes(cid).length == 0) revert InvalidAnchor();
        if (_anchors[credentialHash].anchoredAt != 0) revert AlreadyAnchored(credentialHash);
        _anchors[credentialHash] = Anchor(msg.sender, uint64(block.timestamp), 0, cid);
        emit CredentialAnchored(credentialHash, msg.sender, cid);
    }

    /// @notice Revokes a credential; only its issuer or an admin may.
    function revoke(bytes32 credentialHash, bytes32 reason) external {
        Anchor storage a = _anchors[credentialHash];
        if (a.anchoredAt == 0) revert UnknownCredential(credentialHash);
        if (msg.sender != a.issuer && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) revert NotIssuer(msg.sender);
        if (a.revokedAt != 0) revert AlreadyRevoked(credentialHash);
        a.revokedAt = uint64(block.timestamp);
        emit CredentialRevoked(credentialHash, msg.sender, reason);
    }

    function lookup(bytes32 credentialHash) external view returns (Anchor memory a) {
        a = _anchors[credentialHash];
        if (a.anchoredAt == 0) revert UnknownCredential(credentialHash);
    }

    function isValid(bytes32 credentialHash) external view returns (bool) {
        Anchor storage a = _anchors[credentialHash];
        return a.anchoredAt != 0 && a.revokedAt == 0;
    }
}
