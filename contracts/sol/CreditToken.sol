// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Mercato credit token
/// @notice ERC-20 credit with EIP-2612 permit. 8 decimals, so that 1 credit = 10^8 base units,
///         the fixed-point scale the NEMO MOCA billing constants are written in.
/// @dev Only MINTER_ROLE mints. The faucet exists for development chains only: it is off (amount 0)
///      until an admin turns it on, and a production deployment never does.
contract CreditToken is ERC20, ERC20Burnable, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Base units handed out by one faucet drip; 0 disables the faucet.
    uint256 public faucetAmount;
    /// @notice Seconds an account waits between two drips.
    uint64 public faucetCooldown;
    mapping(address account => uint64) public lastDrip;

    event FaucetConfigured(uint256 amount, uint64 cooldown);
    event FaucetDrip(address indexed account, uint256 amount);

    error FaucetDisabled();
    error FaucetCoolingDown(uint64 availableAt);

    constructor(address admin) ERC20("Mercato Credit", "MCR") ERC20Permit("Mercato Credit") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    function decimals() public pure override returns (uint8) {
        return 8;
    }

    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    function configureFaucet(uint256 amount, uint64 cooldown) external onlyRole(DEFAULT_ADMIN_ROLE) {
        faucetAmount = amount;
        faucetCooldown = cooldown;
        emit FaucetConfigured(amount, cooldown);
    }

    /// @notice Mints `faucetAmount` to the caller, at most once per cooldown.
    function drip() external {
        uint256 amount = faucetAmount;
        if (amount == 0) revert FaucetDisabled();
        uint64 last = lastDrip[msg.sender];
        if (last != 0 && block.timestamp < uint256(last) + faucetCooldown) {
            revert FaucetCoolingDown(last + faucetCooldown);
        }
        lastDrip[msg.sender] = uint64(block.timestamp);
        _mint(msg.sender, amount);
        emit FaucetDrip(msg.sender, amount);
    }
}
