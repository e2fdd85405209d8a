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

/// The exact text a participant signs to log in with a broker's challenge.
pub fn login_message(audience: &str, did: &Did, nonce: &str, expires_at: u64) -> String {
    format!(
        "{LOGIN_PREFIX}\naudience: {audience}\ndid: {did}\nnonce: {nonce}\nexpires: {expires_at}"
    )
}

/// The exact text a participant signs to register itself with `role` at `issued_at` (unix
/// seconds).
pub fn registration_message(audience: &str, did: &Did, role: &str, issued_at: u64) -> String {
    format!(
        "{REGISTER_PREFIX}\naudience: {audience}\ndid: {did}\nrole: {role}\nissued: {issued_at}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_bind_every_field() {
        let d1 = crate::did_of(&crate::generate().verifying_key());
        let d2 = crate::did_of(&crate::generate().verifying_key());
        let a = login_message("broker-a", &d1, "00", 10);
        assert_ne!(a, login_message("broker-b", &d1, "00", 10));
        assert_ne!(a, login_message("broker-a", &d2, "00", 10));
        assert_ne!(a, login_message("broker-a", &d1, "01", 10));
        assert_ne!(a, login_message("broker-a", &d1, "00", 11));
        assert_ne!(
            registration_message("b", &d1, "consumer", 1),
            registration_message("b", &d1, "provider", 1)
        );
        assert!(a.starts_with(LOGIN_PREFIX) && !a.starts_with('{'));
    }
}
