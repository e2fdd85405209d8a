#!/usr/bin/env node
// Independent W3C Verifiable Credential verifier for the Mercato test suite.
//
// The broker issues VC Data Model 2.0 credentials with Data Integrity proofs
// (cryptosuite eddsa-rdfc-2022, did:key Ed25519 issuers) using the Rust `ssi`
// crate. Verifying them with the same crate would only prove that it agrees
// with itself, so this script checks them with a second, unrelated
// implementation: Digital Bazaar's reference JavaScript libraries
// (@digitalbazaar/vc, data-integrity, eddsa-rdfc-2022-cryptosuite,
// ed25519-multikey; pinned in the root package.json). The test suite runs it
// on issued credentials (must verify) and on tampered copies (must not).
//
// Usage (from anywhere; run `npm ci` in the repository root first):
//   node tests/vc/verify.mjs CREDENTIAL.json [--status-list LIST.json]
//                            [--context CONTEXT.jsonld] [--nquads]
//
//   --status-list  a BitstringStatusListCredential: its own proof is verified
//                  with the same suite, its `id` must equal the entry's
//                  `statusListCredential`, and the bit at `statusListIndex`
//                  decides revoked/unrevoked. Without it the status is
//                  reported as "unchecked" and does not fail verification.
//   --context      the Mercato JSON-LD context served as
//                  https://mercato.example/ns/credentials/v1 (default:
//                  certify/context/credentials-v1.jsonld in this repository).
//   --nquads       also print the RDFC-1.0 canonical N-Quads of the
//                  credential (proof removed) to stderr, for debugging.
//
// Output: one JSON line on stdout,
//   {"verified": true|false, "error": "...", "status": "unrevoked|revoked|unchecked"}
// ("error" only when there is one). Exit code 0 only when the credential
// verified and is not revoked, 1 otherwise.
//
// The document loader never touches the network: it serves the bundled VC
// contexts, the Mercato context from the file, and did:key documents derived
// locally from the key itself. Any other URL is an error naming that URL.

import {readFileSync} from 'node:fs';
import {gunzipSync} from 'node:zlib';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {contexts as credentialsContexts} from
  '@digitalbazaar/credentials-context';

const MERCATO_CONTEXT_URL = 'https://mercato.example/ns/credentials/v1';
const DID_CONTEXT_V1_URL = 'https://www.w3.org/ns/did/v1';
const MULTIKEY_CONTEXT_V1_URL = 'https://w3id.org/security/multikey/v1';
const REPO_ROOT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_CONTEXT = path.join(
  REPO_ROOT, 'certify', 'context', 'credentials-v1.jsonld');

function parseArgs(argv) {
  const args = {credential: null, statusList: null, context: DEFAULT_CONTEXT,
    nquads: false};
  for(let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if(a === '--status-list' || a === '--context') {
      if(i + 1 >= argv.length) {
        throw new Error(`${a} needs a file argument`);
      }
      args[a === '--context' ? 'context' : 'statusList'] = argv[++i];
    } else if(a === '--nquads') {
      args.nquads = true;
    } else if(a.startsWith('--')) {
      throw new Error(`unknown option ${a}`);
    } else if(args.credential === null) {
      args.credential = a;
    } else {
      throw new Error(`unexpected argument ${a}`);
    }
  }
  if(args.credential === null) {
    throw new Error('usage: node tests/vc/verify.mjs CREDENTIAL.json ' +
      '[--status-list LIST.json] [--context CONTEXT.jsonld] [--nquads]');
  }
  return args;
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch(e) {
    throw new Error(`cannot read ${file}: ${e.message}`);
  }
}

// --- did:key (Ed25519 only), resolved locally --------------------------------

