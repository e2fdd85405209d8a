//! The embedded block store: one file per block under a directory; reads walk the DAG and verify
//! every block against its CID.

use std::path::{Path, PathBuf};

use crate::cid::{Cid, CidError, DAG_PB, RAW};
use crate::unixfs::{self, NodeError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("content store I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no content {0} in the store")]
    NotFound(Cid),
    #[error("block {0} does not match its CID: the store is corrupt")]
    Corrupt(Cid),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Cid(#[from] CidError),
    #[error("content over the {limit}-byte limit")]
    TooLarge { limit: usize },
}

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    dir: PathBuf,
}

impl EmbeddedStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Stores `content`; returns the CID Kubo would give it.
    pub async fn put(&self, content: &[u8]) -> Result<Cid, StoreError> {
        let (root, blocks) = unixfs::build(content);
        for block in blocks {
            let path = self.path(&block.cid);
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            // Write then rename: a block file is complete or absent.
            let tmp = path.with_extension("tmp");
            tokio::fs::write(&tmp, &block.bytes)
                .await
                .map_err(Self::io(&tmp))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(Self::io(&path))?;
        }
        Ok(root)
    }

    async fn block(&self, cid: &Cid) -> Result<Vec<u8>, StoreError> {
        let path = self.path(cid);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(*cid))
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        if !cid.verifies(&bytes) {
            return Err(StoreError::Corrupt(*cid));
        }
        Ok(bytes)
    }

    /// Reads the content `cid` names, verifying every block; at most `limit` bytes.
    pub async fn get(&self, cid: &Cid, limit: usize) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![*cid];
        while let Some(c) = stack.pop() {
            let block = self.block(&c).await?;
            match c.codec {
                RAW => {
                    if out.len() + block.len() > limit {
                        return Err(StoreError::TooLarge { limit });
                    }
                    out.extend_from_slice(&block);
                }
                DAG_PB => {
                    let mut children = unixfs::links(&block)?;
                    children.reverse();
                    stack.extend(children);
                }
                _ => return Err(StoreError::Corrupt(c)),
            }
        }
        Ok(out)
    }

    pub async fn contains(&self, cid: &Cid) -> bool {
        tokio::fs::try_exists(self.path(cid)).await.unwrap_or(false)
    }
}
