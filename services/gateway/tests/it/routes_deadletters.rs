//! The dead-letter routes through the gateway: admin only; a list, one
//! letter with its event, a replay (to a reactor, and refused for a
//! projection's letter), and a discard.

use serde_json::json;

use crate::app::{TestApp, violated_fields};

#[tokio::test]
async fn dead_letter_routes_list_show_replay_and_discard() {
    let app = TestApp::spawn_full().await;
    let admin = app.admin_user().await;
    let customer = app.register("dora@example.com").await;
    let product = app.stocked_product(&admin, 250, 3).await;
    // The product's creation (PRODUCT sequence 1), given up on by a
    // projection and by a reactor.
    app.file_dead_letter("product-catalogue", "PRODUCT", 1)
        .await;
    app.file_dead_letter(stocklet_warehouse::PRODUCT_CONSUMER, "PRODUCT", 1)
        .await;

    let list = "/v1/order/deadletters";
    assert_eq!(app.get(list, None).await.status, 401);
    assert_eq!(app.get(list, Some(&customer.token)).await.status, 403);
    let listed = app.get(list, Some(&admin.token)).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let letters = listed.json["deadLetters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2, "{listed:?}");
    assert_eq!(letters[0]["consumer"], "product-catalogue");
    assert_eq!(letters[0]["eventType"], "stocklet.events.v1.ProductCreated");
    assert_eq!(letters[0]["stream"], "PRODUCT");
    assert_eq!(letters[0]["streamSequence"], "1");
    let projections = letters[0]["sequence"].as_str().unwrap().to_owned();
    let reactors = letters[1]["sequence"].as_str().unwrap().to_owned();
    let paged = app
        .get(&format!("{list}?pageSize=1"), Some(&admin.token))
        .await;
    assert_eq!(paged.json["deadLetters"].as_array().unwrap().len(), 1);
    let next = paged.json["nextPageToken"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("{list}?pageSize=1&pageToken={next}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(second.json["deadLetters"][0]["sequence"], json!(reactors));
    let bad_token = app
        .get(&format!("{list}?pageToken=zz"), Some(&admin.token))
        .await;
    assert_eq!(bad_token.status, 400, "{bad_token:?}");

    let one = app
        .get(
            &format!("/v1/order/deadletter/{projections}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(one.status, 200, "{one:?}");
    let event: serde_json::Value =
        serde_json::from_str(one.json["eventJson"].as_str().unwrap()).unwrap();
    assert_eq!(event["productId"], json!(product), "{event}");
    for (path, status) in [
        ("/v1/order/deadletter/999", 404),
        ("/v1/order/deadletters/replay", 405),
    ] {
        assert_eq!(
            app.get(path, Some(&admin.token)).await.status,
            status,
            "{path}"
        );
    }
    // Not a sequence: no such letter, or a bad one, never a server error.
    let nonsense = app
        .get("/v1/order/deadletter/abc", Some(&admin.token))
        .await;
    assert!(matches!(nonsense.status, 400 | 404), "{nonsense:?}");

    // A projection's letter cannot be replayed; nothing named is a 400.
    let replay = "/v1/order/deadletters/replay";
    let refused = app
        .post(
            replay,
            Some(&admin.token),
            &json!({"sequences": [projections]}),
        )
        .await;
    assert_eq!(refused.status, 412, "{refused:?}");
    let empty = app.post(replay, Some(&admin.token), &json!({})).await;
    assert_eq!(empty.status, 400, "{empty:?}");
    assert_eq!(violated_fields(&empty.json), ["sequences"]);
    let by_customer = app
        .post(
            replay,
            Some(&customer.token),
            &json!({"sequences": [reactors]}),
        )
        .await;
    assert_eq!(by_customer.status, 403);
    // A reactor's letter goes back to it: opening the stock again is a no-op.
    let replayed = app
        .post(
            replay,
            Some(&admin.token),
            &json!({"sequences": [reactors]}),
        )
        .await;
    assert_eq!(replayed.status, 200, "{replayed:?}");
    assert_eq!(
        replayed.json["replayed"][0]["consumer"],
        stocklet_warehouse::PRODUCT_CONSUMER
    );

    let discarded = app
        .post(
            "/v1/order/deadletters/discard",
            Some(&admin.token),
            &json!({"consumer": "product-catalogue", "all": true}),
        )
        .await;
    assert_eq!(discarded.status, 200, "{discarded:?}");
    assert_eq!(discarded.json["discarded"], json!([projections]));
    let left = app
        .eventually(list, Some(&admin.token), |answer| {
            answer.json["deadLetters"]
                .as_array()
                .is_none_or(|letters| letters.is_empty())
        })
        .await;
    assert_eq!(left.status, 200);
    let stock = app
        .get(
            &format!("/v1/warehouse/product/{product}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(stock.json["stock"]["onHand"], "3", "{stock:?}");
    app.stop().await;
}
