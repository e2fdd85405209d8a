// The participant's EVM account key, in the browser: created here or imported from the CLI's
// `evm-<name>` file (64 hex characters), kept in this tab's sessionStorage beside the did key and
// forgotten with it. It signs the EIP-712 messages the contracts verify (contracts::eip712): the
// account link, a configuration, a purchase's OpenContract and deposit permit, a top-up.
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { encodeFunctionData, parseAbi, type Address, type Hex, type TypedDataDomain } from "viem";
import type { Schemas } from "./api/client";

const STORAGE = "mercato.evm";

export interface EvmKey {
  secret: Hex;
  account: PrivateKeyAccount;
  address: Address;
}

function keyOf(secret: Hex): EvmKey {
  const account = privateKeyToAccount(secret);
  return { secret, account, address: account.address };
}

export function createEvmKey(): EvmKey {
  return keyOf(generatePrivateKey());
}

/** The CLI's `evm-<name>` file's text, or why it is not one. */
export function parseEvmKeyFile(text: string): { ok: true; key: EvmKey } | { ok: false; error: string } {
  const hex = text.trim().replace(/^0x/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    return { ok: false, error: "This is not an EVM account key file: it holds 64 hex characters (the CLI's evm-key.hex)." };
  try {
    return { ok: true, key: keyOf(`0x${hex.toLowerCase()}`) };
  } catch {
    return { ok: false, error: "This file's 64 hex characters are not a valid secp256k1 key." };
  }
}

/** The file the CLI reads beside the did key (`evm-<name>`): hex without 0x. */
export function evmKeyFileText(key: EvmKey): string {
  return key.secret.slice(2);
}

export function storedEvmKey(): EvmKey | null {
  const text = sessionStorage.getItem(STORAGE);
  if (!text) return null;
  const parsed = parseEvmKeyFile(text);
  return parsed.ok ? parsed.key : null;
}

export function keepEvmKey(key: EvmKey) {
  sessionStorage.setItem(STORAGE, evmKeyFileText(key));
}

export function forgetEvmKey() {
  sessionStorage.removeItem(STORAGE);
}

const domain = (name: string, chainId: number, verifyingContract: string): TypedDataDomain => ({
  name,
  version: "1",
  chainId,
  verifyingContract: verifyingContract as Address,
});

const USAGE_PRICES = [
  { name: "cpuCoreHour", type: "uint256" },
  { name: "memoryGibHour", type: "uint256" },
  { name: "gpuHour", type: "uint256" },
  { name: "networkGb", type: "uint256" },
  { name: "dataAccess", type: "uint256" },
  { name: "gpuRecordFee", type: "uint256" },
] as const;

const PERMIT = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

type Ledger = Schemas["LedgerStatus"];

/** The account's consent to be linked to `did` with `role` (ParticipantRegistry). */
export function signLink(key: EvmKey, ledger: Ledger, did: string, role: number, nonce: string, deadline: number) {
  return key.account.signTypedData({
    domain: domain("Mercato ParticipantRegistry", ledger.chainId, ledger.contracts.participantRegistry),
    types: {
      Link: [
        { name: "did", type: "string" },
        { name: "account", type: "address" },
        { name: "role", type: "uint8" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "Link",
    message: { did, account: key.address, role, nonce: BigInt(nonce), deadline: BigInt(deadline) },
  });
}

/** A provider's consent to record `cid` as its configuration. */
export function signSetConfig(key: EvmKey, ledger: Ledger, cid: string, nonce: string, deadline: number) {
  return key.account.signTypedData({
    domain: domain("Mercato ParticipantRegistry", ledger.chainId, ledger.contracts.participantRegistry),
    types: {
      SetConfig: [
        { name: "account", type: "address" },
        { name: "cid", type: "string" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "SetConfig",
    message: { account: key.address, cid, nonce: BigInt(nonce), deadline: BigInt(deadline) },
  });
}

function permit(key: EvmKey, chainId: number, token: string, spender: string, value: string, nonce: string, deadline: number) {
  return key.account.signTypedData({
    domain: domain("Mercato Credit", chainId, token),
    types: PERMIT,
    primaryType: "Permit",
    message: {
      owner: key.address,
      spender: spender as Address,
      value: BigInt(value),
      nonce: BigInt(nonce),
      deadline: BigInt(deadline),
    },
  });
}

/** The purchase's two authorisations, over the terms exactly as given: (open, permit). */
export async function signPurchase(key: EvmKey, t: Schemas["PurchaseTerms"]): Promise<[Hex, Hex]> {
  const p = t.prices;
  const open = await key.account.signTypedData({
    domain: domain("Mercato Marketplace", t.chainId, t.marketplace),
    types: {
      UsagePrices: USAGE_PRICES,
      OpenContract: [
        { name: "contractId", type: "bytes32" },
        { name: "consumer", type: "address" },
        { name: "provider", type: "address" },
        { name: "termsHash", type: "bytes32" },
        { name: "termsCid", type: "string" },
        { name: "deposit", type: "uint256" },
        { name: "periodPrice", type: "uint256" },
        { name: "period", type: "uint64" },
        { name: "prices", type: "UsagePrices" },
        { name: "usageCap", type: "uint256" },
        { name: "capWindow", type: "uint64" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "OpenContract",
    message: {
      contractId: t.contractId as Hex,
      consumer: t.consumer as Address,
      provider: t.provider as Address,
      termsHash: t.termsHash as Hex,
      termsCid: t.termsCid,
      deposit: BigInt(t.deposit),
      periodPrice: BigInt(t.periodPrice),
      period: BigInt(t.period),
      prices: {
        cpuCoreHour: BigInt(p.cpuCoreHour),
        memoryGibHour: BigInt(p.memoryGibHour),
        gpuHour: BigInt(p.gpuHour),
        networkGb: BigInt(p.networkGb),
        dataAccess: BigInt(p.dataAccess),
        gpuRecordFee: BigInt(p.gpuRecordFee),
      },
      usageCap: BigInt(t.usageCap),
      capWindow: BigInt(t.capWindow),
      deadline: BigInt(t.deadline),
    },
  });
  const deposit = await permit(key, t.chainId, t.token, t.marketplace, t.deposit, t.permitNonce, t.deadline);
  return [open, deposit];
}

/** A top-up's two authorisations: TopUp(contractId, amount, nonce, deadline) and its permit. */
export async function signTopUp(
  key: EvmKey,
  ledger: Ledger,
  contractId: string,
  amount: string,
  escrow: Schemas["EscrowView"],
  deadline: number,
): Promise<[Hex, Hex]> {
  const topUp = await key.account.signTypedData({
    domain: domain("Mercato Marketplace", ledger.chainId, ledger.contracts.marketplace),
    types: {
      TopUp: [
        { name: "contractId", type: "bytes32" },
        { name: "amount", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "TopUp",
    message: {
      contractId: contractId as Hex,
      amount: BigInt(amount),
      nonce: BigInt(escrow.topUpNonce),
      deadline: BigInt(deadline),
    },
  });
  const p = await permit(
    key,
    ledger.chainId,
    ledger.contracts.creditToken,
    ledger.contracts.marketplace,
    amount,
    escrow.permitNonce,
    deadline,
  );
  return [topUp, p];
}

/** The most a transaction of the account's own may cost in gas, in wei: above it, nothing is signed. */
const MAX_GAS_COST = 10n ** 16n;

/** Withdraw(to, amount): the provider's earnings to its own account. */
export function withdrawCall(to: Address, amount: string): Hex {
  return encodeFunctionData({
    abi: parseAbi(["function withdraw(address to, uint256 amount)"]),
    functionName: "withdraw",
    args: [to, BigInt(amount)],
  });
}

/**
 * Signs a call of the account's own with the terms the broker named (nonce, gas, fees), after
 * checking them: the account, this chain, a bounded gas cost. The broker relays the bytes as they
 * are; it cannot change the call without voiding the signature.
 */
export async function signOwnCall(key: EvmKey, ledger: Ledger, t: Schemas["TxTerms"], to: Address, data: Hex): Promise<Hex> {
  if (t.from.toLowerCase() !== key.address.toLowerCase())
    throw new Error(`the broker named account ${t.from}, not yours (${key.address}); nothing was signed`);
  if (t.chainId !== ledger.chainId) throw new Error(`the broker named chain ${t.chainId}, not ${ledger.chainId}; nothing was signed`);
  const perGas = BigInt(t.fees.kind === "eip1559" ? t.fees.maxFeePerGas : t.fees.gasPrice);
  if (BigInt(t.gas) * perGas > MAX_GAS_COST)
    throw new Error("the broker asks for a gas cost above 0.01 of the chain's currency; nothing was signed");
  const common = { chainId: t.chainId, nonce: t.nonce, gas: BigInt(t.gas), to, data, value: 0n };
  return t.fees.kind === "eip1559"
    ? key.account.signTransaction({
        ...common,
        type: "eip1559",
        maxFeePerGas: BigInt(t.fees.maxFeePerGas),
        maxPriorityFeePerGas: BigInt(t.fees.maxPriorityFeePerGas),
      })
    : key.account.signTransaction({ ...common, type: "legacy", gasPrice: BigInt(t.fees.gasPrice) });
}
