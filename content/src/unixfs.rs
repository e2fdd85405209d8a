//! Files as UnixFS DAGs exactly as Kubo builds them for `ipfs add --cid-version=1`: 256 KiB fixed
//! chunks as raw leaves, a balanced tree of dag-pb nodes with at most 174 links each, and a file
//! of one chunk reduced to its raw leaf.

use crate::cid::{get_varint, put_varint, Cid, DAG_PB, RAW};

pub const CHUNK_SIZE: usize = 256 * 1024;
pub const MAX_LINKS: usize = 174;

/// A block of the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cid: Cid,
    pub bytes: Vec<u8>,
}

/// A node under construction: its CID, the file bytes below it, and the whole DAG's size below it.
struct Built {
    cid: Cid,
    file_size: u64,
    dag_size: u64,
}

fn put_field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A dag-pb file node over `children` (links first, then the UnixFS data, as dag-pb requires).
fn file_node(children: &[Built]) -> (Vec<u8>, u64) {
    let mut node = Vec::new();
    for c in children {
        let mut link = Vec::new();
        put_field_bytes(&mut link, 1, &c.cid.to_bytes());
        put_field_bytes(&mut link, 2, b"");
        put_field_varint(&mut link, 3, c.dag_size);
        put_field_bytes(&mut node, 2, &link);
    }
    let file_size: u64 = children.iter().map(|c| c.file_size).sum();
    let mut data = Vec::new();
    put_field_varint(&mut data, 1, 2); // Type = File
    put_field_varint(&mut data, 3, file_size);
    for c in children {
        put_field_varint(&mut data, 4, c.file_size);
    }
    put_field_bytes(&mut node, 1, &data);
    (node, file_size)
}

/// Builds the DAG of `content`; the root's CID is the file's CID. Blocks come leaves first.
pub fn build(content: &[u8]) -> (Cid, Vec<Block>) {
    let mut blocks = Vec::new();
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![content]
    } else {
        content.chunks(CHUNK_SIZE).collect()
    };
    let mut level: Vec<Built> = chunks
        .iter()
        .map(|chunk| {
            let cid = Cid::of(RAW, chunk);
            blocks.push(Block {
                cid,
                bytes: chunk.to_vec(),
            });
            Built {
                cid,
                file_size: chunk.len() as u64,
                dag_size: chunk.len() as u64,
            }
        })
        .collect();
    if level.len() == 1 {
        return (level[0].cid, blocks);
    }
    while level.len() > 1 {
        level = level
            .chunks(MAX_LINKS)
            .map(|children| {
                let (node, file_size) = file_node(children);
                let dag_size = node.len() as u64 + children.iter().map(|c| c.dag_size).sum::<u64>();
                let cid = Cid::of(DAG_PB, &node);
                blocks.push(Block { cid, bytes: node });
                Built {
                    cid,
                    file_size,
                    dag_size,
                }
            })
            .collect();
    }
    (level[0].cid, blocks)
}

/// The CID `ipfs add --cid-version=1` gives `content`.
pub fn cid_of(content: &[u8]) -> Cid {
    build(content).0
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed dag-pb node: {0}")]
pub struct NodeError(pub &'static str);

/// The child CIDs of a dag-pb node, in order.
pub fn links(node: &[u8]) -> Result<Vec<Cid>, NodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < node.len() {
        let (key, n) = get_varint(&node[at..]).ok_or(NodeError("key"))?;
        at += n;
        if key & 7 != 2 {
            return Err(NodeError("wire type"));
        }
        let (len, n) = get_varint(&node[at..]).ok_or(NodeError("length"))?;
        at += n;
        let field = node
            .get(at..at + len as usize)
            .ok_or(NodeError("truncated"))?;
        at += len as usize;
        if key >> 3 == 2 {
            // PBLink: field 1 is the hash.
            let mut p = 0;
            while p < field.len() {
                let (k, n) = get_varint(&field[p..]).ok_or(NodeError("link key"))?;
                p += n;
                match k & 7 {
                    0 => {
                        let (_, n) = get_varint(&field[p..]).ok_or(NodeError("link varint"))?;
                        p += n;
                    }
                    2 => {
                        let (l, n) = get_varint(&field[p..]).ok_or(NodeError("link length"))?;
                        p += n;
                        let value = field
                            .get(p..p + l as usize)
                            .ok_or(NodeError("link truncated"))?;
                        p += l as usize;
                        if k >> 3 == 1 {
                            out.push(Cid::from_bytes(value).map_err(|_| NodeError("link cid"))?);
                        }
                    }
                    _ => return Err(NodeError("link wire type")),
                }
            }
        }
    }
    Ok(out)
}
