// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title NEMO MOCA billing models
/// @notice The compute (ServiceProviderModel), GPU (MachineLearningModel), network
///         (NetworkUsageModel) and data (DataModel) formulas of NEMO MOCA with the seed's constants,
///         plus the registration rewards. Amounts are in credit base units (1 credit = 10^8).
///         Where the seed's listing is garbled or inconsistent this contract follows the decisions
///         in docs/billing-models.md; the Rust twin (contracts::billing) computes the same values.
/// @dev Pure calculators: settlement moves the tokens in batches (UsageSettlement), so pricing a
///      record costs no transaction.
contract BillingModels is AccessControl {
    bytes32 public constant PRICING_ROLE = keccak256("PRICING_ROLE");

    /// 1 credit in base units, the seed's fixed-point scale.
    uint256 public constant TOKEN = 1e8;
    /// Network: 5 GB free, usage in GB scaled by 10^8 (seed: MAX_FREE_NETWORK_USAGE).
    uint256 public constant MAX_FREE_NETWORK_USAGE = 500_000_000;
    /// Network: 0.1 credit per GB above the allowance (seed: CHARGE_PER_GB, divided by 10^8).
    uint256 public constant CHARGE_PER_GB = 10_000_000;
    uint256 public constant NETWORK_SCALE = 1e8;
    /// GPU: seconds in an hour times the 10^8 scale of the usage fraction (seed: SECONDS_PER_HOUR).
    uint256 public constant GPU_TIME_DIVISOR = 360_000_000_000;
    /// GPU: a usage fraction of 1.0 (a whole GPU).
    uint256 public constant FULL_GPU = 1e8;
    /// Data: flat reward per dataset, "10 tokens" in the seed.
    uint256 public constant DATASET_REWARD = 1_000_000_000;
    /// Registration: 5 credits, and 5 more when the workload has ingress enabled.
    uint256 public constant REGISTRATION_REWARD = 5 * TOKEN;
    uint256 public constant INGRESS_REWARD = 5 * TOKEN;
    /// Green energy: reward per percentage point of green share (80% -> 80,000,000 as in the seed).
    uint256 public constant GREEN_REWARD_PER_PERCENT = 1_000_000;

    struct Region {
        bool set;
        bool highDemand;
        uint256 highDemandCost;
        uint256 cpuCost;
        uint256 memoryCost;
        uint256 gpuCost;
    }

    /// Usage of one service on one cluster over one interval (ServiceProviderModel's metrics).
    struct ComputeUsage {
        uint256 cpuUsage;
        uint256 memoryUsage;
        uint256 clusterCpuUsage;
        uint256 clusterMemoryUsage;
        uint256 cpuBaseRate;
        uint256 memoryBaseRate;
        uint8 greenEnergyPercent;
    }

    mapping(bytes32 regionHash => Region) private _regions;

    event RegionSet(
        string region, bool highDemand, uint256 highDemandCost, uint256 cpuCost, uint256 memoryCost, uint256 gpuCost
    );

    error RegionNotSet(string region);
    error ZeroClusterUsage();
    error GreenShareOutOfRange(uint8 percent);
    error UsageFractionOutOfRange(uint256 fraction);

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PRICING_ROLE, admin);
    }

    function setRegion(
        string calldata name,
        bool highDemand,
        uint256 highDemandCost,
        uint256 cpuCost,
        uint256 memoryCost,
        uint256 gpuCost
    ) external onlyRole(PRICING_ROLE) {
        _regions[keccak256(bytes(name))] = Region(true, highDemand, highDemandCost, cpuCost, memoryCost, gpuCost);
        emit RegionSet(name, highDemand, highDemandCost, cpuCost, memoryCost, gpuCost);
    }

    function region(string calldata name) public view returns (Region memory r) {
        r = _regions[keccak256(bytes(name))];
        if (!r.set) revert RegionNotSet(name);
    }

    function isRegionSet(string calldata name) external view returns (bool) {
        return _regions[keccak256(bytes(name))].set;
    }

    /// @notice Reward deducted for a cluster's green-energy share; linear in the share.
    function greenEnergyReward(uint8 percent) public pure returns (uint256) {
        if (percent > 100) revert GreenShareOutOfRange(percent);
        return uint256(percent) * GREEN_REWARD_PER_PERCENT;
    }

    /// @notice ServiceProviderModel.computeCpuCredits, as in the seed (the same shape serves RAM).
    function resourceCredits(uint256 usage, uint256 clusterUsage, uint256 regionalCost, uint256 baseRate)
        public
        pure
        returns (uint256)
    {
        uint256 scaled = usage * 10 ** 3;
        if (scaled <= regionalCost) return 0;
        if (clusterUsage == 0) revert ZeroClusterUsage();
        // The seed divides before scaling: the share is truncated to per-mille.
        return (scaled / clusterUsage) * 10 ** 8 + baseRate * 10 ** 5;
    }

    /// @notice ServiceProviderModel.computeCredits: CPU + RAM, the high-demand surcharge, less the
    ///         green-energy reward, divided by 1000.
    function computeCredits(string calldata regionName, ComputeUsage calldata u) external view returns (uint256) {
        Region memory r = region(regionName);
        uint256 tokens = resourceCredits(u.cpuUsage, u.clusterCpuUsage, r.cpuCost, u.cpuBaseRate)
            + resourceCredits(u.memoryUsage, u.clusterMemoryUsage, r.memoryCost, u.memoryBaseRate);
        if (r.highDemand) tokens += r.highDemandCost;
        uint256 reward = greenEnergyReward(u.greenEnergyPercent);
        if (tokens >= reward) tokens -= reward;
        return tokens / 1000;
    }

    /// @notice MachineLearningModel.computeCredits: GPU time × fraction priced per GPU-hour, plus
    ///         the region's GPU cost. `allocatedTime` in seconds, `usageFraction` scaled by 10^8,
    ///         `gpuHourPrice` in base units (TOKEN for the seed's 1 credit per GPU-hour).
    function machineLearningCredits(
        string calldata regionName,
        uint256 allocatedTime,
        uint256 usageFraction,
        uint256 gpuHourPrice
    ) external view returns (uint256) {
        if (usageFraction > FULL_GPU) revert UsageFractionOutOfRange(usageFraction);
        Region memory r = region(regionName);
        return (allocatedTime * usageFraction * gpuHourPrice) / GPU_TIME_DIVISOR + r.gpuCost;
    }

    /// @notice NetworkUsageModel.computeCredits: `usage` (sent + received, GB × 10^8) above 5 GB.
    function networkCredits(uint256 usage) external pure returns (uint256) {
        if (usage <= MAX_FREE_NETWORK_USAGE) return 0;
        return ((usage - MAX_FREE_NETWORK_USAGE) * CHARGE_PER_GB) / NETWORK_SCALE;
    }

    /// @notice DataModel.computeCredits: the flat reward a dataset earns its provider.
    function datasetReward() external pure returns (uint256) {
        return DATASET_REWARD;
    }

    function registrationReward(bool ingressEnabled) external pure returns (uint256) {
        return ingressEnabled ? REGISTRATION_REWARD + INGRESS_REWARD : REGISTRATION_REWARD;
    }
}
