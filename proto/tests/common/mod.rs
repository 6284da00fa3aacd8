//! Reads the `(google.api.http)` options out of
//! `stocklet_proto::FILE_DESCRIPTOR_SET`.
//!
//! `prost_types::MethodOptions` drops extension fields when it decodes, so
//! these minimal mirrors of the descriptor messages declare the extension
//! (field 72295728 of `MethodOptions`) as a field of their own and decode it
//! into the generated `google.api.HttpRule`, the way a REST gateway would.

use prost::Message as _;
use stocklet_proto::google::api::{HttpRule, http_rule::Pattern};

/// `google.protobuf.FileDescriptorSet`, only the files.
#[derive(Clone, PartialEq, prost::Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<File>,
}

/// `google.protobuf.FileDescriptorProto`, only the package and services.
#[derive(Clone, PartialEq, prost::Message)]
struct File {
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "6")]
    service: Vec<Service>,
}

/// `google.protobuf.ServiceDescriptorProto`, only the name and methods.
#[derive(Clone, PartialEq, prost::Message)]
struct Service {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<Method>,
}

/// `google.protobuf.MethodDescriptorProto`, only the name and options.
#[derive(Clone, PartialEq, prost::Message)]
struct Method {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "4")]
    options: Option<MethodOptions>,
}

/// `google.protobuf.MethodOptions`, only the `google.api.http` extension.
#[derive(Clone, PartialEq, prost::Message)]
struct MethodOptions {
    #[prost(message, optional, tag = "72295728")]
    http: Option<HttpRule>,
}

/// One RPC method and its HTTP rule, if it has one.
pub struct Route {
    /// The service's full name, for example `stocklet.order.v1.OrderService`.
    pub service: String,
    /// The method's name, for example `PlaceOrder`.
    pub method: String,
    /// The method's `(google.api.http)` option.
    pub rule: Option<HttpRule>,
}

/// Every method of every service in the descriptor set.
pub fn routes() -> Vec<Route> {
    let set = FileSet::decode(stocklet_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut routes = Vec::new();
    for file in set.file {
        for service in file.service {
            for method in service.method {
                routes.push(Route {
                    service: format!("{}.{}", file.package, service.name),
                    method: method.name,
                    rule: method.options.and_then(|options| options.http),
                });
            }
        }
    }
    routes
}

/// The HTTP rule of one method; panics when the method or its rule is missing.
pub fn rule(service: &str, method: &str) -> HttpRule {
    routes()
        .into_iter()
        .find(|route| route.service == service && route.method == method)
        .unwrap_or_else(|| panic!("{service}/{method} is in the descriptor set"))
        .rule
        .unwrap_or_else(|| panic!("{service}/{method} has a google.api.http option"))
}

/// The verb and path of a rule, for example `("POST", "/v1/order/place")`.
pub fn verb_and_path(rule: &HttpRule) -> (&'static str, String) {
    match rule.pattern.as_ref() {
        Some(Pattern::Get(path)) => ("GET", path.clone()),
        Some(Pattern::Put(path)) => ("PUT", path.clone()),
        Some(Pattern::Post(path)) => ("POST", path.clone()),
        Some(Pattern::Delete(path)) => ("DELETE", path.clone()),
        Some(Pattern::Patch(path)) => ("PATCH", path.clone()),
        Some(Pattern::Custom(custom)) => ("CUSTOM", custom.path.clone()),
        None => ("NONE", String::new()),
    }
}
