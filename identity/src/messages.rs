//! The texts a participant signs for the broker. Each starts with its own prefix line and names
//! the broker's deployment (`audience`), so neither can be mistaken for the other, for a JSON
//! document (offers, contract documents and usage records start with `{`), or be reused at
//! another deployment.

use crate::Did;

pub const LOGIN_PREFIX: &str = "mercato-login";
pub const REGISTER_PREFIX: &str = "mercato-register";

/// Names a broker deployment in signed messages (chain id and marketplace address, lower case).
pub fn audience(chain_id: u64, marketplace: &str) -> String {
    format!("mercato:{chain_id}:{}", marketplace.to_lowercase())
}

/// The exact text a participant signs to log in with a broker's challenge. `broker` is the
/// origin (`scheme://host:port`) the participant itself talks to: a challenge another broker
/// relays yields a login only for the relay, never for the broker that issued it.
pub fn login_message(
    audience: &str,
    broker: &str,
    did: &Did,
    nonce: &str,
    expires_at: u64,
) -> String {
    format!(
        "{LOGIN_PREFIX}\naudience: {audience}\nbroker: {broker}\ndid: {did}\nnonce: {nonce}\nexpires: {expires_at}"
    )
}

/// The exact text a participant signs to register itself with `role` at `issued_at` (unix
/// seconds).
/// `broker` is the origin the participant itself talks to, as in `login_message`.
pub fn registration_message(
    audience: &str,
    broker: &str,
    did: &Did,
    role: &str,
    issued_at: u64,
) -> String {
    format!(
        "{REGISTER_PREFIX}\naudience: {audience}\nbroker: {broker}\ndid: {did}\nrole: {role}\nissued: {issued_at}"
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
        let a = login_message("broker-a", o, &d1, "00", 10);
        assert_ne!(a, login_message("broker-b", o, &d1, "00", 10));
        assert_ne!(
            a,
            login_message("broker-a", "https://relay.example", &d1, "00", 10)
        );
        assert_ne!(a, login_message("broker-a", o, &d2, "00", 10));
        assert_ne!(a, login_message("broker-a", o, &d1, "01", 10));
        assert_ne!(a, login_message("broker-a", o, &d1, "00", 11));
        assert_ne!(
            registration_message("b", o, &d1, "consumer", 1),
            registration_message("b", o, &d1, "provider", 1)
        );
        assert_ne!(
            registration_message("b", o, &d1, "consumer", 1),
            registration_message("b", "https://relay.example", &d1, "consumer", 1)
        );
        assert!(a.starts_with(LOGIN_PREFIX) && !a.starts_with('{'));
    }
}
