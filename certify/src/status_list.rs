//! The broker's revocation list: a Bitstring Status List credential (W3C), one bit per issued
//! credential, signed like the credentials and re-issued on every revocation.

use serde_json::{json, Value};
use ssi::status::bitstring_status_list::{BitString, EncodedList, SizedBitString, StatusSize};

use crate::context::BASE_CONTEXT;
use crate::shape::{StatusEntry, STATUS_PURPOSE};
use crate::verify::{check_proof, Failure};

/// Bits in the list: 1 MiB of bitstring, 8 388 608 credentials (the specification's minimum is
/// 16 KiB); mostly zeros, it compresses to about a kilobyte.
pub const LIST_BITS: usize = 1024 * 1024 * 8;

/// The unsigned status list credential at `url`, with the bits of `revoked` set.
pub fn list_credential(issuer: &str, url: &str, revoked: &[usize], now: u64) -> Value {
    let mut bits = SizedBitString::new_zeroed(StatusSize::default(), LIST_BITS);
    for &i in revoked {
        // Indexes come from the broker's own allocation, below LIST_BITS.
        let _ = bits.set(i, 1);
    }
    json!({
        "@context": [BASE_CONTEXT],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": crate::timestamp(now),
        "credentialSubject": {
            "id": format!("{url}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": STATUS_PURPOSE,
            "encodedList": bits.encode(),
        }
    })
}

/// Fails with `Revoked` when `entry`'s bit is set in `list` (a signed status list credential), after checking that
/// the list is the one the entry names, issued by `issuer`, for revocation, and that its proof
/// verifies.
pub async fn check_not_revoked(
    list: &Value,
    entry: &StatusEntry,
    issuer: &str,
) -> Result<(), Failure> {
    let bad = |why: String| Failure::StatusList(why);
    if entry.kind != "BitstringStatusListEntry" || entry.status_purpose != STATUS_PURPOSE {
        return Err(bad(format!(
            "entry of type {} for {}",
            entry.kind, entry.status_purpose
        )));
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if s(&list["id"]) != entry.status_list_credential {
        return Err(bad(format!(
            "the list is {}, the credential names {}",
            s(&list["id"]),
            entry.status_list_credential
        )));
    }
    if s(&list["issuer"]) != issuer {
        return Err(bad(format!(
            "the list is issued by {}, the credential by {issuer}",
            s(&list["issuer"])
        )));
    }
    let subject = &list["credentialSubject"];
    if s(&subject["statusPurpose"]) != STATUS_PURPOSE {
        return Err(bad("the list is not a revocation list".into()));
    }
    let from = crate::parse_timestamp(&s(&list["validFrom"]))
        .ok_or_else(|| bad("the list has no validFrom".into()))?;
    check_proof(list, from)
        .await
        .map_err(|e| bad(format!("its proof: {e}")))?;
    let index = entry
        .index()
        .ok_or_else(|| bad(format!("index {}", entry.status_list_index)))?;
    let bytes = EncodedList::new(s(&subject["encodedList"]))
        .decode(Some(16 * 1024 * 1024))
        .map_err(|e| bad(format!("encodedList: {e}")))?;
    let bit = BitString::from_bytes(bytes)
        .get(StatusSize::default(), index)
        .ok_or_else(|| bad(format!("index {index} is beyond the list")))?;
    if bit == 1 {
        return Err(Failure::Revoked {
            index,
            list: entry.status_list_credential.clone(),
        });
    }
    Ok(())
}
