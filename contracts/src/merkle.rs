//! The Merkle sum tree of a settlement batch, built the way `UsageSettlement` verifies it: each
//! node carries a hash and a sum, and a parent's hash commits to both children's hashes and sums,
//! so a path from any leaf yields the true sum of the leaves under its contract.
//!
//! - record leaf: `(keccak256(0x00 ‖ recordHash ‖ amount), amount)`
//! - inner node: `(keccak256(0x01 ‖ l.hash ‖ l.sum ‖ r.hash ‖ r.sum), l.sum + r.sum)`
//! - contract node: `(keccak256(0x02 ‖ contractId ‖ subtree.hash), subtree.sum)`
//!
//! Each contract's records form a subtree; the contract nodes form the batch tree. An odd node
//! moves up unchanged (no step in the path).

use alloy::primitives::{keccak256, B256, U256};

/// A node: its hash and the sum of the amounts under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub hash: B256,
    pub sum: U256,
}

/// A sibling on a path, and whether it sits left of the path's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub hash: B256,
    pub sum: U256,
    pub left: bool,
}

/// A step as the settlement contract takes it.
impl From<&Step> for crate::bindings::UsageSettlement::Step {
    fn from(s: &Step) -> Self {
        Self {
            hash: s.hash,
            sum: s.sum,
            left: s.left,
        }
    }
}

pub fn leaf(record_hash: B256, amount: U256) -> Node {
    let mut buf = [0u8; 65];
    buf[1..33].copy_from_slice(record_hash.as_slice());
    buf[33..].copy_from_slice(&amount.to_be_bytes::<32>());
    Node {
        hash: keccak256(buf),
        sum: amount,
    }
}

fn inner(l: Node, r: Node) -> Result<Node, MerkleError> {
    let mut buf = [0u8; 129];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(l.hash.as_slice());
    buf[33..65].copy_from_slice(&l.sum.to_be_bytes::<32>());
    buf[65..97].copy_from_slice(r.hash.as_slice());
    buf[97..].copy_from_slice(&r.sum.to_be_bytes::<32>());
    Ok(Node {
        hash: keccak256(buf),
        sum: l.sum.checked_add(r.sum).ok_or(MerkleError::Overflow)?,
    })
}

