//! The offer model: validation with clear per-field errors, signatures, FLUIDOS round trips.

use catalog::fluidos::{self, FlavorError};
use catalog::model::*;
use catalog::validate::{parse_offer, validate, OfferError, MAX_OFFER_BYTES};
use serde_json::json;
use testkit::synth::Generator;

fn offers(n: usize) -> (Generator, Vec<Offer>) {
    let mut g = Generator::new(7, 5, true);
    let offers = (0..n)
        .map(|i| g.offer(&format!("offer-{i}"), 1 + i % 3))
        .collect();
    (g, offers)
}

type Mutation = Box<dyn Fn(&mut Offer)>;

fn fields(err: OfferError) -> Vec<String> {
    err.fields().iter().map(|f| f.field.clone()).collect()
}

#[test]
fn generated_offers_of_every_class_are_valid_and_signed() {
    let (_, offers) = offers(300);
    let mut classes = std::collections::HashSet::new();
    for o in &offers {
        validate(o, true).unwrap_or_else(|e| panic!("{}: {e}", o.id));
        classes.extend(o.classes());
        let bytes = serde_json::to_vec(o).unwrap();
        assert_eq!(&parse_offer(&bytes, true).unwrap(), o);
    }
    assert_eq!(classes.len(), 4, "{classes:?}");
}

