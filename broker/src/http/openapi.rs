//! The OpenAPI document, generated: the paths and bodies come from the handlers' annotations and
//! the `api` crate's types; this module adds what every operation shares (the bearer scheme, the
//! problem responses each can give) and the statuses particular to each operation, in one table.

use api::Problem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mercato broker API",
        description = "The marketplace and broker for compute-continuum resources: offers and plans, reservations and contracts settled on chain, peering credentials, usage and settlement. Errors are RFC 9457 problems (application/problem+json).",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, api::Event, api::EventBody, api::audit::AuditFormat)),
    modifiers(&Bearer),
    tags(
        (name = "system", description = "Health, the ledger, this document"),
        (name = "auth", description = "Registration and login"),
        (name = "offers", description = "The catalog"),
        (name = "accounts", description = "EVM accounts linked on chain"),
        (name = "providers", description = "Provider configurations"),
        (name = "certification", description = "Certified metrics: W3C credentials of what the broker measured, their status list, provider reputation"),
        (name = "reservations", description = "Reserve and buy"),
        (name = "contracts", description = "Contracts, escrow and top-ups"),
        (name = "credentials", description = "Peering credentials"),
        (name = "usage", description = "Usage, settlement proofs, disputes, statements"),
        (name = "events", description = "Server-sent events"),
        (name = "audit", description = "Auditors' questions, answered from the index of every ledger event (auditors and operators)"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from POST /v1/auth/token (64 hex digits, 15 minutes)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Statuses particular to an operation, beyond the shared ones.
pub const PARTICULAR: &[(&str, &[u16])] = &[
    ("health", &[]),
    ("ledger", &[]),
    ("openapi", &[]),
    ("register", &[409, 429]),
    ("challenge", &[429]),
    ("token", &[401, 403]),
    ("me", &[]),
    ("search_offers", &[]),
    ("offer_facets", &[]),
    ("get_offer", &[404]),
    ("offer_history", &[404]),
    ("publish_offer", &[409]),
    ("withdraw_offer", &[404, 409]),
    ("canonical_offer", &[]),
    ("link_account", &[409, 422]),
    ("account", &[]),
    ("faucet", &[412]),
    ("transaction_terms", &[403, 412, 422]),
    ("relay_transaction", &[400, 403, 412, 422]),
    ("set_provider_config", &[412, 422]),
    ("provider_config", &[404]),
    ("reserve", &[404, 409, 412, 422]),
    ("reservation", &[404]),
    ("purchase", &[409, 410]),
    ("contracts", &[]),
    ("contract", &[404]),
    ("accept", &[404, 409]),
    ("close", &[404, 409]),
    ("escrow", &[404]),
    ("top_up", &[404, 409, 422]),
    ("credentials", &[404, 409]),
    ("renew_credential", &[404, 409]),
    ("revoke_credentials", &[404]),
    ("release_credentials", &[404]),
    ("report_usage", &[]),
    ("contract_usage", &[404]),
    ("usage_proof", &[404, 409]),
    ("statement", &[404]),
    ("submit_receipt", &[404]),
    ("dispute_usage", &[409]),
    ("resolve_dispute", &[409]),
    ("events", &[]),
    ("list_certificates", &[]),
    ("get_certificate", &[404]),
    ("certificate_status_list", &[]),
    ("revoke_certificate", &[404, 409]),
    ("probe_provider", &[404]),
    ("provider_reputation", &[]),
    ("credentials_context", &[]),
    ("audit_contracts", &[404]),
    ("audit_flows", &[404]),
    ("audit_earnings", &[404]),
    ("audit_rankings", &[]),
    ("audit_settlements", &[]),
    ("audit_usage", &[404]),
    ("audit_credentials", &[]),
    ("audit_configs", &[404]),
    ("audit_index", &[]),
    ("audit_selfcheck", &[]),
];

fn reason(status: u16) -> &'static str {
    match status {
        400 => "The request is malformed: a body, path or query parameter that is not what this operation takes, or a signature that does not verify",
        401 => "No token, or an unknown, expired or malformed one",
        403 => "The caller's role may not do this",
        404 => "Nothing of that id that the caller may see",
        405 => "The path does not take this method",
        409 => "The request conflicts with the resource's state",
        410 => "The reservation expired or was used",
        412 => "The participant has no EVM account linked yet",
        413 => "The body is larger than the broker accepts",
        415 => "The body is not application/json",
        422 => "The body is JSON but not what this operation takes, or the chain refused what was signed",
        429 => "Too many requests from this address; see Retry-After",
        500 => "The broker's fault; logged with the incident id the detail names",
        503 => "A dependency (database, chain, content store) is unavailable; try again",
        _ => "An error",
    }
}

/// Adds the problem responses every operation can give, and its particular ones.
pub fn complete(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let optional_auth = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|r| r == &Default::default()));
            let mut codes: Vec<u16> = vec![400, 500, 503];
            if secured {
                codes.extend([401, 403]);
            }
            if optional_auth {
                // An operator's token grants roles; a bad token is refused.
                codes.extend([401, 403]);
            }
            if op.request_body.is_some() {
                codes.extend([413, 415, 422]);
            }
            let id = op.operation_id.clone().unwrap_or_default();
            let particular = PARTICULAR
                .iter()
                .find(|(name, _)| *name == id)
                .map(|(_, c)| *c)
                .unwrap_or_else(|| panic!("operation {id} is missing from openapi::PARTICULAR"));
            codes.extend(particular);
            for code in codes {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(reason(code))
                            .content(
                                api::problem::PROBLEM_JSON,
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Problem")))
                                    .build(),
                            )
                            .into()
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn every_operation_is_documented_with_its_problems() {
        let doc = serde_json::to_value(super::super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "500", "503"] {
                    let r = &responses[code];
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {code}"
                    );
                }
                let secured = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                // A token can be missing or the wrong role's (logging in can fail the same way).
                if secured {
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403"),
                        "{method} {path}"
                    );
                }
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path} has no success response"
                );
                // Every path parameter is declared.
                for segment in path.split('/').filter(|s| s.starts_with('{')) {
                    let name = segment.trim_matches(|c| c == '{' || c == '}');
                    assert!(
                        op["parameters"].as_array().is_some_and(|ps| ps
                            .iter()
                            .any(|p| p["name"] == name && p["in"] == "path")),
                        "{method} {path}: {name} undeclared"
                    );
                }
            }
        }
        assert_eq!(operations, super::PARTICULAR.len());
        // The search parameters are exactly those the catalog's parser takes.
        let listed: Vec<&str> = doc["paths"]["/v1/offers"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let parsed: Vec<&str> = catalog::params::PARAMS.iter().map(|(k, _)| *k).collect();
        assert_eq!(listed, parsed);
        // Money, ids and dids carry their formats.
        let schemas = &doc["components"]["schemas"];
        for (name, pattern) in [
            ("Credits", "^(0|[1-9][0-9]{0,37})$"),
            ("ContractId", "^0x[0-9a-fA-F]{64}$"),
            ("Did", "^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$"),
        ] {
            assert_eq!(schemas[name]["pattern"], Value::from(pattern), "{name}");
        }
        assert!(schemas["ContractState"]["enum"]
            .as_array()
            .unwrap()
            .contains(&Value::from("active")));
        // Every schema a reference names is in the document (the web client is generated from
        // it, and a generator refuses a dangling reference).
        let text = doc.to_string();
        const PREFIX: &str = "#/components/schemas/";
        let mut references = 0;
        for (at, _) in text.match_indices(PREFIX) {
            let name: String = text[at + PREFIX.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(schemas.get(&name).is_some(), "dangling reference to {name}");
            references += 1;
        }
        assert!(references > 100, "{references} references read");
    }
}
