//! The embedded block store: one file per block under a directory; reads walk the DAG and verify
//! every block against its CID.

use std::path::{Path, PathBuf};

use crate::cid::{Cid, DAG_PB, RAW};
use crate::unixfs;
use crate::{BoxFuture, ContentError, ContentStore};

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    dir: PathBuf,
}

impl EmbeddedStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| ContentError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContentError + '_ {
        move |source| ContentError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Stores `content`; returns the CID Kubo would give it.
    pub async fn put(&self, content: &[u8]) -> Result<Cid, ContentError> {
        let (root, blocks) = unixfs::build(content);
        for block in blocks {
            let path = self.path(&block.cid);
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            // Write then rename: a block file is complete or absent. The temporary name is this
            // write's own, so concurrent puts of one block never take each other's file.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
            tokio::fs::write(&tmp, &block.bytes)
                .await
                .map_err(Self::io(&tmp))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(Self::io(&path))?;
        }
        Ok(root)
    }

    async fn block(&self, cid: &Cid) -> Result<Vec<u8>, ContentError> {
        let path = self.path(cid);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContentError::NotFound(*cid))
            }
            Err(source) => return Err(ContentError::Io { path, source }),
        };
        if !cid.verifies(&bytes) {
            return Err(ContentError::Corrupt(*cid));
        }
        Ok(bytes)
    }

    /// Reads the content `cid` names, verifying every block; at most `limit` bytes.
    pub async fn get(&self, cid: &Cid, limit: usize) -> Result<Vec<u8>, ContentError> {
        let mut out = Vec::new();
        let mut stack = vec![*cid];
        while let Some(c) = stack.pop() {
            let block = self.block(&c).await?;
            match c.codec {
                RAW => {
                    if out.len() + block.len() > limit {
                        return Err(ContentError::TooLarge { limit });
                    }
                    out.extend_from_slice(&block);
                }
                DAG_PB => {
                    let mut children = unixfs::links(&block)?;
                    children.reverse();
                    stack.extend(children);
                }
                _ => return Err(ContentError::Corrupt(c)),
            }
        }
        Ok(out)
    }

    pub async fn contains(&self, cid: &Cid) -> bool {
        tokio::fs::try_exists(self.path(cid)).await.unwrap_or(false)
    }
}

impl ContentStore for EmbeddedStore {
    fn put<'a>(&'a self, content: &'a [u8]) -> BoxFuture<'a, Result<Cid, ContentError>> {
        Box::pin(EmbeddedStore::put(self, content))
    }

    fn get<'a>(
        &'a self,
        cid: &'a Cid,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, ContentError>> {
        Box::pin(EmbeddedStore::get(self, cid, limit))
    }

    fn pin<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, Result<(), ContentError>> {
        // Nothing is ever collected here: pinning is checking the content is present.
        Box::pin(async move {
            if self.contains(cid).await {
                Ok(())
            } else {
                Err(ContentError::NotFound(*cid))
            }
        })
    }
}
