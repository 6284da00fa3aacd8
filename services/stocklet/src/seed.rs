//! Demo data for `make run`: an admin, two customers with balances and a
//! small catalogue with stock, so a newcomer can log in and order at once.
//!
//! Seeding is on when `STOCKLET_SEED=true` (off by default, so a production
//! start never invents accounts). It goes through the services' own gRPC
//! APIs, as an admin with the internal token, exactly as the gateway would:
//! the data is made of ordinary events, and no service needs a back door.
//!
//! Every step looks before it writes, so a second start adds nothing:
//! - the admin is the auth service's start-up account
//!   (`STOCKLET_ADMIN_EMAIL`/`STOCKLET_ADMIN_PASSWORD`, defaulting to
//!   [`DEMO_ADMIN_EMAIL`]/[`DEMO_ADMIN_PASSWORD`] when seeding), which auth
//!   already creates idempotently;
//! - products are found by name before one is created;
//! - a product's stock is added only while it has none at all (so a crash
//!   between creating a product and stocking it heals on the next start; a
//!   sold-out demo product is restocked, which suits a demo);
//! - customers are found by email before one registers;
//! - a customer's balance is credited only if it never had a credit.
//!
//! The credentials are for demos only and are printed in the README.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stocklet_proto::stocklet::payment::v1 as payment;
use stocklet_proto::stocklet::payment::v1::payment_service_client::PaymentServiceClient;
use stocklet_proto::stocklet::product::v1 as product;
use stocklet_proto::stocklet::product::v1::product_service_client::ProductServiceClient;
use stocklet_proto::stocklet::user::v1 as user;
use stocklet_proto::stocklet::user::v1::user_service_client::UserServiceClient;
use stocklet_proto::stocklet::warehouse::v1 as warehouse;
use stocklet_proto::stocklet::warehouse::v1::warehouse_service_client::WarehouseServiceClient;
use stocklet_service_kit::config::{env_or, env_parse};
use stocklet_service_kit::{ConfigError, Identity, Secret};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// The admin account created when seeding and `STOCKLET_ADMIN_EMAIL` is unset.
pub const DEMO_ADMIN_EMAIL: &str = "admin@example.com";
/// Its password (demo only).
pub const DEMO_ADMIN_PASSWORD: &str = "stocklet-admin";

/// A demo customer: (first name, last name, email, password, balance in cents).
pub const CUSTOMERS: [(&str, &str, &str, &str, i64); 2] = [
    (
        "Ada",
        "Lovelace",
        "ada@example.com",
        "stocklet-ada",
        100_000,
    ),
    (
        "Grace",
        "Hopper",
        "grace@example.com",
        "stocklet-grace",
        50_000,
    ),
];

/// A demo product: (name, description, price in cents, units on hand).
pub const CATALOGUE: [(&str, &str, i64, i64); 4] = [
    ("Espresso cup", "Porcelain, 80 ml, white", 1_250, 120),
    (
        "Pour-over kettle",
        "Stainless steel gooseneck, 1 l",
        4_999,
        30,
    ),
    (
        "Coffee beans",
        "Single origin, 250 g, medium roast",
        1_490,
        200,
    ),
    ("Hand grinder", "Ceramic burrs, adjustable", 3_900, 15),
];

/// How long one call may keep failing for a transient reason (a service
/// still provisioning, a reactor that has not seen an event yet).
const PATIENCE: Duration = Duration::from_secs(120);

/// Whether to seed, from `STOCKLET_SEED` (default `false`).
pub fn enabled() -> Result<bool, ConfigError> {
    env_parse("STOCKLET_SEED", false)
}

/// The demo admin for the auth service's start-up account, unless
/// `STOCKLET_ADMIN_EMAIL`/`STOCKLET_ADMIN_PASSWORD` name one already.
pub fn demo_admin() -> stocklet_auth::AdminAccount {
    stocklet_auth::AdminAccount {
        email: DEMO_ADMIN_EMAIL.to_owned(),
        password: Secret::new(DEMO_ADMIN_PASSWORD),
    }
}

/// Where the seeded services listen.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The user service.
    pub user: SocketAddr,
    /// The product service.
    pub product: SocketAddr,
    /// The warehouse service.
    pub warehouse: SocketAddr,
    /// The payment service.
    pub payment: SocketAddr,
}

