//! The texts a participant signs for the broker (as `Domain::Login` and `Domain::Registration`
//! messages, so neither can be mistaken for the other or for a document). Each names the broker's
//! deployment (`audience`), the broker's origin and, once known, its did, so none can be reused
//! at another deployment or relayed by another broker.

use crate::Did;

/// Names a broker deployment in signed messages (chain id and marketplace address, lower case).
pub fn audience(chain_id: u64, marketplace: &str) -> String {
    format!("mercato:{chain_id}:{}", marketplace.to_lowercase())
}

/// The exact text a participant signs to log in with a broker's challenge. `broker` is the
/// origin (`scheme://host:port`) the participant itself talks to: a challenge another broker
/// relays yields a login only for the relay, never for the broker that issued it. `broker_did` is
/// the broker's own identity as the participant pinned it.
pub fn login_message(
    audience: &str,
    broker: &str,
    broker_did: &Did,
    did: &Did,
    nonce: &str,
    expires_at: u64,
) -> String {
    format!(
        "audience: {audience}\nbroker: {broker}\nbroker-did: {broker_did}\ndid: {did}\nnonce: {nonce}\nexpires: {expires_at}"
    )
}

/// The exact text a participant signs to register itself with `role` at `issued_at` (unix
/// seconds).
/// `broker` is the origin the participant itself talks to, as in `login_message`.
pub fn registration_message(
    audience: &str,
    broker: &str,
    broker_did: &Did,
    did: &Did,
    role: &str,
    issued_at: u64,
) -> String {
    format!(
        "audience: {audience}\nbroker: {broker}\nbroker-did: {broker_did}\ndid: {did}\nrole: {role}\nissued: {issued_at}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_bind_every_field() {
        let d1 = crate::did_of(&crate::generate().verifying_key());
        let d2 = crate::did_of(&crate::generate().verifying_key());
        let o = "http://127.0.0.1:8080";
        let b = crate::did_of(&crate::generate().verifying_key());
        let a = login_message("broker-a", o, &b, &d1, "00", 10);
        assert_ne!(a, login_message("broker-b", o, &b, &d1, "00", 10));
        assert_ne!(
            a,
            login_message("broker-a", "https://relay.example", &b, &d1, "00", 10)
        );
        assert_ne!(a, login_message("broker-a", o, &b, &d2, "00", 10));
        assert_ne!(a, login_message("broker-a", o, &d2, &d1, "00", 10));
        assert_ne!(a, login_message("broker-a", o, &b, &d1, "01", 10));
        assert_ne!(a, login_message("broker-a", o, &b, &d1, "00", 11));
        assert_ne!(
            registration_message("b", o, &b, &d1, "consumer", 1),
            registration_message("b", o, &b, &d1, "provider", 1)
        );
        assert_ne!(
            registration_message("b", o, &b, &d1, "consumer", 1),
            registration_message("b", "https://relay.example", &b, &d1, "consumer", 1)
        );
    }
}
