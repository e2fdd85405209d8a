// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ParticipantRegistry} from "./ParticipantRegistry.sol";

interface ISettlement {
    function marketplace() external view returns (address);
}

/// @title Marketplace: contracts between consumers and providers, with escrow
/// @notice A contract is opened from the consumer's EIP-712 authorisation: the broker relays it, but
///         it cannot pull a consumer's tokens for anything the consumer did not sign. The escrow
///         pays reserved periods in advance and usage through the settlement contract; what is left
///         goes back to the consumer on close. Providers withdraw what they earned.
///         Usage is bounded by what the consumer signed: a cap per charging window (zero: no usage
///         charge at all) and the unit prices, whose hash a challenge checks. A usage charge stays
///         locked for the contract's challenge window, during which a proven overcharge goes back
///         to the consumer; only then does the provider earn it.
///         A reserved period's payment is held while the period runs and earned as it ends, so an
///         early close asked by the provider gives back the unused share.
///         Roles: the admin (two-step transfer with a delay) sets parameters for contracts opened
///         later and names the settlement contract once; it holds no operational role. The broker
///         opens, suspends, resumes and closes; only the settlement contract charges usage.
/// @dev Solvency invariant:
///      token.balanceOf(this) == totalEscrow + totalHeld + totalLocked + totalEarnings + feesAccrued.
contract Marketplace is AccessControlDefaultAdminRules, EIP712, Nonces, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant BROKER_ROLE = keccak256("BROKER_ROLE");
    uint16 public constant MAX_FEE_BPS = 1000;
    /// Longest wait a close request can impose (also keeps `closableAt` far from overflow).
    uint64 public constant MAX_CLOSE_GRACE = 30 days;
    /// Longest challenge window (how long a provider waits for its usage earnings).
    uint64 public constant MAX_CHALLENGE_WINDOW = 30 days;
    /// Longest charging window a usage cap may span.
    uint64 public constant MAX_CAP_WINDOW = 30 days;
    bytes32 public constant PERIOD_CHARGE = "period";

    enum Status {
        None,
        Active,
        Suspended,
        Closing,
        Closed
    }

    struct Agreement {
        address consumer;
        address provider;
        Status status;
        /// The broker's fee, the close grace and the challenge window in force when it opened.
        uint16 feeBps;
        uint64 closeGrace;
        uint64 challengeWindow;
        uint64 openedAt;
        uint64 period;
        /// End of the reserved period paid last (the next one is due then).
        uint64 nextChargeAt;
        uint64 closableAt;
        /// When the service stopped: suspension, or the close request.
        uint64 stoppedAt;
        /// Who asked to close (zero while nobody has).
        address closeRequestedBy;
        uint256 escrow;
        /// The running reserved period's payment, earned by the provider when the period ends.
        uint256 held;
        uint256 periodPrice;
        /// Everything charged (periods and usage, less what was given back). It shares a slot
        /// with the window's start, never zero after opening, so a charge rewrites it cheaply.
        uint128 charged;
        /// Start of the running charging window, and the window's length.
        uint64 windowStart;
        uint64 capWindow;
        /// The consumer's bound on usage charges: at most `usageCap` per `capWindow` seconds, and
        /// what the running window charged so far.
        uint128 usageCap;
        uint128 windowCharged;
        /// EIP-712 hash of the signed unit prices (`UsagePrices`).
        bytes32 pricesHash;
        bytes32 termsHash;
        string termsCid;
    }

    /// @notice The pay-per-use unit prices the consumer signs, in credit base units: per core-hour,
    ///         GiB-hour (peak memory over the connection time), GPU-hour, GB of traffic, data
    ///         access, and the fixed GPU cost a record with GPU use adds (the region's at purchase).
    struct UsagePrices {
        uint256 cpuCoreHour;
        uint256 memoryGibHour;
        uint256 gpuHour;
        uint256 networkGb;
        uint256 dataAccess;
        uint256 gpuRecordFee;
    }

    /// A usage charge of one settlement batch on one contract: locked until `releasableAt`.
    struct UsageCharge {
        uint96 charged;
        uint96 open;
        uint64 releasableAt;
    }

    /// @notice What the consumer signs to open a contract. `period` and `periodPrice` are both zero
    ///         for a pay-per-use plan, both non-zero for a reserved plan.
    struct OpenRequest {
        bytes32 contractId;
        address consumer;
        address provider;
        bytes32 termsHash;
        string termsCid;
        uint256 deposit;
        uint256 periodPrice;
        uint64 period;
        UsagePrices prices;
        uint256 usageCap;
        uint64 capWindow;
        uint256 deadline;
    }

    bytes32 public constant PRICES_TYPEHASH = keccak256(
        "UsagePrices(uint256 cpuCoreHour,uint256 memoryGibHour,uint256 gpuHour,uint256 networkGb,uint256 dataAccess,uint256 gpuRecordFee)"
    );
    bytes32 public constant OPEN_TYPEHASH = keccak256(
        "OpenContract(bytes32 contractId,address consumer,address provider,bytes32 termsHash,string termsCid,uint256 deposit,uint256 periodPrice,uint64 period,UsagePrices prices,uint256 usageCap,uint64 capWindow,uint256 deadline)UsagePrices(uint256 cpuCoreHour,uint256 memoryGibHour,uint256 gpuHour,uint256 networkGb,uint256 dataAccess,uint256 gpuRecordFee)"
    );
    bytes32 public constant TOPUP_TYPEHASH =
        keccak256("TopUp(bytes32 contractId,uint256 amount,uint256 nonce,uint256 deadline)");

    IERC20 public immutable token;
    ParticipantRegistry public immutable registry;

    uint16 public feeBps;
    uint64 public closeGrace;
    uint64 public challengeWindow;
    /// The only caller of `charge`; named once, at deployment.
    address public settlement;
    uint256 public feesAccrued;
    uint256 public totalEscrow;
    uint256 public totalHeld;
    uint256 public totalLocked;
    uint256 public totalEarnings;
    mapping(address provider => uint256) public earnings;
    mapping(bytes32 contractId => Agreement) private _agreements;
    mapping(bytes32 ref => mapping(bytes32 contractId => UsageCharge)) private _usageCharges;

    event ContractOpened(
        bytes32 indexed contractId,
        address indexed consumer,
        address indexed provider,
        bytes32 termsHash,
        string termsCid,
        uint256 deposit,
        uint256 periodPrice,
        uint64 period
    );
    /// Where both parties' signatures of the document are kept (named by the broker, which holds
    /// them; anyone can check them against the document and the parties' registered dids).
    event TermsSigned(bytes32 indexed contractId, string signaturesCid);
    event ToppedUp(bytes32 indexed contractId, address indexed by, uint256 amount, uint256 escrow);
    event Charged(bytes32 indexed contractId, bytes32 indexed ref, uint256 amount, uint256 fee, uint256 escrow);
    event Suspended(bytes32 indexed contractId, bytes32 reason);
    event Resumed(bytes32 indexed contractId);
    event CloseRequested(bytes32 indexed contractId, address indexed by, uint64 closableAt);
    event ContractClosed(bytes32 indexed contractId, address indexed by, uint256 refund);
    /// A held reserved period ended (or the contract closed): `amount` earned, `fee` of it the broker's.
    event PeriodEarned(bytes32 indexed contractId, uint256 amount, uint256 fee);
    /// The unused share of a prepaid period, back to the escrow on an early close the provider
    /// asked for.
    event PeriodRefunded(bytes32 indexed contractId, uint256 amount);
    event Withdrawn(address indexed provider, address indexed to, uint256 amount);
    event FeesWithdrawn(address indexed to, uint256 amount);
    /// A usage charge's challenge window ended: `amount` earned, `fee` of it the broker's.
    event UsageEarned(bytes32 indexed contractId, bytes32 indexed ref, uint256 amount, uint256 fee);
    /// A proven overcharge went back to the escrow (or to the consumer, once closed).
    event OverchargeRefunded(bytes32 indexed contractId, bytes32 indexed ref, uint256 amount);
    event FeeChanged(uint16 feeBps);
    event CloseGraceChanged(uint64 closeGrace);
    event ChallengeWindowChanged(uint64 challengeWindow);
    event SettlementSet(address settlement);

    error ContractExists(bytes32 contractId);
    error UnknownContract(bytes32 contractId);
    error WrongStatus(bytes32 contractId, Status status);
    error Expired(uint256 deadline);
    error BadSignature();
    error InvalidTerms();
    error NotConsumer(address account);
    error NotProvider(address account);
    error NotParty(address account);
    error InsufficientEscrow(bytes32 contractId, uint256 escrow, uint256 amount);
    error InsufficientEarnings(uint256 available, uint256 amount);
    error NotDue(uint64 nextChargeAt);
    error NotClosable(uint64 closableAt);
    error FeeTooHigh(uint16 feeBps);
    error GraceTooLong(uint64 closeGrace);
    error WindowTooLong(uint64 window);
    error AboveUsageCap(bytes32 contractId, uint256 cap, uint256 windowCharged, uint256 amount);
    error AlreadyCharged(bytes32 contractId, bytes32 ref);
    error NoUsageCharge(bytes32 contractId, bytes32 ref);
    error ChallengeWindowOpen(uint64 releasableAt);
    error ChallengeWindowOver(uint64 releasableAt);
    error ZeroAmount();
    error NotSettlement(address account);
    error SettlementAlreadySet(address settlement);
    error NotASettlementContract(address account);
    error AdminHoldsNoRole(bytes32 role);

    constructor(
        address admin,
        uint48 adminDelay,
        address broker,
        IERC20 token_,
        ParticipantRegistry registry_,
        uint16 feeBps_,
        uint64 closeGrace_,
        uint64 challengeWindow_
    ) AccessControlDefaultAdminRules(adminDelay, admin) EIP712("Mercato Marketplace", "1") {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_);
        if (closeGrace_ > MAX_CLOSE_GRACE) revert GraceTooLong(closeGrace_);
        if (challengeWindow_ > MAX_CHALLENGE_WINDOW) revert WindowTooLong(challengeWindow_);
        token = token_;
        registry = registry_;
        feeBps = feeBps_;
        closeGrace = closeGrace_;
        challengeWindow = challengeWindow_;
        _grantRole(BROKER_ROLE, broker);
    }

    // ---- opening ------------------------------------------------------------------------------

    /// @notice Opens a contract; the consumer has approved `deposit` to this contract beforehand.
    ///         `signaturesCid` names where both parties' signatures of the document are kept.
    function open(OpenRequest calldata req, bytes calldata consumerSig, string calldata signaturesCid)
        external
        onlyRole(BROKER_ROLE)
        nonReentrant
    {
        _open(req, consumerSig);
        _signed(req.contractId, signaturesCid);
    }

    /// @notice Opens a contract in one transaction with the consumer's EIP-2612 permit for `deposit`.
    /// @dev A permit front-run by someone else leaves the allowance in place, so its failure is
    ///      ignored and transferFrom decides.
    function openWithPermit(
        OpenRequest calldata req,
        bytes calldata consumerSig,
        string calldata signaturesCid,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external onlyRole(BROKER_ROLE) nonReentrant {
        try IERC20Permit(address(token)).permit(req.consumer, address(this), req.deposit, permitDeadline, v, r, s) {}
            catch {}
        _open(req, consumerSig);
        _signed(req.contractId, signaturesCid);
    }

    function _signed(bytes32 contractId, string calldata signaturesCid) private {
        if (bytes(signaturesCid).length == 0) revert InvalidTerms();
        emit TermsSigned(contractId, signaturesCid);
    }

    function _open(OpenRequest calldata req, bytes calldata consumerSig) private {
        if (_agreements[req.contractId].status != Status.None) revert ContractExists(req.contractId);
        if (block.timestamp > req.deadline) revert Expired(req.deadline);
        bool reserved = req.periodPrice != 0;
        if (
            req.contractId == bytes32(0) || req.deposit == 0 || req.consumer == req.provider
                || reserved != (req.period != 0) || req.deposit < req.periodPrice || req.termsHash == bytes32(0)
                || (req.usageCap == 0) != (req.capWindow == 0) || req.usageCap > type(uint96).max
        ) revert InvalidTerms();
        if (req.capWindow > MAX_CAP_WINDOW) revert WindowTooLong(req.capWindow);
        if (registry.roleOf(req.consumer) != ParticipantRegistry.Role.Consumer) revert NotConsumer(req.consumer);
        if (registry.roleOf(req.provider) != ParticipantRegistry.Role.Provider) revert NotProvider(req.provider);
        _requireSigner(req.consumer, hashOpenRequest(req), consumerSig);

        token.safeTransferFrom(req.consumer, address(this), req.deposit);
        totalEscrow += req.deposit;

        Agreement storage a = _agreements[req.contractId];
        a.consumer = req.consumer;
        a.provider = req.provider;
        a.status = Status.Active;
        a.feeBps = feeBps;
        a.closeGrace = closeGrace;
        a.challengeWindow = challengeWindow;
        a.openedAt = uint64(block.timestamp);
        a.usageCap = uint128(req.usageCap); // at most uint96's maximum, checked above
        a.capWindow = req.capWindow;
        a.windowStart = uint64(block.timestamp);
        a.pricesHash = hashPrices(req.prices);
        a.period = req.period;
        a.escrow = req.deposit;
        a.periodPrice = req.periodPrice;
        a.termsHash = req.termsHash;
        a.termsCid = req.termsCid;
        emit ContractOpened(
            req.contractId,
            req.consumer,
            req.provider,
            req.termsHash,
            req.termsCid,
            req.deposit,
            req.periodPrice,
            req.period
        );
        if (reserved) {
            // Reserved plans pay each period in advance, the first one at opening.
            _holdPeriod(req.contractId, a);
            a.nextChargeAt = uint64(block.timestamp) + req.period;
        }
    }

    // ---- escrow -------------------------------------------------------------------------------

    /// @notice Adds `amount` to the escrow. The consumer calls it itself (empty signature) or a
    ///         relayer brings the consumer's TopUp signature.
    function topUp(bytes32 contractId, uint256 amount, uint256 deadline, bytes calldata consumerSig)
        external
        nonReentrant
    {
        Agreement storage a = _existing(contractId);
        if (a.status != Status.Active && a.status != Status.Suspended) revert WrongStatus(contractId, a.status);
        if (amount == 0) revert ZeroAmount();
        if (msg.sender != a.consumer) {
            if (block.timestamp > deadline) revert Expired(deadline);
            bytes32 structHash =
                keccak256(abi.encode(TOPUP_TYPEHASH, contractId, amount, _useNonce(a.consumer), deadline));
            _requireSigner(a.consumer, _hashTypedDataV4(structHash), consumerSig);
        }
        token.safeTransferFrom(a.consumer, address(this), amount);
        a.escrow += amount;
        totalEscrow += amount;
        emit ToppedUp(contractId, msg.sender, amount, a.escrow);
    }

    /// @notice Charges the next reserved period when it is due; suspends the contract instead when
    ///         the escrow cannot pay it. Anyone may call it (a keeper, the broker, the provider).
    /// @return charged true when the period was paid, false when the contract was suspended.
    function chargePeriod(bytes32 contractId) external nonReentrant returns (bool charged) {
        Agreement storage a = _existing(contractId);
        if (a.status != Status.Active) revert WrongStatus(contractId, a.status);
        if (a.periodPrice == 0) revert InvalidTerms();
        if (block.timestamp < a.nextChargeAt) revert NotDue(a.nextChargeAt);
        // The period that just ended is the provider's.
        _release(contractId, a, a.held);
        if (a.escrow < a.periodPrice) {
            _suspend(contractId, a, "escrow-exhausted");
            return false;
        }
        _holdPeriod(contractId, a);
        a.nextChargeAt += a.period;
        return true;
    }

    /// @notice Charges `amount` of usage to a contract's escrow for settlement batch `ref`; only the
    ///         settlement contract calls it, and never above the consumer's signed cap for the
    ///         running window. The amount stays locked for the contract's challenge window.
    function charge(bytes32 contractId, uint256 amount, bytes32 ref) external {
        if (msg.sender != settlement) revert NotSettlement(msg.sender);
        Agreement storage a = _existing(contractId);
        if (a.status == Status.Closed) revert WrongStatus(contractId, a.status);
        UsageCharge storage u = _usageCharges[ref][contractId];
        if (u.charged != 0) revert AlreadyCharged(contractId, ref);
        if (a.capWindow != 0 && block.timestamp >= a.windowStart + a.capWindow) {
            // Windows are aligned to the opening: skip the ones without charges.
            a.windowStart += ((uint64(block.timestamp) - a.windowStart) / a.capWindow) * a.capWindow;
            a.windowCharged = 0;
        }
        if (uint256(a.windowCharged) + amount > a.usageCap) {
            revert AboveUsageCap(contractId, a.usageCap, a.windowCharged, amount);
        }
        a.windowCharged += uint128(amount); // within the cap, so within uint96
        _take(contractId, a, amount, ref);
        // uint96 holds 7.9e28 base units; the cap above keeps real amounts far below.
        u.charged = uint96(amount);
        u.open = uint96(amount);
        u.releasableAt = uint64(block.timestamp) + a.challengeWindow;
        totalLocked += amount;
    }

    /// @notice Earns the usage charges of batch `ref` on `contractIds` whose challenge window
    ///         ended. Anyone may call it (the provider, the broker, a keeper).
    function release(bytes32 ref, bytes32[] calldata contractIds) external {
        for (uint256 i = 0; i < contractIds.length; ++i) {
            bytes32 contractId = contractIds[i];
            UsageCharge storage u = _usageCharges[ref][contractId];
            if (u.charged == 0) revert NoUsageCharge(contractId, ref);
            if (block.timestamp < u.releasableAt) revert ChallengeWindowOpen(u.releasableAt);
            uint256 amount = u.open;
            if (amount == 0) continue;
            u.open = 0;
            totalLocked -= amount;
            uint256 fee = _earn(_agreements[contractId], amount);
            emit UsageEarned(contractId, ref, amount, fee);
        }
    }

    /// @notice Gives back `amount` of batch `ref`'s locked charge on a contract, proven an
    ///         overcharge by the settlement contract within the challenge window: to the escrow, or
    ///         to the consumer once the contract closed. Returns what was refunded (at most what is
    ///         still locked).
    function refundOvercharge(bytes32 ref, bytes32 contractId, uint256 amount)
        external
        nonReentrant
        returns (uint256 refunded)
    {
        if (msg.sender != settlement) revert NotSettlement(msg.sender);
        UsageCharge storage u = _usageCharges[ref][contractId];
        if (u.charged == 0) revert NoUsageCharge(contractId, ref);
        if (block.timestamp >= u.releasableAt) revert ChallengeWindowOver(u.releasableAt);
        refunded = amount < u.open ? amount : u.open;
        if (refunded == 0) revert ZeroAmount();
        u.open -= uint96(refunded);
        totalLocked -= refunded;
        Agreement storage a = _agreements[contractId];
        a.charged -= uint128(refunded); // at most the locked charge, a uint96
        emit OverchargeRefunded(contractId, ref, refunded);
        if (a.status == Status.Closed) {
            token.safeTransfer(a.consumer, refunded);
        } else {
            a.escrow += refunded;
            totalEscrow += refunded;
        }
    }

    /// Moves `amount` out of the escrow as a charge (`Charged` carries the fee it will bear).
    function _take(bytes32 contractId, Agreement storage a, uint256 amount, bytes32 ref) private {
        if (amount == 0) revert ZeroAmount();
        if (a.escrow < amount) revert InsufficientEscrow(contractId, a.escrow, amount);
        a.escrow -= amount;
        a.charged += SafeCast.toUint128(amount);
        totalEscrow -= amount;
        emit Charged(contractId, ref, amount, (amount * a.feeBps) / 10_000, a.escrow);
    }

    /// Charges the next reserved period and holds it while it runs.
    function _holdPeriod(bytes32 contractId, Agreement storage a) private {
        _take(contractId, a, a.periodPrice, PERIOD_CHARGE);
        a.held = a.periodPrice;
        totalHeld += a.periodPrice;
    }

    /// Earns `amount` of the held period (the rest stays held).
    function _release(bytes32 contractId, Agreement storage a, uint256 amount) private {
        if (amount == 0) return;
        a.held -= amount;
        totalHeld -= amount;
        uint256 fee = _earn(a, amount);
        emit PeriodEarned(contractId, amount, fee);
    }

    /// Credits a charged `amount` to the provider, less the contract's fee; returns the fee.
    function _earn(Agreement storage a, uint256 amount) private returns (uint256 fee) {
        fee = (amount * a.feeBps) / 10_000;
        uint256 net = amount - fee;
        earnings[a.provider] += net;
        totalEarnings += net;
        feesAccrued += fee;
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    function suspend(bytes32 contractId, bytes32 reason) external onlyRole(BROKER_ROLE) {
        Agreement storage a = _existing(contractId);
        if (a.status != Status.Active) revert WrongStatus(contractId, a.status);
        _suspend(contractId, a, reason);
    }

    function _suspend(bytes32 contractId, Agreement storage a, bytes32 reason) private {
        a.status = Status.Suspended;
        a.stoppedAt = uint64(block.timestamp);
        emit Suspended(contractId, reason);
    }

    /// @notice Resumes a suspended contract. A reserved plan is not charged for the suspended time:
    ///         the paid period's end moves by as long as the contract was suspended, and a period
    ///         that fell due meanwhile starts now.
    function resume(bytes32 contractId) external onlyRole(BROKER_ROLE) {
        Agreement storage a = _existing(contractId);
        if (a.status != Status.Suspended) revert WrongStatus(contractId, a.status);
        if (a.period != 0) {
            uint64 now_ = uint64(block.timestamp);
            a.nextChargeAt = a.nextChargeAt > a.stoppedAt ? a.nextChargeAt + (now_ - a.stoppedAt) : now_;
        }
        a.status = Status.Active;
        a.stoppedAt = 0;
        emit Resumed(contractId);
    }

    /// @notice A party asks to end the contract. Usage already consumed can still be settled during
    ///         the grace period; after it anyone can finish the close, so a party never depends on
    ///         the broker to get its refund.
    function requestClose(bytes32 contractId) external {
        Agreement storage a = _existing(contractId);
        if (msg.sender != a.consumer && msg.sender != a.provider) revert NotParty(msg.sender);
        if (a.status != Status.Active && a.status != Status.Suspended) revert WrongStatus(contractId, a.status);
        if (a.status == Status.Active) a.stoppedAt = uint64(block.timestamp);
        a.status = Status.Closing;
        a.closeRequestedBy = msg.sender;
        a.closableAt = uint64(block.timestamp) + a.closeGrace;
        emit CloseRequested(contractId, msg.sender, a.closableAt);
    }

    /// @notice Closes the contract and refunds the escrow to the consumer. The broker closes at any
    ///         time once usage is settled; anyone closes a Closing contract after its grace period.
    ///         A held reserved period is earned for the time it ran; when the provider asked to
    ///         end the contract, its unused share goes back to the consumer.
    function close(bytes32 contractId) external nonReentrant {
        Agreement storage a = _existing(contractId);
        if (a.status == Status.Closed) revert WrongStatus(contractId, a.status);
        if (!hasRole(BROKER_ROLE, msg.sender)) {
            if (a.status != Status.Closing) revert WrongStatus(contractId, a.status);
            if (block.timestamp < a.closableAt) revert NotClosable(a.closableAt);
        }
        if (a.held != 0) {
            // The broker's own close is the consumer's close relayed: the chain cannot tell them
            // apart, so only the provider's request gives back the unused share.
            bool providerEnded = a.status == Status.Closing && a.closeRequestedBy == a.provider;
            uint64 stopped = a.stoppedAt != 0 ? a.stoppedAt : uint64(block.timestamp);
            uint256 unused;
            if (providerEnded && a.nextChargeAt > stopped) {
                uint256 left = a.nextChargeAt - stopped;
                unused = left >= a.period ? a.held : (a.held * left) / a.period;
            }
            _release(contractId, a, a.held - unused);
            if (unused != 0) {
                a.held = 0;
                totalHeld -= unused;
                a.charged -= uint128(unused); // part of a charged period
                a.escrow += unused;
                totalEscrow += unused;
                emit PeriodRefunded(contractId, unused);
            }
        }
        uint256 refund = a.escrow;
        a.escrow = 0;
        a.status = Status.Closed;
        totalEscrow -= refund;
        if (refund != 0) token.safeTransfer(a.consumer, refund);
        emit ContractClosed(contractId, msg.sender, refund);
    }

    // ---- payouts ------------------------------------------------------------------------------

    function withdraw(address to, uint256 amount) external nonReentrant {
        uint256 available = earnings[msg.sender];
        if (amount == 0) revert ZeroAmount();
        if (amount > available) revert InsufficientEarnings(available, amount);
        earnings[msg.sender] = available - amount;
        totalEarnings -= amount;
        token.safeTransfer(to, amount);
        emit Withdrawn(msg.sender, to, amount);
    }

    function withdrawFees(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (amount > feesAccrued) revert InsufficientEarnings(feesAccrued, amount);
        feesAccrued -= amount;
        token.safeTransfer(to, amount);
        emit FeesWithdrawn(to, amount);
    }

    // ---- administration -----------------------------------------------------------------------

    /// @notice The fee of contracts opened from now on; running contracts keep theirs.
    function setFee(uint16 feeBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_);
        feeBps = feeBps_;
        emit FeeChanged(feeBps_);
    }

    /// @notice The challenge window of contracts opened from now on; running contracts keep theirs.
    function setChallengeWindow(uint64 challengeWindow_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (challengeWindow_ > MAX_CHALLENGE_WINDOW) revert WindowTooLong(challengeWindow_);
        challengeWindow = challengeWindow_;
        emit ChallengeWindowChanged(challengeWindow_);
    }

    /// @notice The close grace of contracts opened from now on; running contracts keep theirs.
    function setCloseGrace(uint64 closeGrace_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (closeGrace_ > MAX_CLOSE_GRACE) revert GraceTooLong(closeGrace_);
        closeGrace = closeGrace_;
        emit CloseGraceChanged(closeGrace_);
    }

    /// @notice Names the settlement contract, once: a contract whose `marketplace()` is this one.
    ///         Nobody can change it afterwards, the admin included.
    function setSettlement(address settlement_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (settlement != address(0)) revert SettlementAlreadySet(settlement);
        if (settlement_.code.length == 0) revert NotASettlementContract(settlement_);
        try ISettlement(settlement_).marketplace() returns (address m) {
            if (m != address(this)) revert NotASettlementContract(settlement_);
        } catch {
            revert NotASettlementContract(settlement_);
        }
        settlement = settlement_;
        emit SettlementSet(settlement_);
    }

    /// @dev The admin administers; it never acts (no operational role, whoever holds it).
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if (role != DEFAULT_ADMIN_ROLE && account == defaultAdmin()) revert AdminHoldsNoRole(role);
        return super._grantRole(role, account);
    }

    // ---- views --------------------------------------------------------------------------------

    function agreement(bytes32 contractId) external view returns (Agreement memory) {
        return _agreements[contractId];
    }

    function usageCharge(bytes32 ref, bytes32 contractId) external view returns (UsageCharge memory) {
        return _usageCharges[ref][contractId];
    }

    /// The signed unit prices' hash of a contract (what a challenge proves prices against).
    function pricesHashOf(bytes32 contractId) external view returns (bytes32) {
        return _existing(contractId).pricesHash;
    }

    /// EIP-712 struct hash of unit prices.
    function hashPrices(UsagePrices calldata p) public pure returns (bytes32) {
        return keccak256(
            abi.encode(
                PRICES_TYPEHASH, p.cpuCoreHour, p.memoryGibHour, p.gpuHour, p.networkGb, p.dataAccess, p.gpuRecordFee
            )
        );
    }

    function hashOpenRequest(OpenRequest calldata req) public view returns (bytes32) {
        bytes memory head = abi.encode(
            OPEN_TYPEHASH,
            req.contractId,
            req.consumer,
            req.provider,
            req.termsHash,
            keccak256(bytes(req.termsCid)),
            req.deposit,
            req.periodPrice
        );
        bytes memory tail = abi.encode(req.period, hashPrices(req.prices), req.usageCap, req.capWindow, req.deadline);
        return _hashTypedDataV4(keccak256(bytes.concat(head, tail)));
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _existing(bytes32 contractId) private view returns (Agreement storage a) {
        a = _agreements[contractId];
        if (a.status == Status.None) revert UnknownContract(contractId);
    }

    function _requireSigner(address account, bytes32 digest, bytes calldata signature) private pure {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer != account) revert BadSignature();
    }
}
