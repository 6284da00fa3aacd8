//! The product service's gRPC API: the catalogue for everyone, its
//! management for admins.
//!
//! Commands load the product aggregate, decide and append through the
//! repository, then wait (bounded) for the catalogue projection to reach the
//! new position, so that a query right after a command sees it. Queries read
//! the catalogue. Every failure becomes an [`ApiError`] and, through it, a
//! gRPC status in one place.

use std::sync::Arc;

use es_core::projection::ProjectionRunner;
use es_core::{AggregateId, JetStreamEventStore, Repository};
use sqlx::PgPool;
use stocklet_proto::stocklet::product::v1::{self as pb, product_service_server::ProductService};
use stocklet_service_kit::{ApiError, CommandApi, PageRequest, Validation};
use tonic::{Request, Response, Status};

use crate::domain::{
    Cents, Description, Product, ProductCommand, ProductError, ProductId, ProductName,
};
use crate::projections::{Catalogue, ProductRow};

/// Handles `stocklet.product.v1.ProductService`.
#[derive(Clone)]
pub struct ProductApi {
    core: CommandApi<Product, Catalogue>,
}

impl ProductApi {
    /// The API over its repository and read model.
    pub fn new(
        products: Repository<Product, JetStreamEventStore>,
        catalogue: Arc<ProjectionRunner<Catalogue>>,
        pool: PgPool,
    ) -> Self {
        let core = CommandApi::new(products, catalogue, pool);
        Self { core }
    }

    /// Runs a command and waits until the catalogue shows its effect.
    async fn execute<T>(
        &self,
        request: &Request<T>,
        id: &AggregateId,
        command: ProductCommand,
    ) -> Result<Product, ApiError> {
        let context = self.core.context(request);
        self.core.execute(id, &command, &context, rejected).await
    }
}

/// How the product's business rules surface to clients.
fn rejected(error: ProductError) -> ApiError {
    match error {
        ProductError::AlreadyExists => ApiError::AlreadyExists("product".into()),
        ProductError::NotFound | ProductError::Deleted => ApiError::NotFound("product".into()),
        ProductError::NothingToChange => {
            ApiError::invalid("name", "give a name or a description to change")
        }
    }
}

fn product_id(validation: &mut Validation, raw: &str) -> Option<AggregateId> {
    validation.parse("id", AggregateId::parse(raw))
}

fn to_pb(product: &Product) -> pb::Product {
    pb::Product {
        id: product
            .id
            .as_ref()
            .map(ProductId::to_string)
            .unwrap_or_default(),
        name: product.name.clone(),
        description: product.description.clone(),
        price_cents: product.price.get(),
        created_at_ms: product.created_at_ms,
        updated_at_ms: product.updated_at_ms,
    }
}

fn row_to_pb(row: ProductRow) -> pb::Product {
    pb::Product {
        id: row.id,
        name: row.name,
        description: row.description,
        price_cents: row.price_cents,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
    }
}

#[tonic::async_trait]
impl ProductService for ProductApi {
    async fn get_service_info(
        &self,
        _request: Request<pb::GetServiceInfoRequest>,
    ) -> Result<Response<pb::GetServiceInfoResponse>, Status> {
        Ok(Response::new(pb::GetServiceInfoResponse {
            name: "product".into(),
            source: "https://github.com/stocklet/stocklet/tree/main/services/product".into(),
            license: "MIT".into(),
        }))
    }

    async fn view_product(
        &self,
        request: Request<pb::ViewProductRequest>,
    ) -> Result<Response<pb::ViewProductResponse>, Status> {
        let mut validation = Validation::new();
        let id = product_id(&mut validation, &request.get_ref().id);
        validation.finish()?;
        let id = id.ok_or_else(|| ApiError::invalid("id", "is required"))?;
        let row = ProductRow::find(self.core.pool(), id.as_str())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("product".into()))?;
        Ok(Response::new(pb::ViewProductResponse {
            product: Some(row_to_pb(row)),
        }))
    }

    async fn view_products(
        &self,
        request: Request<pb::ViewProductsRequest>,
    ) -> Result<Response<pb::ViewProductsResponse>, Status> {
        let page = PageRequest::parse(request.get_ref().page_size, &request.get_ref().page_token)?;
        let rows = ProductRow::page(self.core.pool(), page.after.as_deref(), page.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let (rows, next_page_token) = page.finish(rows, |row| row.id.clone());
        Ok(Response::new(pb::ViewProductsResponse {
            products: rows.into_iter().map(row_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::CreateProductResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let name = validation.parse("name", ProductName::parse(&body.name));
        let description = validation.parse("description", Description::parse(&body.description));
        let price = validation.parse("price_cents", Cents::parse(body.price_cents));
        validation.finish()?;
        let (Some(name), Some(description), Some(price)) = (name, description, price) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let product_id = ProductId::generate();
        let id = AggregateId::parse(product_id.as_str())
            .map_err(|e| ApiError::Internal(format!("generated product id: {e}")))?;
        let product = self
            .execute(
                &request,
                &id,
                ProductCommand::Create {
                    id: product_id,
                    name,
                    description,
                    price,
                    at_ms: es_core::envelope::now_ms(),
                },
            )
            .await?;
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(to_pb(&product)),
        }))
    }

    async fn update_product_price(
        &self,
        request: Request<pb::UpdateProductPriceRequest>,
    ) -> Result<Response<pb::UpdateProductPriceResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let id = product_id(&mut validation, &body.id);
        let price = validation.parse("price_cents", Cents::parse(body.price_cents));
        validation.finish()?;
        let (Some(id), Some(price)) = (id, price) else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let at_ms = es_core::envelope::now_ms();
        let product = self
            .execute(&request, &id, ProductCommand::UpdatePrice { price, at_ms })
            .await?;
        Ok(Response::new(pb::UpdateProductPriceResponse {
            product: Some(to_pb(&product)),
        }))
    }

    async fn update_product_details(
        &self,
        request: Request<pb::UpdateProductDetailsRequest>,
    ) -> Result<Response<pb::UpdateProductDetailsResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let body = request.get_ref();
        let mut validation = Validation::new();
        let id = product_id(&mut validation, &body.id);
        let name = body
            .name
            .as_deref()
            .and_then(|raw| validation.parse("name", ProductName::parse(raw)));
        let description = body
            .description
            .as_deref()
            .and_then(|raw| validation.parse("description", Description::parse(raw)));
        validation.finish()?;
        let Some(id) = id else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let at_ms = es_core::envelope::now_ms();
        let product = self
            .execute(
                &request,
                &id,
                ProductCommand::UpdateDetails {
                    name,
                    description,
                    at_ms,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdateProductDetailsResponse {
            product: Some(to_pb(&product)),
        }))
    }

    async fn delete_product(
        &self,
        request: Request<pb::DeleteProductRequest>,
    ) -> Result<Response<pb::DeleteProductResponse>, Status> {
        self.core.identity(&request).require_admin()?;
        let mut validation = Validation::new();
        let id = product_id(&mut validation, &request.get_ref().id);
        validation.finish()?;
        let Some(id) = id else {
            return Err(ApiError::Internal("validated fields missing".into()).into());
        };
        let at_ms = es_core::envelope::now_ms();
        self.execute(&request, &id, ProductCommand::Delete { at_ms })
            .await?;
        Ok(Response::new(pb::DeleteProductResponse {}))
    }
}
