//! The Kubo RPC client against a real IPFS daemon (js-ipfs, started by the test): the node gives
//! the same CIDs as the embedded store, content comes back verified, pins hold.

use content::{unixfs, Cid, ContentError, ContentStore, EmbeddedStore, KuboStore};
use testkit::ipfs_daemon::IpfsDaemon;

fn content(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn an_ipfs_node_and_the_embedded_store_agree_on_every_cid() {
    let daemon = IpfsDaemon::start().expect("js-ipfs starts (scripts/test installs it)");
    let kubo = KuboStore::new(&daemon.api);
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path()).unwrap();
    let stores: [&dyn ContentStore; 2] = [&kubo, &embedded];
    for size in [0usize, 1, 1000, 262_144, 262_145, 3_000_000] {
        let data = content(size, size as u32 + 7);
        let mut cids = Vec::new();
        for store in stores {
            let cid = store
                .put(&data)
                .await
                .unwrap_or_else(|e| panic!("size {size}: {e}"));
            assert_eq!(
                store.get(&cid, usize::MAX).await.unwrap(),
                data,
                "size {size}"
            );
            store.pin(&cid).await.unwrap();
            cids.push(cid);
        }
        assert_eq!(cids[0], cids[1], "size {size}");
        assert_eq!(cids[0], unixfs::cid_of(&data));
    }
    // Limits, and content the node does not have.
    let cid = kubo.put(&content(100_000, 1)).await.unwrap();
    assert!(matches!(
        kubo.get(&cid, 10).await,
        Err(ContentError::TooLarge { .. })
    ));
    let absent = unixfs::cid_of(b"never added anywhere");
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), kubo.get(&absent, 10)).await;
    assert!(
        matches!(err, Err(_) | Ok(Err(_))),
        "an offline node cannot serve unknown content"
    );
    drop(daemon);
    // A node that is gone is a clear error.
    let err = kubo.put(b"x").await.unwrap_err();
    assert!(err.to_string().contains("is it running?"), "{err}");
    let _ = Cid::parse("bafkreigv6ul3zkp3aicgkughx674bxv6hu2l2urktljlgyy2sgmtqdwuwe").unwrap();
}