/// What one seeding run changed; all zero on a second start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Products created.
    pub products_created: usize,
    /// Products whose empty stock was filled.
    pub products_stocked: usize,
    /// Customers registered.
    pub customers_registered: usize,
    /// Balances credited.
    pub balances_credited: usize,
}

/// Why seeding stopped.
#[derive(Debug)]
pub enum SeedError {
    /// An address does not make a valid URI.
    Endpoint(String),
    /// A call failed for good.
    Call(String, Status),
    /// A response lacked what it must carry.
    Missing(&'static str),
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Endpoint(addr) => write!(f, "invalid service address {addr}"),
            Self::Missing(what) => write!(f, "no id for {what}"),
            Self::Call(what, status) => {
                write!(f, "{what}: {:?}: {}", status.code(), status.message())
            }
        }
    }
}

/// The caller of every seed request: the admin, with the internal token.
struct Caller {
    identity: Identity,
    token: Secret,
}

impl Caller {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.identity
            .write_metadata(request.metadata_mut(), &self.token);
        request
    }
}

/// A channel that connects on first use, so seeding may start while the
/// services are still provisioning.
fn channel(addr: SocketAddr) -> Result<Channel, SeedError> {
    // A wildcard listen address is reached on loopback.
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    Endpoint::from_shared(format!("http://{addr}"))
        .map(|endpoint| endpoint.connect_lazy())
        .map_err(|_| SeedError::Endpoint(addr.to_string()))
}

/// Awaits the call expression `$call` (evaluated anew each attempt) until it
/// succeeds, retrying `Unavailable` (a service not serving yet) and the codes
/// in `$transient`, for at most [`PATIENCE`]; gives the response message or
/// a [`SeedError`]. A macro, not a function taking a closure, so that the
/// futures stay `Send` without naming every client's lifetime.
macro_rules! patiently {
    ($what:expr, $transient:expr, $call:expr) => {{
        let deadline = Instant::now() + PATIENCE;
        let transient: &[Code] = $transient;
        loop {
            match $call.await {
                Ok(response) => break Ok(response.into_inner()),
                Err(status)
                    if (status.code() == Code::Unavailable
                        || transient.contains(&status.code()))
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => break Err(SeedError::Call($what.to_owned(), status)),
            }
        }
    }};
}

/// Seeds the demo data through the services at `endpoints`, as the admin
/// `admin_email` (the auth service's start-up account).
pub async fn run(endpoints: &Endpoints, admin_email: &str) -> Result<Seeded, SeedError> {
    let caller = Caller {
        identity: Identity::admin(stocklet_auth::admin_user_id(admin_email)),
        // The services refused to start without it, so it is set here.
        token: Secret::new(env_or("STOCKLET_INTERNAL_TOKEN", "")),
    };
    let mut seeded = Seeded::default();
    seed_catalogue(&caller, endpoints, &mut seeded).await?;
    seed_customers(&caller, endpoints, &mut seeded).await?;
    Ok(seeded)
}

/// Creates the missing products and stocks the empty ones.
async fn seed_catalogue(
    caller: &Caller,
    endpoints: &Endpoints,
    seeded: &mut Seeded,
) -> Result<(), SeedError> {
    let products = ProductServiceClient::new(channel(endpoints.product)?);
    let stock = WarehouseServiceClient::new(channel(endpoints.warehouse)?);

    let mut existing = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = patiently!(
            "listing products",
            &[],
            products
                .clone()
                .view_products(caller.request(product::ViewProductsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                }))
        )?;
        existing.extend(page.products.into_iter().map(|p| (p.name, p.id)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }

    for (name, description, price_cents, units) in CATALOGUE {
        let id = match existing.get(name) {
            Some(id) => id.clone(),
            None => {
                let created = patiently!(
                    "creating a product",
                    &[],
                    products.clone().create_product(caller.request(
                        product::CreateProductRequest {
                            name: name.to_owned(),
                            description: description.to_owned(),
                            price_cents,
                        }
                    ))
                )?;
                seeded.products_created += 1;
                created
                    .product
                    .map(|p| p.id)
                    .ok_or(SeedError::Missing("the created product"))?
            }
        };
        // The warehouse opens a product's stock when it sees ProductCreated.
        let current = patiently!(
            "viewing stock",
            &[Code::NotFound],
            stock
                .clone()
                .view_product_stock(caller.request(warehouse::ViewProductStockRequest {
                    product_id: id.clone(),
                }))
        )?;
        let empty = current
            .stock
            .is_none_or(|s| s.on_hand == 0 && s.reserved == 0);
        if empty {
            patiently!(
                "adding stock",
                &[Code::NotFound],
                stock
                    .clone()
                    .add_stock(caller.request(warehouse::AddStockRequest {
                        product_id: id.clone(),
                        quantity: units,
                    }))
            )?;
            seeded.products_stocked += 1;
        }
    }
    Ok(())
}

