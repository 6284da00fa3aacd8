//! Every payment route through the gateway: balances, credits and
//! transactions, with their error statuses.

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn payment_routes_show_balances_credits_and_transactions() {
    let app = TestApp::spawn_full().await;
    let info = app.get("/v1/payment/service", None).await;
    assert_eq!(info.status, 200, "{info:?}");
    let admin = app.admin_user().await;
    let ann = app.register("ann@example.com").await;

    // A new user's balance opens at zero.
    let path = format!("/v1/payment/balance/{}", ann.id);
    let balance = app
        .eventually(&path, Some(&ann.token), |a| a.status == 200)
        .await;
    assert_eq!(balance.json["balance"]["customerId"], ann.id.as_str());
    assert_eq!(balance.json["balance"]["balanceCents"], "0");
    assert_eq!(app.get(&path, None).await.status, 401);
    let ghost = app
        .get(
            "/v1/payment/balance/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(ghost.status, 404, "{ghost:?}");
    let malformed = app
        .get("/v1/payment/balance/not.an.id", Some(&admin.token))
        .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(violated_fields(&malformed.json), ["customer_id"]);

    // Credits: admin only, positive amounts.
    let credit_path = format!("{path}/credit");
    let credited = app.credit(&admin, &ann, 2_500).await;
    assert_eq!(credited.json["balance"]["balanceCents"], "2500");
    let transaction = &credited.json["transaction"];
    assert_eq!(transaction["kind"], "TRANSACTION_KIND_CREDIT");
    assert_eq!(transaction["amountCents"], "2500");
    for amount in [json!("0"), json!(-5)] {
        let refused = app
            .post(
                &credit_path,
                Some(&admin.token),
                &json!({"amountCents": amount}),
            )
            .await;
        assert_eq!(refused.status, 400, "{amount}: {refused:?}");
        assert_eq!(violated_fields(&refused.json), ["amount_cents"]);
    }
    let by_customer = app
        .post(
            &credit_path,
            Some(&ann.token),
            &json!({"amountCents": "1000000"}),
        )
        .await;
    assert_eq!(by_customer.status, 403, "{by_customer:?}");
    let anonymous = app
        .post(&credit_path, None, &json!({"amountCents": "1"}))
        .await;
    assert_eq!(anonymous.status, 401);
    let to_nobody = app
        .post(
            "/v1/payment/balance/0192f0c1-0000-7000-8000-00000000dead/credit",
            Some(&admin.token),
            &json!({"amountCents": "1"}),
        )
        .await;
    assert_eq!(to_nobody.status, 404, "{to_nobody:?}");
    let balance = app
        .eventually(&path, Some(&ann.token), |a| {
            a.json["balance"]["balanceCents"] == "2500"
        })
        .await;
    assert_eq!(balance.status, 200);

    // One transaction, and the list of them.
    let id = transaction["id"].as_str().unwrap();
    let one = app
        .eventually(
            &format!("/v1/payment/transaction/{id}"),
            Some(&ann.token),
            |a| a.status == 200,
        )
        .await;
    assert_eq!(one.json["transaction"]["customerId"], ann.id.as_str());
    let unknown = app
        .get(
            "/v1/payment/transaction/0192f0c1-0000-7000-8000-00000000dead",
            Some(&admin.token),
        )
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let listed = app
        .eventually("/v1/payment/transactions", Some(&ann.token), |a| {
            a.json["transactions"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        })
        .await;
    assert_eq!(listed.json["transactions"][0]["id"], id);
    let admins = app
        .get(
            &format!("/v1/payment/transactions?customerId={}", ann.id),
            Some(&admin.token),
        )
        .await;
    assert_eq!(admins.status, 200, "{admins:?}");
    assert_eq!(admins.json["transactions"][0]["id"], id);
    let bad_page = app
        .get(
            "/v1/payment/transactions?pageToken=%21%21",
            Some(&ann.token),
        )
        .await;
    assert_eq!(bad_page.status, 400, "{bad_page:?}");
    assert_eq!(app.get("/v1/payment/transactions", None).await.status, 401);

    // An order pays from the balance.
    let product = app.stocked_product(&admin, 1_000, 3).await;
    let order = app.settled_order(&ann, &product, 1).await;
    assert_eq!(order["status"], "ORDER_STATUS_APPROVED", "{order}");
    let total: i64 = order["totalCents"].as_str().unwrap().parse().unwrap();
    let left = (2_500 - total).to_string();
    let after = app
        .eventually(&path, Some(&ann.token), |a| {
            a.json["balance"]["balanceCents"] == left.as_str()
        })
        .await;
    assert_eq!(after.status, 200);
    let payment = app
        .eventually(
            &format!(
                "/v1/payment/transaction/{}",
                order["transactionId"].as_str().unwrap()
            ),
            Some(&ann.token),
            |a| a.status == 200,
        )
        .await;
    assert_eq!(
        payment.json["transaction"]["kind"],
        "TRANSACTION_KIND_PAYMENT"
    );
    app.stop().await;
}
