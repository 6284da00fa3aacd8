//! The payment service's gRPC API: balances and transactions for their
//! customers and for admins, top-ups for admins.
//!
//! Commands load the customer's balance, decide and append through the
//! repository, then wait (bounded) for the ledger projection to reach the
//! new position, so that a query right after a command sees it. Queries
//! read the ledger. A customer asking for another customer's balance or
//! transaction is told it does not exist. Every failure becomes an
//! [`ApiError`] and, through it, a gRPC status in one place.

use std::sync::Arc;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::payment::v1::{self as pb, payment_service_server::PaymentService};
use stocklet_service_kit::{ApiError, CommandApi, Validation};
use tonic::{Request, Response, Status};

use crate::domain::{Balance, BalanceCommand, BalanceError, Cents, MAX_CENTS};
use crate::projections::{BalanceRow, Ledger, TransactionRow};

/// Handles `stocklet.payment.v1.PaymentService`.
#[derive(Clone)]
pub struct PaymentApi {
    core: CommandApi<Balance, Ledger>,
}

impl PaymentApi {
    /// The API over its repository and read model.
    pub fn new(
        balances: Repository<Balance, JetStreamEventStore>,
        ledger: Arc<ProjectionRunner<Ledger>>,
        pool: PgPool,
    ) -> Self {
        let core = CommandApi::new(balances, ledger, pool);
        Self { core }
    }

    /// Runs a command and waits until the ledger shows its effect.
    async fn execute<T>(
        &self,
        request: &Request<T>,
        id: &AggregateId,
        command: BalanceCommand,
    ) -> Result<Balance, ApiError> {
        let context = self.core.context(request);
        self.core.execute(id, &command, &context, rejected).await
    }
}

/// How the balance's business rules surface to clients.
fn rejected(error: BalanceError) -> ApiError {
    match error {
        BalanceError::NotFound | BalanceError::Closed => ApiError::NotFound("balance".into()),
        BalanceError::ZeroAmount => ApiError::invalid("amount_cents", error.to_string()),
        error @ BalanceError::Overflow { .. } => ApiError::FailedPrecondition(error.to_string()),
    }
}

fn balance_row_to_pb(row: BalanceRow) -> pb::Balance {
    pb::Balance {
        customer_id: row.customer_id,
        balance_cents: row.balance_cents,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
    }
}

fn kind_to_pb(kind: &str) -> pb::TransactionKind {
    match kind {
        "payment" => pb::TransactionKind::Payment,
        "credit" => pb::TransactionKind::Credit,
        _ => pb::TransactionKind::Unspecified,
    }
}

fn transaction_row_to_pb(row: TransactionRow) -> pb::Transaction {
    pb::Transaction {
        id: row.id,
        kind: kind_to_pb(&row.kind).into(),
        customer_id: row.customer_id,
        order_id: row.order_id,
        amount_cents: row.amount_cents,
        processed_at_ms: row.processed_at_ms,
        reversed_at_ms: row.reversed_at_ms,
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "payment".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/payment".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_balance(
        &self,
        request: Request<pb::ViewBalanceRequest>,
    ) -> Result<Response<pb::ViewBalanceResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = validation.parse(
            "customer_id",
            AggregateId::parse(request.get_ref().customer_id.as_str()),
        );
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("customer_id", "is required"))?;
        identity.require_owner_or_admin(id.as_str(), "balance")?;
        let row = BalanceRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("balance".into()))?;
        Ok(Response::new(pb::ViewBalanceResponse {
            balance: Some(balance_row_to_pb(row)),
        }))
    }

    async fn credit_balance(
        &self,
        request: Request<pb::CreditBalanceRequest>,
    ) -> Result<Response<pb::CreditBalanceResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let id = validation.parse("customer_id", AggregateId::parse(body.customer_id.as_str()));
        let amount = validation.parse(
            "amount_cents",
            Cents::parse_positive_at_most(body.amount_cents, MAX_CENTS),
        );
        validation.finish()?;
        let (Some(id), Some(amount)) = (id, amount) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let transaction_id = uuid::Uuid::now_v7().to_string();
        let at_ms = es_core::envelope::now_ms();
        let balance = self
            .execute(
                &request,
                &id,
                BalanceCommand::Credit {
                    transaction_id: transaction_id.clone(),
                    amount,
                    at_ms,
                },
            )
            .await?;
        Ok(Response::new(pb::CreditBalanceResponse {
            balance: Some(pb::Balance {
                customer_id: id.to_string(),
                balance_cents: balance.balance_cents(),
                created_at_ms: balance.opened_at_ms(),
                updated_at_ms: at_ms,
            }),
            transaction: Some(pb::Transaction {
                id: transaction_id,
                kind: pb::TransactionKind::Credit.into(),
                customer_id: id.to_string(),
                order_id: String::new(),
                amount_cents: amount.get(),
                processed_at_ms: at_ms,
                reversed_at_ms: 0,
            }),
        }))
    }

    async fn view_transaction(
        &self,
        request: Request<pb::ViewTransactionRequest>,
    ) -> Result<Response<pb::ViewTransactionResponse>, Status> {
        let identity = self.core.identity(&request);
        identity.require_user()?;
        let mut validation = Validation::new();
        let id = validation.parse(
            "transaction_id",
            AggregateId::parse(request.get_ref().transaction_id.as_str()),
        );
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("transaction_id", "is required"))?;
        let row = TransactionRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("transaction".into()))?;
        identity.require_owner_or_admin(&row.customer_id, "transaction")?;
        Ok(Response::new(pb::ViewTransactionResponse {
            transaction: Some(transaction_row_to_pb(row)),
        }))
    }

    async fn view_transactions(
        &self,
        request: Request<pb::ViewTransactionsRequest>,
    ) -> Result<Response<pb::ViewTransactionsResponse>, Status> {
        let identity = self.core.identity(&request);
        let caller = identity.require_user()?.to_owned();
        let body = request.get_ref();
        let mut validation = Validation::new();
        let named = if body.customer_id.is_empty() {
            None
        } else {
            validation.parse("customer_id", AggregateId::parse(body.customer_id.as_str()))
        };
        let page = validation.page(body.page_size, &body.page_token);
        validation.finish()?;
        // Whose: the caller's own, unless an admin names someone.
        let customer_id = match named {
            Some(named) if named.as_str() != caller => {
                identity.require_admin()?;
                named.to_string()
            }
            _ => caller,
        };
        let page = page.ok_or_else(|| ApiError::Internal("validated page missing".into()))?;
        let rows = TransactionRow::page(
            self.core.pool(),
            &customer_id,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await
        .map_err(ApiError::from)?;
        let (rows, next_page_token) = page.finish(rows, |row| row.id.clone());
        Ok(Response::new(pb::ViewTransactionsResponse {
            transactions: rows.into_iter().map(transaction_row_to_pb).collect(),
            next_page_token,
        }))
    }
}