pub fn contract_node(contract: B256, subtree: Node) -> Node {
    let mut buf = [0u8; 65];
    buf[0] = 0x02;
    buf[1..33].copy_from_slice(contract.as_slice());
    buf[33..].copy_from_slice(subtree.hash.as_slice());
    Node {
        hash: keccak256(buf),
        sum: subtree.sum,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    #[error("index {index} is outside a tree of {len}")]
    OutOfRange { index: usize, len: usize },
    #[error("the amounts overflow 256 bits")]
    Overflow,
}

/// A sum tree over nodes, in order.
#[derive(Debug, Clone)]
pub struct SumTree {
    /// levels[0] are the leaves, the last level holds the root alone.
    levels: Vec<Vec<Node>>,
}

impl SumTree {
    pub fn new(leaves: Vec<Node>) -> Result<Self, MerkleError> {
        if leaves.is_empty() {
            return Err(MerkleError::Empty);
        }
        let mut levels = vec![leaves];
        while levels.last().map_or(0, Vec::len) > 1 {
            let prev = levels.last().expect("non-empty");
            let next = prev
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => inner(*a, *b),
                    [a] => Ok(*a),
                    _ => unreachable!("chunks(2)"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            levels.push(next);
        }
        Ok(Self { levels })
    }

    pub fn root(&self) -> Node {
        self.levels.last().expect("at least one level")[0]
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The siblings from leaf `index` up to the root.
    pub fn path(&self, index: usize) -> Result<Vec<Step>, MerkleError> {
        let len = self.len();
        if index >= len {
            return Err(MerkleError::OutOfRange { index, len });
        }
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if let Some(n) = level.get(sibling) {
                path.push(Step {
                    hash: n.hash,
                    sum: n.sum,
                    left: sibling < i,
                });
            }
            i /= 2;
        }
        Ok(path)
    }
}

/// Walks a path up from `node`, as `UsageSettlement.climb` does.
pub fn climb(node: Node, path: &[Step]) -> Option<Node> {
    path.iter().try_fold(node, |n, s| {
        let sib = Node {
            hash: s.hash,
            sum: s.sum,
        };
        if s.left {
            inner(sib, n).ok()
        } else {
            inner(n, sib).ok()
        }
    })
}

/// A record's place in a batch: its paths, and the sum of its contract's leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordProof {
    pub record_path: Vec<Step>,
    pub contract_path: Vec<Step>,
    pub contract_sum: U256,
}

/// A batch: one subtree per contract (records in the given order), and the tree over them.
#[derive(Debug, Clone)]
pub struct BatchTree {
    contracts: Vec<(B256, SumTree)>,
    top: SumTree,
}

impl BatchTree {
    /// `groups`: each contract with its records' (hash, amount), in leaf order.
    pub fn new(groups: &[(B256, Vec<(B256, U256)>)]) -> Result<Self, MerkleError> {
        let contracts = groups
            .iter()
            .map(|(c, records)| {
                let leaves = records.iter().map(|(h, a)| leaf(*h, *a)).collect();
                Ok((*c, SumTree::new(leaves)?))
            })
            .collect::<Result<Vec<_>, MerkleError>>()?;
        let top = SumTree::new(
            contracts
                .iter()
                .map(|(c, t)| contract_node(*c, t.root()))
                .collect(),
        )?;
        Ok(Self { contracts, top })
    }

    pub fn root(&self) -> B256 {
        self.top.root().hash
    }

    /// Record `record` of the `contract`-th contract.
    pub fn proof(&self, contract: usize, record: usize) -> Result<RecordProof, MerkleError> {
        let (_, sub) = self
            .contracts
            .get(contract)
            .ok_or(MerkleError::OutOfRange {
                index: contract,
                len: self.contracts.len(),
            })?;
        Ok(RecordProof {
            record_path: sub.path(record)?,
            contract_path: self.top.path(contract)?,
            contract_sum: sub.root().sum,
        })
    }
}

/// Checks a record's paths the way the contract does; returns its contract's sum when they lead
/// to `root`.
pub fn verify(
    root: B256,
    contract: B256,
    record_hash: B256,
    amount: U256,
    record_path: &[Step],
    contract_path: &[Step],
) -> Option<U256> {
    let sub = climb(leaf(record_hash, amount), record_path)?;
    let top = climb(contract_node(contract, sub), contract_path)?;
    (top.hash == root).then_some(sub.sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(sizes: &[usize]) -> Vec<(B256, Vec<(B256, U256)>)> {
        sizes
            .iter()
            .enumerate()
            .map(|(c, n)| {
                let records = (0..*n)
                    .map(|i| {
                        (
                            keccak256(format!("record-{c}-{i}")),
                            U256::from(i as u64 * 10 + 1),
                        )
                    })
                    .collect();
                (B256::repeat_byte(c as u8 + 1), records)
            })
            .collect()
    }

    #[test]
    fn every_record_proves_its_contracts_sum_for_many_shapes() {
        for shape in [
            &[1][..],
            &[2],
            &[3, 1],
            &[5, 8, 1],
            &[1, 1, 1, 1, 1],
            &[17, 4, 9],
        ] {
            let g = groups(shape);
            let tree = BatchTree::new(&g).unwrap();
            for (ci, (c, records)) in g.iter().enumerate() {
                let want: U256 = records.iter().map(|(_, a)| *a).sum();
                for (ri, (h, a)) in records.iter().enumerate() {
                    let p = tree.proof(ci, ri).unwrap();
                    assert_eq!(p.contract_sum, want);
                    let got = verify(tree.root(), *c, *h, *a, &p.record_path, &p.contract_path);
                    assert_eq!(got, Some(want), "shape {shape:?} contract {ci} record {ri}");
                }
            }
        }
    }

    #[test]
    fn a_foreign_record_another_contract_or_a_changed_amount_fails() {
        let g = groups(&[4, 3]);
        let tree = BatchTree::new(&g).unwrap();
        let (c0, r0) = (&g[0].0, &g[0].1);
        let p = tree.proof(0, 2).unwrap();
        let (h, a) = r0[2];
        let check = |c: B256, h: B256, a: U256, p: &RecordProof| {
            verify(tree.root(), c, h, a, &p.record_path, &p.contract_path)
        };
        assert!(check(*c0, h, a, &p).is_some());
        assert!(check(*c0, keccak256("forged"), a, &p).is_none());
        assert!(check(*c0, h, a + U256::from(1), &p).is_none());
        assert!(check(g[1].0, h, a, &p).is_none());
        let mut tampered = p.clone();
        tampered.record_path[0].sum += U256::from(1);
        assert!(check(*c0, h, a, &tampered).is_none());
    }

    #[test]
    fn empty_and_out_of_range_are_errors() {
        assert_eq!(SumTree::new(vec![]).unwrap_err(), MerkleError::Empty);
        assert_eq!(
            BatchTree::new(&[(B256::ZERO, vec![])]).unwrap_err(),
            MerkleError::Empty
        );
        let tree = BatchTree::new(&groups(&[2])).unwrap();
        assert_eq!(
            tree.proof(0, 2).unwrap_err(),
            MerkleError::OutOfRange { index: 2, len: 2 }
        );
        assert_eq!(
            tree.proof(1, 0).unwrap_err(),
            MerkleError::OutOfRange { index: 1, len: 1 }
        );
    }
}
