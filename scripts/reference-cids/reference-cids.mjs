// Reference CIDs for content/tests/cids.rs, computed by the JavaScript UnixFS importer with the
// settings of `ipfs add --cid-version=1` (raw leaves, 256 KiB fixed chunks, balanced, 174 links).
// Inputs: a 32-bit LCG byte stream seeded with size + 7, as the Rust test generates it.
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'

function content(n, seed) {
  const b = new Uint8Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    b[i] = x >>> 24
  }
  return b
}

const sizes = [0, 1, 1000, 262144, 262145, 1048576, 3000000, 45613056, 45613057]
for (const n of sizes) {
  const bs = new MemoryBlockstore()
  const opts = {
    cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: 262144 }), layout: balanced({ maxChildrenPerNode: 174 }),
  }
  let last
  for await (const entry of importer([{ content: content(n, n + 7) }], bs, opts)) last = entry
  console.log(`${n} ${last.cid.toString()} ${last.size}`)
}
