//! schemathesis (from PyPI, installed by `make tools`) against the OpenAPI
//! document the gateway serves, with every service running: generated and
//! boundary requests for every operation, as an admin, a customer and
//! anonymously. It fails on any 5xx, on an answer whose status, content
//! type or body the document does not allow, on a route answering without
//! the token it documents as needed, and on a 405 without `Allow`. One worker: Python 3.11's
//! `ast.parse`, which hypothesis calls, is not safe across threads.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::app::TestApp;

/// What schemathesis checks. Not `positive_data_acceptance`: the proto
/// carries no validation rules, so the document cannot say which values a
/// service refuses (an empty name, a negative page size), and such
/// refusals are correct 400s. Not `negative_data_rejection`: the proto3
/// JSON mapping deliberately accepts more on input than the document's
/// (output-shaped) schemas describe: `null` for a default, enum numbers,
/// int64 as numbers, snake_case names.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,response_headers_conformance,unsupported_method,ignored_auth,\
    missing_required_header";

/// Where the schemathesis binary is: `SCHEMATHESIS_BIN` (set by `make
/// test`), else the one `make tools` installs.
fn schemathesis_bin() -> PathBuf {
    std::env::var_os("SCHEMATHESIS_BIN").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.tools/schemathesis/bin/schemathesis")
        },
        PathBuf::from,
    )
}

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_off_schema_answers() {
    let bin = schemathesis_bin();
    assert!(
        bin.is_file(),
        "schemathesis is not installed at {}: run `make tools`",
        bin.display()
    );
    let app = TestApp::spawn_full().await;
    // Some data to find: a stocked product, a paid order with a shipment.
    let admin = app.admin_user().await;
    let (customer, order_id) = app.customer_with_order(&admin, "fuzz@example.com").await;
    let order = app
        .get(
            &format!("/v1/order/orders/{order_id}"),
            Some(&customer.token),
        )
        .await
        .json["order"]
        .clone();
    let id_of = |field: &str| order[field].as_str().unwrap().to_owned();
    let product = order["items"][0]["productId"].as_str().unwrap().to_owned();

    // schemathesis keeps a cache in its working directory: a fresh one per
    // run, under the target directory. Its configuration there makes half
    // of the generated path ids real ones, so requests reach the services'
    // logic and not only their 404s.
    let workdir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    drop(std::fs::remove_dir_all(&workdir));
    std::fs::create_dir_all(&workdir).unwrap();
    let known = [
        ("order_id", vec![order_id.clone()]),
        ("shipment_id", vec![id_of("shipmentId")]),
        ("transaction_id", vec![id_of("transactionId")]),
        ("reservation_id", vec![id_of("reservationId")]),
        ("product_id", vec![product.clone()]),
        ("customer_id", vec![customer.id.clone()]),
        ("id", vec![customer.id.clone(), product]),
    ];
    let mut config = String::from("[dictionaries]\n");
    for (name, values) in &known {
        config += &format!("{name} = {{ values = {values:?} }}\n");
    }
    config += "\n[parameters]\n";
    for (name, _) in &known {
        config += &format!("\"path.{name}\" = {{ dictionary = \"{name}\", probability = 0.5 }}\n");
    }
    let config_file = workdir.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let started = Instant::now();
    let url = format!("http://{}/openapi.json", app.addr);
    for (who, token) in [
        ("admin", Some(admin.token.as_str())),
        ("customer", Some(customer.token.as_str())),
        ("anonymous", None),
    ] {
        let mut command = tokio::process::Command::new(&bin);
        command
            .arg("--config-file")
            .arg(&config_file)
            .args(["run", &url])
            .args(["--checks", CHECKS])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--max-examples",
                "12",
                "--seed",
                "20261125",
                "--workers",
                "1",
            ])
            .args(["--request-timeout", "15"])
            .current_dir(&workdir)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.args(["--header", &format!("Authorization: Bearer {token}")]);
        }
        let output = tokio::time::timeout(Duration::from_secs(150), command.output())
            .await
            .unwrap_or_else(|_| panic!("schemathesis as {who} took over 150 s"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis as {who} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        // It really ran: operations were tested.
        assert!(stdout.contains("passed"), "{stdout}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "schemathesis took {:?}",
        started.elapsed()
    );
    app.stop().await;
}
