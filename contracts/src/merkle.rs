//! Merkle trees over usage records, built the way OpenZeppelin's `MerkleProof` verifies them:
//! leaves are `keccak256(recordHash)` (hashed twice over the record, against second-preimage
//! forgery) and each pair is hashed in sorted order, so a proof is just the list of siblings.

use alloy::primitives::{keccak256, B256};

/// The leaf the settlement contract derives from a record hash.
pub fn leaf(record_hash: B256) -> B256 {
    keccak256(record_hash)
}

fn hash_pair(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

/// A tree over a batch's record hashes, in the batch's order.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// levels[0] are the leaves, the last level holds the root alone.
    levels: Vec<Vec<B256>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one record")]
    Empty,
    #[error("record index {index} is outside a batch of {len}")]
    OutOfRange { index: usize, len: usize },
}

impl MerkleTree {
    pub fn from_record_hashes(record_hashes: &[B256]) -> Result<Self, MerkleError> {
        if record_hashes.is_empty() {
            return Err(MerkleError::Empty);
        }
        let mut levels = vec![record_hashes.iter().copied().map(leaf).collect::<Vec<_>>()];
        while levels.last().map_or(0, Vec::len) > 1 {
            let prev = levels.last().expect("non-empty");
            // An odd node out is carried up unchanged.
            let next = prev
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => hash_pair(*a, *b),
                    [a] => *a,
                    _ => unreachable!("chunks(2)"),
                })
                .collect();
            levels.push(next);
        }
        Ok(Self { levels })
    }

    pub fn root(&self) -> B256 {
        self.levels.last().expect("at least one level")[0]
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The siblings from the record's leaf up to the root.
    pub fn proof(&self, index: usize) -> Result<Vec<B256>, MerkleError> {
        let len = self.len();
        if index >= len {
            return Err(MerkleError::OutOfRange { index, len });
        }
        let mut proof = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = i ^ 1;
            if sibling < level.len() {
                proof.push(level[sibling]);
            }
            i /= 2;
        }
        Ok(proof)
    }
}

/// Checks a proof the way the contract does.
pub fn verify(root: B256, record_hash: B256, proof: &[B256]) -> bool {
    proof
        .iter()
        .fold(leaf(record_hash), |acc, s| hash_pair(acc, *s))
        == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: usize) -> Vec<B256> {
        (0..n).map(|i| keccak256(format!("record-{i}"))).collect()
    }

    #[test]
    fn every_record_proves_against_the_root_for_many_sizes() {
        for n in 1..=33 {
            let h = hashes(n);
            let tree = MerkleTree::from_record_hashes(&h).unwrap();
            for (i, rh) in h.iter().enumerate() {
                let proof = tree.proof(i).unwrap();
                assert!(verify(tree.root(), *rh, &proof), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn a_foreign_record_or_a_tampered_proof_fails() {
        let h = hashes(10);
        let tree = MerkleTree::from_record_hashes(&h).unwrap();
        let mut proof = tree.proof(3).unwrap();
        assert!(!verify(tree.root(), keccak256("not in the batch"), &proof));
        proof[0] = keccak256("tampered");
        assert!(!verify(tree.root(), h[3], &proof));
    }

    #[test]
    fn single_record_tree_root_is_its_leaf() {
        let h = hashes(1);
        let tree = MerkleTree::from_record_hashes(&h).unwrap();
        assert_eq!(tree.root(), leaf(h[0]));
        assert!(tree.proof(0).unwrap().is_empty());
    }

    #[test]
    fn empty_and_out_of_range_are_errors() {
        assert_eq!(
            MerkleTree::from_record_hashes(&[]).unwrap_err(),
            MerkleError::Empty
        );
        let tree = MerkleTree::from_record_hashes(&hashes(2)).unwrap();
        assert_eq!(
            tree.proof(2).unwrap_err(),
            MerkleError::OutOfRange { index: 2, len: 2 }
        );
    }
}