const BASE58_ALPHABET =
  '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function base58btcDecode(s) {
  let n = 0n;
  for(const c of s) {
    const d = BASE58_ALPHABET.indexOf(c);
    if(d < 0) {
      throw new Error(`invalid base58btc character "${c}"`);
    }
    n = n * 58n + BigInt(d);
  }
  const bytes = [];
  while(n > 0n) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  for(const c of s) {
    if(c !== '1') {
      break;
    }
    bytes.unshift(0);
  }
  return Uint8Array.from(bytes);
}

// An Ed25519 did:key is `did:key:z<base58btc(0xed 0x01 || 32-byte key)>`; the
// method-specific id doubles as the Multikey `publicKeyMultibase`.
function didKeyDocument(did) {
  const fingerprint = did.slice('did:key:'.length);
  let bytes;
  try {
    if(!fingerprint.startsWith('z')) {
      throw new Error('not base58btc multibase');
    }
    bytes = base58btcDecode(fingerprint.slice(1));
  } catch(e) {
    throw new Error(`invalid did:key "${did}": ${e.message}`);
  }
  if(!(bytes.length === 34 && bytes[0] === 0xed && bytes[1] === 0x01)) {
    throw new Error(`unsupported did:key "${did}": not an Ed25519 public key`);
  }
  const vmId = `${did}#${fingerprint}`;
  const verificationMethod = {
    id: vmId,
    type: 'Multikey',
    controller: did,
    publicKeyMultibase: fingerprint
  };
  return {
    document: {
      '@context': [DID_CONTEXT_V1_URL, MULTIKEY_CONTEXT_V1_URL],
      id: did,
      verificationMethod: [verificationMethod],
      authentication: [vmId],
      assertionMethod: [vmId],
      capabilityDelegation: [vmId],
      capabilityInvocation: [vmId]
    },
    verificationMethod: {'@context': MULTIKEY_CONTEXT_V1_URL,
      ...verificationMethod}
  };
}

// --- offline document loader -------------------------------------------------

function makeDocumentLoader(mercatoContextFile) {
  const mercatoContext = readJson(mercatoContextFile);
  const contexts = new Map(credentialsContexts);
  contexts.set(MERCATO_CONTEXT_URL, mercatoContext);

  return async function documentLoader(url) {
    const context = contexts.get(url);
    if(context !== undefined) {
      return {contextUrl: null, documentUrl: url, document: context};
    }
    if(url.startsWith('did:key:')) {
      const [did, fragment] = url.split('#');
      const {document, verificationMethod} = didKeyDocument(did);
      if(fragment === undefined) {
        return {contextUrl: null, documentUrl: url, document};
      }
      if(verificationMethod.id === url) {
        return {contextUrl: null, documentUrl: url,
          document: verificationMethod};
      }
      throw new Error(`did:key verification method "${url}" not found ` +
        `(expected "${verificationMethod.id}")`);
    }
    throw new Error(
      `offline document loader refuses to load "${url}" (not bundled)`);
  };
}

// --- Bitstring Status List ---------------------------------------------------

