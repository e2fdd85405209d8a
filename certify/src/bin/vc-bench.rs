//! Issue and verify rates of Mercato's credentials against raw Ed25519 signing and verifying on
//! the same machine in the same run (the canonicalisation is the cost). The last line is one JSON
//! object. `--sample DIR` writes a signed credential, a tampered copy and the status list there
//! (what the independent-verifier test reads).

use std::time::{Duration, Instant};

use certify::shape::{Claim, Credential, StatusEntry, Subject};
use certify::{status_list, Issuer};
use ed25519_dalek::{Signer, SigningKey, Verifier};

const LIST_URL: &str = "http://127.0.0.1:8080/v1/certs/status";

fn sample(issuer: &Issuer, provider: &str, i: u32, now: u64) -> Credential {
    Credential::new(
        format!("urn:uuid:6f1c2a4e-0000-4000-8000-{i:012}"),
        issuer.did().as_str(),
        Subject {
            id: provider.into(),
            offer: None,
            claim: Claim::Latency {
                latency_p50_micros: 800 + u64::from(i % 100),
                latency_p99_micros: 1_900,
                latency_jitter_micros: 120,
            },
            window_start: certify::timestamp(now - 3_600),
            window_end: certify::timestamp(now),
            method: "noise-echo".into(),
            sample_count: 20,
            prober_location: "bench".into(),
        },
        now,
        now + 86_400,
        StatusEntry::revocation(LIST_URL, i),
    )
}

/// Runs `f` repeatedly for about `budget`; operations per second.
async fn rate<F, Fut>(budget: Duration, mut f: F) -> f64
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget || n < 10 {
        f(n).await;
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let issuer = Issuer::new(&key);
    let provider = identity::did_of(&SigningKey::from_bytes(&[43u8; 32]).verifying_key());
    if let Some(i) = args.iter().position(|a| a == "--sample") {
        let dir = std::path::PathBuf::from(args.get(i + 1).map(String::as_str).unwrap_or("."));
        std::fs::create_dir_all(&dir)?;
        let signed = issuer
            .sign(&sample(&issuer, provider.as_str(), 7, now))
            .await?;
        let mut tampered = signed.clone();
        if let Claim::Latency {
            latency_p50_micros, ..
        } = &mut tampered.credential_subject.claim
        {
            *latency_p50_micros = 1;
        }
        let list = status_list::list_credential(issuer.did().as_str(), LIST_URL, &[3], now);
        let list = issuer.sign_json(list).await?;
        std::fs::write(
            dir.join("credential.json"),
            serde_json::to_vec_pretty(&signed)?,
        )?;
        std::fs::write(
            dir.join("tampered.json"),
            serde_json::to_vec_pretty(&tampered)?,
        )?;
        std::fs::write(
            dir.join("status-list.json"),
            serde_json::to_vec_pretty(&list)?,
        )?;
        std::fs::write(dir.join("context.jsonld"), certify::context::CONTEXT)?;
        println!("wrote {}", dir.display());
        return Ok(());
    }
    let budget = Duration::from_secs(3);
    let unsigned: Vec<Credential> = (0..64)
        .map(|i| sample(&issuer, provider.as_str(), i, now))
        .collect();
    let issue_per_s = rate(budget, |n| {
        let c = &unsigned[n as usize % unsigned.len()];
        let issuer = &issuer;
        async move {
            issuer.sign(c).await.expect("signs");
        }
    })
    .await;
    let mut signed = Vec::new();
    for c in &unsigned {
        signed.push(issuer.sign(c).await?.to_value());
    }
    let trusted = [issuer.did().to_string()];
    let verify_per_s = rate(budget, |n| {
        let doc = &signed[n as usize % signed.len()];
        let trusted = &trusted;
        async move {
            certify::verify::verify(doc, trusted, now + 1)
                .await
                .expect("verifies");
        }
    })
    .await;
    let messages: Vec<Vec<u8>> = unsigned.iter().map(Credential::canonical_bytes).collect();
    let raw_sign_per_s = rate(budget, |n| {
        let m = &messages[n as usize % messages.len()];
        let key = &key;
        async move {
            std::hint::black_box(key.sign(m));
        }
    })
    .await;
    let sigs: Vec<_> = messages.iter().map(|m| key.sign(m)).collect();
    let public = key.verifying_key();
    let raw_verify_per_s = rate(budget, |n| {
        let i = n as usize % messages.len();
        let (m, s, public) = (&messages[i], &sigs[i], &public);
        async move {
            public.verify(m, s).expect("verifies");
        }
    })
    .await;
    println!("issue (ssi, eddsa-rdfc-2022)   {issue_per_s:>10.0} /s");
    println!("verify (all offline checks)    {verify_per_s:>10.0} /s");
    println!("raw Ed25519 sign               {raw_sign_per_s:>10.0} /s");
    println!("raw Ed25519 verify             {raw_verify_per_s:>10.0} /s");
    println!(
        "{}",
        serde_json::json!({
            "issue_per_s": issue_per_s.round(),
            "verify_per_s": verify_per_s.round(),
            "raw_sign_per_s": raw_sign_per_s.round(),
            "raw_verify_per_s": raw_verify_per_s.round(),
            "issue_ratio": issue_per_s / raw_sign_per_s,
            "verify_ratio": verify_per_s / raw_verify_per_s,
        })
    );
    Ok(())
}