/// Registers the missing customers and credits balances never credited.
async fn seed_customers(
    caller: &Caller,
    endpoints: &Endpoints,
    seeded: &mut Seeded,
) -> Result<(), SeedError> {
    let users = UserServiceClient::new(channel(endpoints.user)?);
    let payments = PaymentServiceClient::new(channel(endpoints.payment)?);

    let mut existing = list_users(caller, &users).await?;
    for (first_name, last_name, email, password, balance_cents) in CUSTOMERS {
        let id = match existing.get(email) {
            Some(id) => id.clone(),
            None => {
                let registered = patiently!(
                    "registering a customer",
                    &[],
                    users
                        .clone()
                        .register_user(Request::new(user::RegisterUserRequest {
                            first_name: first_name.to_owned(),
                            last_name: last_name.to_owned(),
                            email: email.to_owned(),
                            password: password.to_owned(),
                        }))
                );
                match registered {
                    Ok(response) => {
                        seeded.customers_registered += 1;
                        response
                            .user
                            .map(|u| u.id)
                            .ok_or(SeedError::Missing("the registered user"))?
                    }
                    // Registered meanwhile (another start): look it up again.
                    Err(SeedError::Call(_, status)) if status.code() == Code::AlreadyExists => {
                        existing = list_users(caller, &users).await?;
                        existing
                            .get(email)
                            .cloned()
                            .ok_or(SeedError::Missing("an existing customer"))?
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        // The payment service opens the balance when it sees UserRegistered.
        patiently!(
            "viewing a balance",
            &[Code::NotFound],
            payments
                .clone()
                .view_balance(caller.request(payment::ViewBalanceRequest {
                    customer_id: id.clone(),
                }))
        )?;
        if !was_credited(caller, &payments, &id).await? {
            patiently!(
                "crediting a balance",
                &[Code::NotFound],
                payments
                    .clone()
                    .credit_balance(caller.request(payment::CreditBalanceRequest {
                        customer_id: id.clone(),
                        amount_cents: balance_cents,
                    }))
            )?;
            seeded.balances_credited += 1;
        }
    }
    Ok(())
}

/// Every user, by lower-cased email.
async fn list_users(
    caller: &Caller,
    users: &UserServiceClient<Channel>,
) -> Result<HashMap<String, String>, SeedError> {
    let mut existing = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = patiently!(
            "listing users",
            &[],
            users
                .clone()
                .list_users(caller.request(user::ListUsersRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                }))
        )?;
        existing.extend(
            page.users
                .into_iter()
                .map(|u| (u.email.to_ascii_lowercase(), u.id)),
        );
        if page.next_page_token.is_empty() {
            return Ok(existing);
        }
        page_token = page.next_page_token;
    }
}

/// Whether the customer's balance was ever credited.
async fn was_credited(
    caller: &Caller,
    payments: &PaymentServiceClient<Channel>,
    customer_id: &str,
) -> Result<bool, SeedError> {
    let mut page_token = String::new();
    loop {
        let page = patiently!(
            "listing transactions",
            &[],
            payments
                .clone()
                .view_transactions(caller.request(payment::ViewTransactionsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                    customer_id: customer_id.to_owned(),
                }))
        )?;
        if page
            .transactions
            .iter()
            .any(|t| t.kind() == payment::TransactionKind::Credit)
        {
            return Ok(true);
        }
        if page.next_page_token.is_empty() {
            return Ok(false);
        }
        page_token = page.next_page_token;
    }
}
