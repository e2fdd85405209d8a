//! Mercato's JSON-LD context. Its IRI is a name, not a place: brokers serve the same document at
//! `/ns/credentials/v1`, and every verifier uses the copy bundled here, so a credential expands
//! the same way offline. It defines only Mercato's terms; everything else comes from the VC 2.0
//! base context.

use std::collections::HashMap;

use ssi::json_ld::ContextLoader;

/// The W3C VC data model 2.0 base context.
pub const BASE_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// Mercato's context, by its IRI.
pub const CONTEXT_URL: &str = "https://mercato.example/ns/credentials/v1";
/// The context document itself.
pub const CONTEXT: &str = include_str!("../context/credentials-v1.jsonld");

/// A loader that knows the standard contexts (bundled in `ssi`) and Mercato's; it never fetches.
pub fn loader() -> ContextLoader {
    ContextLoader::default()
        .with_context_map_from(HashMap::from([(
            CONTEXT_URL.to_string(),
            CONTEXT.to_string(),
        )]))
        .expect("the bundled context is JSON under a valid IRI")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_context_parses_and_defines_only_mercato_terms() {
        let v: serde_json::Value = serde_json::from_str(super::CONTEXT).unwrap();
        let terms = v["@context"].as_object().unwrap();
        assert_eq!(terms["@protected"], true);
        for (term, def) in terms {
            if term.starts_with('@') || term == "xsd" || term == "mercato" {
                continue;
            }
            let id = def.as_str().or(def["@id"].as_str()).unwrap();
            assert!(id.starts_with("mercato:"), "{term} is not a Mercato term");
        }
        super::loader();
    }
}
