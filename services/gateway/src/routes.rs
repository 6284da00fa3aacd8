//! The REST route table, read from the `(google.api.http)` annotations in
//! [`stocklet_proto::FILE_DESCRIPTOR_SET`].
//!
//! The proto is the one source of truth: a method has a REST route exactly
//! when its proto says so, so internal methods (no annotation) cannot be
//! reached from outside, and a route cannot drift from its method. The table
//! is built once at start-up; an annotation this gateway cannot serve (a
//! `{var=**}` wildcard, a nested field path, a custom verb, a non-message
//! body field) stops the start rather than being skipped silently.
//!
//! Matching: a path matches a template segment by segment; when several
//! templates match (`/v1/product/list` and `/v1/product/{id}`), the one with
//! more literal segments wins, as in gRPC-Gateway.

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MethodDescriptor, Value};
use stocklet_proto::google::api::HttpRule;
use stocklet_proto::google::api::http_rule::Pattern;

/// The full name of the HTTP annotation extension.
const HTTP_EXTENSION: &str = "google.api.http";

/// Why the route table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The descriptor set does not decode.
    #[error("descriptor set: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// The `google.api.http` extension is missing from the descriptors.
    #[error("the descriptor set does not define google.api.http")]
    NoHttpExtension,
    /// An annotation this gateway cannot serve.
    #[error("{method}: {reason}")]
    Unsupported {
        /// The method's full name.
        method: String,
        /// What is not supported.
        reason: String,
    },
}

/// Where the request message comes from, besides path variables.
#[derive(Clone, Debug)]
pub enum BodyMapping {
    /// No body; the other fields come from the query string.
    None,
    /// `body: "*"`: the whole message is the body.
    Whole,
    /// `body: "<field>"`: the body is this field, a message or a map.
    Field(FieldDescriptor),
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Must equal this text.
    Literal(String),
    /// Binds one path segment to this top-level field.
    Variable(String),
}

/// One REST route: an HTTP method and path template bound to a gRPC method.
#[derive(Clone, Debug)]
pub struct Route {
    /// The HTTP method.
    pub http_method: http::Method,
    /// The template as written in the proto, for example
    /// `/v1/product/{id}`.
    pub template: String,
    /// The template's segments.
    pub segments: Vec<Segment>,
    /// How the body maps onto the request message.
    pub body: BodyMapping,
    /// The gRPC method.
    pub method: MethodDescriptor,
    /// The backend that serves it: `product` for `stocklet.product.v1`.
    pub backend: String,
}

impl Route {
    /// The fields bound by path variables.
    pub fn path_fields(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Variable(field) => Some(field.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The gRPC method's full name, `stocklet.order.v1.OrderService.PlaceOrder`.
    pub fn full_name(&self) -> &str {
        self.method.full_name()
    }

    fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    fn bind(&self, path: &[&str]) -> Option<Vec<(String, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (segment, given) in self.segments.iter().zip(path) {
            match segment {
                Segment::Literal(text) if text == given => {}
                Segment::Literal(_) => return None,
                Segment::Variable(_) if given.is_empty() => return None,
                Segment::Variable(field) => bound.push((field.clone(), percent_decode(given)?)),
            }
        }
        Some(bound)
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route, with its path variables (field name, decoded value).
    Found(&'a Route, Vec<(String, String)>),
    /// The path exists, but not for this method; these are its methods,
    /// for the `Allow` header.
    MethodNotAllowed(Vec<http::Method>),
    /// No route has this path.
    NotFound,
}

/// Every REST route of the stocklet services.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Reads the routes of every `stocklet.*` service in `pool`.
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, RouteError> {
        let extension = pool
            .get_extension_by_name(HTTP_EXTENSION)
            .ok_or(RouteError::NoHttpExtension)?;
        let mut routes = Vec::new();
        for service in pool.services() {
            let Some(backend) = backend_of(service.package_name()) else {
                continue;
            };
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&extension) {
                    continue;
                }
                let unsupported = |reason: &str| RouteError::Unsupported {
                    method: method.full_name().to_owned(),
                    reason: reason.to_owned(),
                };
                let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
                    return Err(unsupported("the http option is not a message"));
                };
                let rule: HttpRule = rule
                    .transcode_to()
                    .map_err(|e| unsupported(&format!("bad HttpRule: {e}")))?;
                if method.is_client_streaming() || method.is_server_streaming() {
                    return Err(unsupported("streaming methods cannot be transcoded"));
                }
                for binding in std::iter::once(&rule).chain(&rule.additional_bindings) {
                    routes.push(route_of(&method, &backend, binding).map_err(|r| unsupported(&r))?);
                }
            }
        }
        Ok(Self { routes })
    }

