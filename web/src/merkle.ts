// A settled record's Merkle sum-tree proof, checked as UsageSettlement checks it
// (contracts::merkle): leaf keccak(0x00 ‖ recordHash ‖ amount), inner keccak(0x01 ‖ l.hash ‖ l.sum ‖
// r.hash ‖ r.sum) with the sums added, contract node keccak(0x02 ‖ contractId ‖ subtree hash).
import { concatHex, keccak256, numberToHex, type Hex } from "viem";
import type { Schemas } from "./api/client";

interface Node {
  hash: Hex;
  sum: bigint;
}

const word = (n: bigint) => numberToHex(n, { size: 32 });

function climb(node: Node, path: Schemas["ProofStep"][]): Node {
  return path.reduce<Node>((n, s) => {
    const sib = { hash: s.hash as Hex, sum: BigInt(s.sum) };
    const [l, r] = s.left ? [sib, n] : [n, sib];
    return { hash: keccak256(concatHex(["0x01", l.hash, word(l.sum), r.hash, word(r.sum)])), sum: l.sum + r.sum };
  }, node);
}

/** The sum of the record's contract's leaves when the proof leads to `root`; null otherwise. */
export function checkProof(root: string, p: Schemas["UsageProof"]): bigint | null {
  const amount = BigInt(p.amount);
  const leaf = { hash: keccak256(concatHex(["0x00", p.recordHash as Hex, word(amount)])), sum: amount };
  const sub = climb(leaf, p.recordPath);
  const top = climb({ hash: keccak256(concatHex(["0x02", p.contract as Hex, sub.hash])), sum: sub.sum }, p.contractPath);
  return top.hash.toLowerCase() === root.toLowerCase() && p.root.toLowerCase() === root.toLowerCase() ? sub.sum : null;
}
