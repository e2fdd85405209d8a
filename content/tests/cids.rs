//! CIDs identical to Kubo's `ipfs add --cid-version=1`, pinned with reference CIDs computed by an
//! independent implementation: the JavaScript UnixFS importer that js-ipfs and Helia use
//! (ipfs-unixfs-importer, raw leaves, 256 KiB fixed chunks, balanced layout with 174 links),
//! see scripts/reference-cids.mjs. The inputs are a deterministic byte stream both sides generate.

use content::unixfs;
use content::{Cid, EmbeddedStore};

fn content(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// (size, CID) from scripts/reference-cids.mjs; the seed of each input is size + 7.
const REFERENCE: &[(usize, &str)] = &[
    (
        0,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ),
    (
        1,
        "bafkreibybemlsrvfezsauqg7lxhnmulhstz5s655tzv3ku6qg7cehhzrym",
    ),
    (
        1000,
        "bafkreif25wnxpskn42t737scyogt3j7qba2tdazq73cn27nyi2yutwzzde",
    ),
    (
        262_144,
        "bafkreiehmdmvop27vyavvmvkdoconujqpxcgogjzluigv3i7re5eea5rcq",
    ),
    (
        262_145,
        "bafybeide3zdpkaaziisc5fow72ltxpmwpqeg2guqcmjmh3pvfi7u6xab2a",
    ),
    (
        1_048_576,
        "bafybeiefeknlyxrblweatgvkuviqqh5cjy7brpdabfdae3wvwalmyy47ca",
    ),
    (
        3_000_000,
        "bafybeih5cvdgjhvcwij77chzwgwj2rpafqdvystjcplnsgddgg4bzwrvtu",
    ),
    (
        45_613_056,
        "bafybeiayflunxsro4fngpgsq6zitqc5n62b2sztifz5rwhwsbvol4sbcza",
    ),
    (
        45_613_057,
        "bafybeicrhcdk4c3c7xnwjgab36dzyluobva5itbgbttjnrmrys7esmcepi",
    ),
];

#[test]
fn cids_match_the_reference_implementation_from_one_byte_to_two_dag_levels() {
    for (size, expected) in REFERENCE {
        let data = content(*size, *size as u32 + 7);
        assert_eq!(unixfs::cid_of(&data).to_string(), *expected, "size {size}");
    }
}

#[tokio::test]
async fn the_embedded_store_gives_back_exactly_what_it_was_given_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    for (size, expected) in &REFERENCE[..7] {
        let data = content(*size, *size as u32 + 7);
        let cid = store.put(&data).await.unwrap();
        assert_eq!(cid.to_string(), *expected);
        assert_eq!(store.get(&cid, usize::MAX).await.unwrap(), data);
        // Idempotent.
        assert_eq!(store.put(&data).await.unwrap(), cid);
    }
    // A tampered block is detected when read.
    let data = content(3_000_000, 3_000_007);
    let cid = store.put(&data).await.unwrap();
    let (_, blocks) = unixfs::build(&data);
    let leaf = dir.path().join(blocks[3].cid.to_string());
    let mut bytes = std::fs::read(&leaf).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&leaf, bytes).unwrap();
    let err = store.get(&cid, usize::MAX).await.unwrap_err();
    assert!(err.to_string().contains("does not match its CID"), "{err}");
    // Unknown content and size limits.
    let unknown =
        Cid::parse("bafkreibybemlsrvfezsauqg7lxhnmulhstz5s655tzv3ku6qg7cehhzrym").unwrap();
    let other = tempfile::tempdir().unwrap();
    let empty = EmbeddedStore::open(other.path()).unwrap();
    assert!(empty
        .get(&unknown, 10)
        .await
        .unwrap_err()
        .to_string()
        .contains("no content"));
    let big = store.put(&content(1_048_576, 1_048_583)).await.unwrap();
    assert!(store
        .get(&big, 1000)
        .await
        .unwrap_err()
        .to_string()
        .contains("limit"));
}