function asArray(v) {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function idOf(v) {
  return typeof v === 'string' ? v : v?.id;
}

function errorMessage(error) {
  if(!error) {
    return 'verification failed';
  }
  const nested = asArray(error.errors).map(errorMessage);
  if(nested.length > 0) {
    return nested.join('; ');
  }
  const message = error.message || String(error);
  // jsonld wraps document loader failures; keep the loader's own reason
  const cause = error.details?.cause;
  return cause ? `${message} (${errorMessage(cause)})` : message;
}

function resultError(result) {
  if(result.error) {
    return errorMessage(result.error);
  }
  const errs = asArray(result.results).filter(r => !r.verified)
    .map(r => errorMessage(r.error));
  return errs.length ? errs.join('; ') : 'verification failed';
}

// Returns true when the bit is set. Bit 0 is the most significant bit of the
// first byte of the gunzipped bitstring.
function readStatusBit(encodedList, index) {
  if(typeof encodedList !== 'string' || !encodedList.startsWith('u')) {
    throw new Error('encodedList must be multibase base64url ("u...")');
  }
  let bits;
  try {
    bits = gunzipSync(Buffer.from(encodedList.slice(1), 'base64url'));
  } catch(e) {
    throw new Error(`encodedList is not gzip: ${e.message}`);
  }
  if(index >= bits.length * 8) {
    throw new Error(`statusListIndex ${index} is beyond the list ` +
      `(${bits.length * 8} bits)`);
  }
  return (bits[index >> 3] & (0x80 >> (index & 7))) !== 0;
}

// --- main --------------------------------------------------------------------

async function main() {
  const out = {verified: false, status: 'unchecked'};
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
    const credential = readJson(args.credential);
    const statusList = args.statusList ? readJson(args.statusList) : null;
    const documentLoader = makeDocumentLoader(args.context);
    const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});

    if(args.nquads) {
      const {proof, ...unsigned} = credential;
      const nquads = await eddsaRdfc2022.canonize(unsigned, {documentLoader});
      process.stderr.write(nquads);
    }

    // Called by vc.verifyCredential only after the proof verified.
    const checkStatus = async () => {
      const entries = asArray(credential.credentialStatus);
      if(statusList === null) {
        return {verified: true};
      }
      const listResult = await vc.verifyCredential({
        credential: statusList, suite, documentLoader,
        purpose: new vc.CredentialIssuancePurpose()
      });
      if(!listResult.verified) {
        throw new Error(
          `status list credential: ${resultError(listResult)}`);
      }
      if(!asArray(statusList.type).includes('BitstringStatusListCredential')) {
        throw new Error(
          'status list credential is not a BitstringStatusListCredential');
      }
      if(idOf(statusList.issuer) !== idOf(credential.issuer)) {
        throw new Error(`status list issuer "${idOf(statusList.issuer)}" ` +
          `is not the credential issuer "${idOf(credential.issuer)}"`);
      }
      const subject = statusList.credentialSubject ?? {};
      if(!asArray(subject.type).includes('BitstringStatusList')) {
        throw new Error('status list subject is not a BitstringStatusList');
      }
      let revoked = false;
      for(const entry of entries) {
        if(entry.type !== 'BitstringStatusListEntry') {
          throw new Error(`unsupported credentialStatus type "${entry.type}"`);
        }
        if(entry.statusPurpose !== 'revocation') {
          throw new Error(
            `unsupported statusPurpose "${entry.statusPurpose}"`);
        }
        if(statusList.id !== entry.statusListCredential) {
          throw new Error(`status list id "${statusList.id}" is not the ` +
            `entry's statusListCredential "${entry.statusListCredential}"`);
        }
        if(subject.statusPurpose !== entry.statusPurpose) {
          throw new Error(`status list purpose "${subject.statusPurpose}" ` +
            `is not the entry's "${entry.statusPurpose}"`);
        }
        if(!/^(0|[1-9][0-9]*)$/.test(String(entry.statusListIndex))) {
          throw new Error(
            `invalid statusListIndex "${entry.statusListIndex}"`);
        }
        const index = Number(entry.statusListIndex);
        if(!Number.isSafeInteger(index)) {
          throw new Error(`statusListIndex ${entry.statusListIndex} too large`);
        }
        revoked ||= readStatusBit(subject.encodedList, index);
      }
      out.status = revoked ? 'revoked' : 'unrevoked';
      return revoked ?
        {verified: false, error: new Error('credential is revoked')} :
        {verified: true};
    };

    const result = await vc.verifyCredential({
      credential, suite, documentLoader, checkStatus,
      purpose: new vc.CredentialIssuancePurpose()
    });
    out.verified = result.verified === true;
    if(!out.verified) {
      out.error = result.statusResult && !result.statusResult.verified ?
        errorMessage(result.statusResult.error) : resultError(result);
    }
  } catch(e) {
    out.verified = false;
    out.error = errorMessage(e);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = out.verified && out.status !== 'revoked' ? 0 : 1;
}

await main();