    /// Every route, in descriptor order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for `method` and `path`.
    pub fn lookup(&self, method: &http::Method, path: &str) -> Lookup<'_> {
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        let given: Vec<&str> = rest.split('/').collect();
        let mut allowed = Vec::new();
        let mut best: Option<(&Route, Vec<(String, String)>)> = None;
        for route in &self.routes {
            let Some(bound) = route.bind(&given) else {
                continue;
            };
            if route.http_method != method {
                if !allowed.contains(&route.http_method) {
                    allowed.push(route.http_method.clone());
                }
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(b, _)| route.literal_count() > b.literal_count())
            {
                best = Some((route, bound));
            }
        }
        match best {
            Some((route, bound)) => Lookup::Found(route, bound),
            None if !allowed.is_empty() => Lookup::MethodNotAllowed(allowed),
            None => Lookup::NotFound,
        }
    }
}

/// `stocklet.product.v1` → `product`.
fn backend_of(package: &str) -> Option<String> {
    let mut parts = package.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("stocklet"), Some(service), Some(_version), None) if service != "events" => {
            Some(service.to_owned())
        }
        _ => None,
    }
}

fn route_of(method: &MethodDescriptor, backend: &str, rule: &HttpRule) -> Result<Route, String> {
    let (http_method, template) = match &rule.pattern {
        Some(Pattern::Get(t)) => (http::Method::GET, t),
        Some(Pattern::Post(t)) => (http::Method::POST, t),
        Some(Pattern::Put(t)) => (http::Method::PUT, t),
        Some(Pattern::Patch(t)) => (http::Method::PATCH, t),
        Some(Pattern::Delete(t)) => (http::Method::DELETE, t),
        Some(Pattern::Custom(_)) => return Err("custom HTTP methods are not supported".into()),
        None => return Err("the http rule has no pattern".into()),
    };
    if !rule.response_body.is_empty() {
        return Err("response_body is not supported".into());
    }
    let input = method.input();
    let segments = parse_template(template)?;
    for segment in &segments {
        if let Segment::Variable(field) = segment {
            let Some(desc) = input.get_field_by_name(field) else {
                return Err(format!(
                    "path variable {field} is not a field of the request"
                ));
            };
            if desc.is_list() || desc.is_map() || matches!(desc.kind(), Kind::Message(_)) {
                return Err(format!("path variable {field} must be a scalar field"));
            }
        }
    }
    let body = match rule.body.as_str() {
        "" => BodyMapping::None,
        "*" => BodyMapping::Whole,
        field => {
            let desc = input
                .get_field_by_name(field)
                .ok_or_else(|| format!("body field {field} is not a field of the request"))?;
            let message = !desc.is_list() && matches!(desc.kind(), Kind::Message(_));
            if !message && !desc.is_map() {
                return Err(format!("body field {field} must be a message or map field"));
            }
            BodyMapping::Field(desc)
        }
    };
    Ok(Route {
        http_method,
        template: template.clone(),
        segments,
        body,
        method: method.clone(),
        backend: backend.to_owned(),
    })
}

/// Parses `/v1/product/{id}`; `{id=*}` is the same as `{id}`.
fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let rest = template
        .strip_prefix('/')
        .ok_or_else(|| format!("template {template} must start with /"))?;
    if rest.contains(':') {
        return Err(format!(
            "template {template}: custom verbs are not supported"
        ));
    }
    rest.split('/')
        .map(|segment| {
            if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let field = inner.strip_suffix("=*").unwrap_or(inner);
                if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(format!(
                        "template {template}: only {{field}} variables are supported"
                    ));
                }
                Ok(Segment::Variable(field.to_owned()))
            } else if segment.is_empty() || segment.contains(['{', '}', '*']) {
                Err(format!(
                    "template {template}: unsupported segment {segment:?}"
                ))
            } else {
                Ok(Segment::Literal(segment.to_owned()))
            }
        })
        .collect()
}