#[test]
fn each_bad_field_is_named_with_a_reason() {
    let (mut g, _) = offers(0);
    let good = g.offer("good", 2);
    let cases: Vec<(&str, Mutation)> = vec![
        ("id", Box::new(|o| o.id = "has space".into())),
        ("version", Box::new(|o| o.version = 0)),
        ("provider", Box::new(|o| o.provider = "did:web:x".into())),
        ("name", Box::new(|o| o.name.clear())),
        ("tags[0]", Box::new(|o| o.tags = vec!["Upper Case".into()])),
        (
            "location.country",
            Box::new(|o| o.location.country = "France".into()),
        ),
        (
            "location.region",
            Box::new(|o| o.location.region = "EU West".into()),
        ),
        (
            "location.latitude",
            Box::new(|o| o.location.latitude = 91.0),
        ),
        (
            "location.longitude",
            Box::new(|o| o.location.longitude = f64::NAN),
        ),
        (
            "resources",
            Box::new(|o| o.resources = Resources::default()),
        ),
        ("plans", Box::new(|o| o.plans.clear())),
        ("plans[0].capacity", Box::new(|o| o.plans[0].capacity = 0)),
        (
            "plans[1].id",
            Box::new(|o| o.plans[1].id = o.plans[0].id.clone()),
        ),
        (
            "plans[0].pricing",
            Box::new(|o| o.plans[0].pricing = Pricing::default()),
        ),
        (
            "plans[0].unit",
            Box::new(|o| o.plans[0].unit = PlanUnit::default()),
        ),
        (
            "greenEnergyPercent",
            Box::new(|o| o.green_energy_percent = 101),
        ),
        (
            "availability",
            Box::new(|o| {
                o.availability = AvailabilityWindow {
                    from: Some(10),
                    until: Some(5),
                }
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        let err = validate(&bad, false).unwrap_err();
        assert!(
            fields(err.clone()).iter().any(|f| f == field),
            "{field}: {err}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn absurd_quantities_and_overflowing_prices_are_refused() {
    let (mut g, _) = offers(0);
    let mut o = g.offer("big", 1);
    while o.resources.compute.is_none() {
        o = g.offer("big", 1);
    }
    let mut bad = o.clone();
    bad.resources.compute.as_mut().unwrap().cpu_millicores = 10_000_000_000;
    assert!(fields(validate(&bad, false).unwrap_err())
        .contains(&"resources.compute.cpuMillicores".to_string()));

    let mut bad = o.clone();
    bad.plans[0].pricing.reserved = Some(ReservedPrice {
        price: Credits::from_base_units(u128::MAX),
        period_seconds: 3600,
    });
    let err = validate(&bad, false).unwrap_err();
    assert!(
        err.to_string().contains("plans[0].pricing.reserved.price"),
        "{err}"
    );

    // Selling more than the offer has.
    let mut bad = o.clone();
    bad.plans[0].capacity = 1000;
    let err = validate(&bad, false).unwrap_err();
    assert!(err.to_string().contains("exceeds the offer"), "{err}");

    // A plan unit for a class the offer does not have.
    let mut bad = o.clone();
    bad.resources.gpu = None;
    bad.plans[0].unit.gpu_permille = 500;
    let err = validate(&bad, false).unwrap_err();
    assert!(err.to_string().contains("has no gpu resources"), "{err}");
}

#[test]
fn unknown_classes_fields_and_oversized_bodies_are_refused() {
    let (_, offers) = offers(1);
    let mut v = serde_json::to_value(&offers[0]).unwrap();
    v["resources"]["quantum"] = json!({"qubits": 5});
    let err = parse_offer(&serde_json::to_vec(&v).unwrap(), false).unwrap_err();
    assert!(
        matches!(&err, OfferError::Malformed(m) if m.contains("unknown field `quantum`")),
        "{err}"
    );

    let mut v = serde_json::to_value(&offers[0]).unwrap();
    v.as_object_mut().unwrap().remove("location");
    let err = parse_offer(&serde_json::to_vec(&v).unwrap(), false).unwrap_err();
    assert!(
        err.to_string().contains("missing field `location`"),
        "{err}"
    );

    let big = vec![b' '; MAX_OFFER_BYTES + 1];
    assert!(matches!(
        parse_offer(&big, false),
        Err(OfferError::TooLarge { .. })
    ));

    let mut v = serde_json::to_value(&offers[0]).unwrap();
    v["plans"][0]["capacity"] = json!(-3);
    assert!(matches!(
        parse_offer(&serde_json::to_vec(&v).unwrap(), false),
        Err(OfferError::Malformed(_))
    ));
}

#[test]
fn signatures_bind_the_whole_offer_to_its_provider() {
    let (g, offers) = offers(2);
    let o = &offers[0];
    validate(o, true).unwrap();
    // Any change after signing breaks the signature.
    let mut tampered = o.clone();
    tampered.plans[0].capacity += 1;
    if validate(&tampered, false).is_ok() {
        let err = validate(&tampered, true).unwrap_err();
        assert_eq!(fields(err), vec!["signature"]);
    }
    let mut cheaper = o.clone();
    cheaper.green_energy_percent = 100 - o.green_energy_percent.min(100);
    assert_eq!(
        fields(validate(&cheaper, true).unwrap_err()),
        vec!["signature"]
    );
    // Signed by someone else than the named provider.
    let mut forged = o.clone();
    let other = g
        .providers
        .iter()
        .find(|k| identity::did_of(&k.verifying_key()).to_string() != o.provider)
        .unwrap();
    forged.sign(other);
    assert_eq!(
        fields(validate(&forged, true).unwrap_err()),
        vec!["signature"]
    );
    let mut unsigned = o.clone();
    unsigned.signature.clear();
    assert_eq!(
        fields(validate(&unsigned, true).unwrap_err()),
        vec!["signature"]
    );
}

fn k8slice_flavor() -> serde_json::Value {
    json!({
        "apiVersion": "nodecore.fluidos.eu/v1alpha1",
        "kind": "Flavor",
        "metadata": {"name": "fluidos-provider-k8slice-abc", "namespace": "fluidos"},
        "spec": {
            "providerID": "provider-node-1",
            "flavorType": {
                "typeIdentifier": "K8Slice",
                "typeData": {
                    "characteristics": {
                        "architecture": "amd64", "cpu": "7985105637n", "memory": "32Gi", "pods": "110",
                        "gpu": {"model": "nvidia-a100", "cores": "2", "memory": "80Gi"},
                        "storage": "100Gi"
                    },
                    "properties": {
                        "latency": 12,
                        "securityStandards": ["GDPR", "ISO27001"],
                        "carbon-footprint": {"embodied": 100, "operational": [10, 12, 9]},
                        "networkAuthorizations": {"deniedCommunications": [], "mandatoryCommunications": []},
                        "additionalProperties": {"rack": "r12"}
                    },
                    "policies": {"partitionability": {
                        "cpuMin": "1", "memoryMin": "2Gi", "podsMin": "1", "gpuMin": "0",
                        "cpuStep": "1", "memoryStep": "1Gi", "podsStep": "1", "gpuStep": "0"
                    }}
                }
            },
            "owner": {"domain": "fluidos.eu", "nodeID": "node-1", "ip": "10.0.0.1", "additionalInformation": {"liqoID": "liqo-1"}},
            "price": {"amount": "12.50", "currency": "MCR", "period": "hourly"},
            "availability": true,
            "networkPropertyType": "5G",
            "location": {"latitude": "45.0703", "longitude": "7.6869", "country": "IT", "city": "Turin", "additionalNotes": "rack 12"}
        },
        "status": {"creationTime": "2026-01-01T00:00:00Z", "expirationTime": "2027-01-01T00:00:00Z", "lastUpdateTime": "2026-01-02T00:00:00Z"}
    })
}

fn strip_annotation(mut f: serde_json::Value) -> serde_json::Value {
    let meta = f["metadata"].as_object_mut().unwrap();
    let ann = meta
        .get_mut("annotations")
        .unwrap()
        .as_object_mut()
        .unwrap();
    assert!(ann.remove(fluidos::OFFER_ANNOTATION).is_some());
    if ann.is_empty() {
        meta.remove("annotations");
    }
    f
}

fn did() -> String {
    let (g, _) = offers(0);
    g.did(0).to_string()
}

#[test]
fn a_k8slice_flavor_maps_to_typed_fields_and_back_without_loss() {
    let flavor = k8slice_flavor();
    let offer = fluidos::offer_from_flavor(&flavor, &did()).unwrap();
    let c = offer.resources.compute.as_ref().unwrap();
    assert_eq!(
        (c.cpu_millicores, c.memory_mib, c.storage_gib, c.pods),
        (7985, 32 * 1024, 100, 110)
    );
    let g = offer.resources.gpu.as_ref().unwrap();
    assert_eq!(
        (g.vendor.as_str(), g.model.as_str(), g.share, g.memory_mib),
        (
            "nvidia",
            "nvidia-a100",
            GpuShare::Whole { count: 2 },
            80 * 1024
        )
    );
    assert_eq!(offer.location.country, "IT");
    assert_eq!(offer.location.latitude, 45.0703);
    assert_eq!(
        offer.plans[0].pricing.reserved,
        Some(ReservedPrice {
            price: Credits::from_base_units(1_250_000_000),
            period_seconds: 3600
        })
    );
    assert_eq!(offer.partitionability.unwrap().memory_min_mib, 2048);

    let back = fluidos::flavor_from_offer(&offer).unwrap();
    assert_eq!(strip_annotation(back.clone()), flavor);
    // And the offer survives the flavor.
    assert_eq!(fluidos::offer_from_flavor(&back, &did()).unwrap(), offer);
}

#[test]
fn vm_service_and_sensor_flavors_round_trip() {
    let mut vm = k8slice_flavor();
    vm["spec"]["flavorType"] = json!({"typeIdentifier": "VM", "typeData": {
        "architecture": "arm64", "os": "ubuntu-24.04", "cpu": "4", "memory": "8Gi", "storage": "50Gi",
        "gpu": {"model": "nvidia-t4", "cores": "0.5"},
        "properties": {"latency": 3}, "policy": {"aggregatable": {"minCount": 1, "maxCount": 4}}
    }});
    let mut service = k8slice_flavor();
    service["spec"]["flavorType"] = json!({"typeIdentifier": "Service", "typeData": {
        "name": "postgres", "description": "managed PostgreSQL 16", "category": "database",
        "tags": ["sql", "database"], "hostingPolicies": ["Provider", "Shared"],
        "configurationTemplate": {"type": "object", "properties": {"size": {"type": "string"}}}
    }});
    let mut sensor = k8slice_flavor();
    sensor["spec"]["flavorType"] = json!({"typeIdentifier": "Sensor", "typeData": {
        "sensorType": "air-quality", "sensorModel": "AQ-9", "sensorManufacturer": "Acme", "sensorMarket": "industrial",
        "samplingRate": "1Hz", "accuracy": "0.1", "consumption": "2W", "interface": "mqtt://sensors.example:8883",
        "securityStandards": ["TLS1.3"], "latency": "20ms", "accessType": ["GET"]
    }});
    for (flavor, check) in [
        (
            vm,
            Box::new(|o: &Offer| {
                assert_eq!(o.resources.compute.as_ref().unwrap().architecture, "arm64");
                assert_eq!(
                    o.resources.gpu.as_ref().unwrap().share,
                    GpuShare::TimeSliced { permille: 500 }
                );
            }) as Box<dyn Fn(&Offer)>,
        ),
        (
            service,
            Box::new(|o: &Offer| {
                assert_eq!(o.name, "postgres");
                assert_eq!(o.tags, vec!["sql", "database"]);
            }),
        ),
        (
            sensor,
            Box::new(|o: &Offer| {
                let d = o.resources.data.as_ref().unwrap();
                assert_eq!(
                    (d.dataset.as_str(), d.access_endpoint.as_str()),
                    ("air-quality", "mqtt://sensors.example:8883")
                );
            }),
        ),
    ] {
        let offer = fluidos::offer_from_flavor(&flavor, &did()).unwrap();
        check(&offer);
        let back = fluidos::flavor_from_offer(&offer).unwrap();
        assert_eq!(strip_annotation(back.clone()), flavor);
        assert_eq!(fluidos::offer_from_flavor(&back, &did()).unwrap(), offer);
    }
}

#[test]
fn offers_round_trip_through_flavors_and_updates_show_in_the_flavor() {
    let (_, offers) = offers(200);
    let mut converted = 0;
    for o in &offers {
        match fluidos::flavor_from_offer(o) {
            Ok(flavor) => {
                assert_eq!(
                    &fluidos::offer_from_flavor(&flavor, &o.provider).unwrap(),
                    o,
                    "{}",
                    o.id
                );
                converted += 1;
            }
            Err(FlavorError::NoFlavorType) => assert!(o.resources.compute.is_none()),
            Err(e) => panic!("{}: {e}", o.id),
        }
    }
    assert!(converted > 100);

    // A changed offer writes its new values into the flavor it came from.
    let mut offer = fluidos::offer_from_flavor(&k8slice_flavor(), &did()).unwrap();
    offer.resources.compute.as_mut().unwrap().memory_mib = 48 * 1024;
    offer.plans[0].pricing.reserved.as_mut().unwrap().price = Credits::whole(15);
    let f = fluidos::flavor_from_offer(&offer).unwrap();
    assert_eq!(
        f["spec"]["flavorType"]["typeData"]["characteristics"]["memory"],
        "48Gi"
    );
    assert_eq!(f["spec"]["price"]["amount"], "15");
}

#[test]
fn flavors_mercato_cannot_price_are_refused_clearly() {
    let mut f = k8slice_flavor();
    f["spec"]["price"]["currency"] = json!("EUR");
    let err = fluidos::offer_from_flavor(&f, &did()).unwrap_err();
    assert!(err.to_string().contains("spec.price.currency"), "{err}");
    let mut f = k8slice_flavor();
    f["spec"]["price"]["period"] = json!("sometimes");
    assert!(fluidos::offer_from_flavor(&f, &did())
        .unwrap_err()
        .to_string()
        .contains("spec.price.period"));
    let mut f = k8slice_flavor();
    f["spec"]["flavorType"]["typeData"]["characteristics"]["cpu"] = json!("lots");
    assert!(fluidos::offer_from_flavor(&f, &did())
        .unwrap_err()
        .to_string()
        .contains("characteristics.cpu"));
    let mut f = k8slice_flavor();
    f["spec"]["flavorType"]["typeIdentifier"] = json!("Quantum");
    assert!(matches!(
        fluidos::offer_from_flavor(&f, &did()),
        Err(FlavorError::UnknownType(_))
    ));
}
