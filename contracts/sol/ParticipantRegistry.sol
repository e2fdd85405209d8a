// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title Participant registry
/// @notice Links a participant's DID to its EVM account, records its role and, for providers,
///         the content-store CID of its configuration. Every config change is an event, so the
///         full history can be rebuilt from the chain.
/// @dev The registrar (the broker) checks the DID's own key off chain; on chain the account proves
///      it agrees with an EIP-712 signature, so no one can link an account they do not control.
contract ParticipantRegistry is AccessControl, EIP712, Nonces {
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    enum Role {
        None,
        Provider,
        Consumer,
        Auditor,
        Operator
    }

    struct Participant {
        string did;
        Role role;
        bool active;
        uint64 registeredAt;
        uint64 configVersion;
        string configCid;
    }

    bytes32 public constant LINK_TYPEHASH =
        keccak256("Link(string did,address account,uint8 role,uint256 nonce,uint256 deadline)");
    bytes32 public constant CONFIG_TYPEHASH =
        keccak256("SetConfig(address account,string cid,uint256 nonce,uint256 deadline)");

    mapping(address account => Participant) private _participants;
    mapping(bytes32 didHash => address) public accountOfDid;

    event ParticipantRegistered(address indexed account, bytes32 indexed didHash, string did, Role role);
    event ParticipantActiveChanged(address indexed account, bool active);
    event ConfigUpdated(address indexed account, uint64 indexed version, string cid);

    error InvalidRole();
    error EmptyDid();
    error DidTaken(address account);
    error AccountTaken(string did);
    error Expired(uint256 deadline);
    error BadSignature();
    error NotProvider(address account);
    error EmptyCid();
    error NotRegistered(address account);

    constructor(address admin) EIP712("Mercato ParticipantRegistry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @notice Links `did` to `account` with `role`. `signature` is the account's EIP-712
    ///         signature over Link(did, account, role, nonce, deadline).
    function register(string calldata did, address account, Role role, uint256 deadline, bytes calldata signature)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (role == Role.None) revert InvalidRole();
        if (bytes(did).length == 0) revert EmptyDid();
        if (block.timestamp > deadline) revert Expired(deadline);
        bytes32 didHash = keccak256(bytes(did));
        if (accountOfDid[didHash] != address(0)) revert DidTaken(accountOfDid[didHash]);
        if (_participants[account].role != Role.None) revert AccountTaken(_participants[account].did);

        bytes32 structHash = keccak256(
            abi.encode(LINK_TYPEHASH, didHash, account, uint8(role), _useNonce(account), deadline)
        );
        _requireSigner(account, structHash, signature);

        accountOfDid[didHash] = account;
        Participant storage p = _participants[account];
        p.did = did;
        p.role = role;
        p.active = true;
        p.registeredAt = uint64(block.timestamp);
        emit ParticipantRegistered(account, didHash, did, role);
    }

    function setActive(address account, bool active) external onlyRole(REGISTRAR_ROLE) {
        if (_participants[account].role == Role.None) revert NotRegistered(account);
        _participants[account].active = active;
        emit ParticipantActiveChanged(account, active);
    }

    /// @notice A provider records the CID of its new configuration itself.
    function setConfig(string calldata cid) external {
        _setConfig(msg.sender, cid);
    }

    /// @notice A relayer records a provider's new configuration CID with the provider's signature.
    function setConfigFor(address account, string calldata cid, uint256 deadline, bytes calldata signature) external {
        if (block.timestamp > deadline) revert Expired(deadline);
        bytes32 structHash =
            keccak256(abi.encode(CONFIG_TYPEHASH, account, keccak256(bytes(cid)), _useNonce(account), deadline));
        _requireSigner(account, structHash, signature);
        _setConfig(account, cid);
    }

    function participant(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    function roleOf(address account) external view returns (Role) {
        Participant storage p = _participants[account];
        return p.active ? p.role : Role.None;
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _setConfig(address account, string calldata cid) private {
        Participant storage p = _participants[account];
        if (p.role != Role.Provider || !p.active) revert NotProvider(account);
        if (bytes(cid).length == 0) revert EmptyCid();
        uint64 version = p.configVersion + 1;
        p.configVersion = version;
        p.configCid = cid;
        emit ConfigUpdated(account, version, cid);
    }

    function _requireSigner(address account, bytes32 structHash, bytes calldata signature) private view {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (err != ECDSA.RecoverError.NoError || signer != account) revert BadSignature();
    }
}