/// Decodes `%XX` escapes; `None` for a bad escape or invalid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        RouteTable::from_pool(&pool).unwrap()
    }

    fn found(
        table: &RouteTable,
        method: http::Method,
        path: &str,
    ) -> (String, Vec<(String, String)>) {
        match table.lookup(&method, path) {
            Lookup::Found(route, bound) => (route.full_name().to_owned(), bound),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn the_originals_routes_come_from_the_proto() {
        let table = table();
        let cases = [
            (
                http::Method::GET,
                "/v1/auth/jwks",
                "stocklet.auth.v1.AuthService.GetJwks",
            ),
            (
                http::Method::POST,
                "/v1/auth/login",
                "stocklet.auth.v1.AuthService.LoginPassword",
            ),
            (
                http::Method::POST,
                "/v1/user/register",
                "stocklet.user.v1.UserService.RegisterUser",
            ),
            (
                http::Method::GET,
                "/v1/product/list",
                "stocklet.product.v1.ProductService.ViewProducts",
            ),
            (
                http::Method::GET,
                "/v1/product/p1",
                "stocklet.product.v1.ProductService.ViewProduct",
            ),
            (
                http::Method::POST,
                "/v1/order/place",
                "stocklet.order.v1.OrderService.PlaceOrder",
            ),
            (
                http::Method::GET,
                "/v1/order/list",
                "stocklet.order.v1.OrderService.ViewOrders",
            ),
            (
                http::Method::GET,
                "/v1/shipping/shipment/s1/manifest",
                "stocklet.shipping.v1.ShippingService.ViewShipmentManifest",
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(found(&table, method, path).0, expected, "{path}");
        }
    }

    #[test]
    fn path_variables_are_bound_and_decoded() {
        let (_, bound) = found(&table(), http::Method::GET, "/v1/product/a%20b");
        assert_eq!(bound, [("id".to_owned(), "a b".to_owned())]);
    }

    #[test]
    fn literal_routes_beat_variables_and_methods_are_checked() {
        let table = table();
        assert_eq!(
            found(&table, http::Method::GET, "/v1/product/service").0,
            "stocklet.product.v1.ProductService.GetServiceInfo"
        );
        assert!(matches!(
            table.lookup(&http::Method::POST, "/v1/product/p1/price"),
            Lookup::MethodNotAllowed(allowed) if allowed == [http::Method::PUT]
        ));
        // `/v1/product/list` is also `/v1/product/{id}`: GET, PATCH, DELETE.
        let Lookup::MethodNotAllowed(mut allowed) =
            table.lookup(&http::Method::PUT, "/v1/product/list")
        else {
            panic!("PUT /v1/product/list is a route");
        };
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(
            allowed,
            [http::Method::DELETE, http::Method::GET, http::Method::PATCH]
        );
        assert!(matches!(
            table.lookup(&http::Method::GET, "/v1/nothing"),
            Lookup::NotFound
        ));
        assert!(matches!(
            table.lookup(&http::Method::GET, "/v1/product/"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn place_order_takes_the_cart_as_its_body() {
        let table = table();
        let Lookup::Found(route, _) = table.lookup(&http::Method::POST, "/v1/order/place") else {
            panic!("no place route");
        };
        assert!(matches!(&route.body, BodyMapping::Field(f) if f.name() == "items"));
        assert_eq!(route.backend, "order");
        // The additional binding is a route of the same method.
        let Lookup::Found(wrapped, _) = table.lookup(&http::Method::POST, "/v1/order/orders")
        else {
            panic!("no orders route");
        };
        assert!(matches!(&wrapped.body, BodyMapping::Field(f) if f.name() == "cart"));
        assert_eq!(wrapped.full_name(), route.full_name());
    }

    #[test]
    fn templates_outside_the_supported_subset_are_refused() {
        assert!(parse_template("/v1/{name=**}").is_err());
        assert!(parse_template("/v1/x:verb").is_err());
        assert!(parse_template("v1/x").is_err());
        assert_eq!(
            parse_template("/v1/{id=*}/x").unwrap(),
            [
                Segment::Literal("v1".into()),
                Segment::Variable("id".into()),
                Segment::Literal("x".into())
            ]
        );
    }
}
