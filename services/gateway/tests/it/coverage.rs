//! Every route the gateway serves is exercised through the gateway: this
//! list names, for each proto method with a `google.api.http` route, the
//! test module that covers its happy path and error statuses. A route added
//! to the proto without a test fails here.

use prost_reflect::DescriptorPool;
use stocklet_gateway::routes::RouteTable;

const COVERED: &[(&str, &str)] = &[
    ("stocklet.auth.v1.AuthService.GetServiceInfo", "routes_auth"),
    ("stocklet.auth.v1.AuthService.GetJwks", "routes_auth"),
    ("stocklet.auth.v1.AuthService.LoginPassword", "routes_auth"),
    ("stocklet.auth.v1.AuthService.SetPassword", "routes_auth"),
    ("stocklet.user.v1.UserService.GetServiceInfo", "routes_user"),
    ("stocklet.user.v1.UserService.ViewUser", "routes_user"),
    ("stocklet.user.v1.UserService.ListUsers", "routes_user"),
    ("stocklet.user.v1.UserService.RegisterUser", "routes_user"),
    (
        "stocklet.user.v1.UserService.UpdateUserEmail",
        "routes_user",
    ),
    ("stocklet.user.v1.UserService.DeleteUser", "routes_user"),
    ("stocklet.product.v1.ProductService.GetServiceInfo", "app"),
    ("stocklet.product.v1.ProductService.ViewProduct", "routing"),
    ("stocklet.product.v1.ProductService.ViewProducts", "routing"),
    (
        "stocklet.product.v1.ProductService.CreateProduct",
        "routing",
    ),
    (
        "stocklet.product.v1.ProductService.UpdateProductPrice",
        "routing",
    ),
    (
        "stocklet.product.v1.ProductService.UpdateProductDetails",
        "routes_product",
    ),
    (
        "stocklet.product.v1.ProductService.DeleteProduct",
        "routes_product",
    ),
    (
        "stocklet.warehouse.v1.WarehouseService.GetServiceInfo",
        "routes_warehouse",
    ),
    (
        "stocklet.warehouse.v1.WarehouseService.ViewProductStock",
        "routes_warehouse",
    ),
    (
        "stocklet.warehouse.v1.WarehouseService.ViewReservation",
        "routes_warehouse",
    ),
    (
        "stocklet.warehouse.v1.WarehouseService.AddStock",
        "routes_warehouse",
    ),
    (
        "stocklet.warehouse.v1.WarehouseService.RemoveStock",
        "routes_warehouse",
    ),
    ("stocklet.order.v1.OrderService.GetServiceInfo", "app"),
    ("stocklet.order.v1.OrderService.ViewOrder", "routes_order"),
    ("stocklet.order.v1.OrderService.ViewOrders", "routes_order"),
    ("stocklet.order.v1.OrderService.PlaceOrder", "routes_order"),
    ("stocklet.order.v1.OrderService.CancelOrder", "routes_order"),
    (
        "stocklet.order.v1.OrderService.ViewOrderTimeline",
        "routes_order",
    ),
    (
        "stocklet.order.v1.OrderService.ListStuckSagas",
        "routes_order",
    ),
    (
        "stocklet.order.v1.DeadLetterService.ListDeadLetters",
        "routes_deadletters",
    ),
    (
        "stocklet.order.v1.DeadLetterService.ViewDeadLetter",
        "routes_deadletters",
    ),
    (
        "stocklet.order.v1.DeadLetterService.ReplayDeadLetters",
        "routes_deadletters",
    ),
    (
        "stocklet.order.v1.DeadLetterService.DiscardDeadLetters",
        "routes_deadletters",
    ),
    (
        "stocklet.payment.v1.PaymentService.GetServiceInfo",
        "routes_payment",
    ),
    (
        "stocklet.payment.v1.PaymentService.ViewBalance",
        "routes_payment",
    ),
    (
        "stocklet.payment.v1.PaymentService.CreditBalance",
        "routes_payment",
    ),
    (
        "stocklet.payment.v1.PaymentService.ViewTransaction",
        "routes_payment",
    ),
    (
        "stocklet.payment.v1.PaymentService.ViewTransactions",
        "routes_payment",
    ),
    (
        "stocklet.shipping.v1.ShippingService.GetServiceInfo",
        "routes_shipping",
    ),
    (
        "stocklet.shipping.v1.ShippingService.ViewShipment",
        "routes_shipping",
    ),
    (
        "stocklet.shipping.v1.ShippingService.ViewShipmentManifest",
        "routes_shipping",
    ),
    (
        "stocklet.shipping.v1.ShippingService.ViewShipments",
        "routes_shipping",
    ),
    (
        "stocklet.shipping.v1.ShippingService.DispatchShipment",
        "routes_shipping",
    ),
];

#[test]
fn every_served_route_has_a_test_through_the_gateway() {
    let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
    let table = RouteTable::from_pool(&pool).unwrap();
    let mut served: Vec<&str> = table.routes().iter().map(|r| r.full_name()).collect();
    served.sort_unstable();
    served.dedup();
    let mut covered: Vec<&str> = COVERED.iter().map(|(method, _)| *method).collect();
    covered.sort_unstable();
    assert_eq!(
        served, covered,
        "a route without a test, or a test of no route"
    );
}
